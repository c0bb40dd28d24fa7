/**
 * The Redis cluster adapter on its own, against a real redis-server (test/support/redis.ts):
 * several adapters in this process act as replicas, each with a small ClusterHost of its own
 * (peers as plain records, local broadcasts recorded). The remote-call multiplexer is a recorder
 * here (what crosses the bus is what is tested); redis-cluster.e2e runs the real one between servers.
 */
import { Decoder, Encoder } from '@msgpack/msgpack';
import { Redis } from 'ioredis';
import type { ClusterHost, ClusterLocalPeer } from '../../src/cluster/adapter.js';
import { selects, userIdOf, type WsMsgpackPeerInfo, type WsMsgpackSelection } from '../../src/cluster/types.js';
import type { WsMsgpackPeer } from '../../src/peer/peer.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { redisCluster } from '../../src/redis/index.js';
import { resolveRedisClusterOptions, type RedisClusterOptions } from '../../src/redis/options.js';
import { RedisClusterAdapter } from '../../src/redis/redis-cluster.js';
import type { RemoteCallsPort, RemoteLink } from '../../src/redis/remote.js';
import { until, within } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';

const FAST = { heartbeatInterval: 100, replicaTimeout: 400 };

interface FakePeer {
  id: string;
  user?: unknown;
  rooms: Set<string>;
}

/** One replica: an adapter, its host's peers, what reached it. */
interface Node {
  adapter: RedisClusterAdapter;
  peers: Map<string, FakePeer>;
  delivered: { pattern: unknown; data: unknown; selection: WsMsgpackSelection | undefined }[];
  reports: Error[];
  received: { from: string; message: unknown }[];
  down: string[];
  linkDowns: number;
  linkUps: number;
  link: RemoteLink | undefined;
  remotePeers: WsMsgpackPeerInfo[];
  connect(peer: FakePeer): void;
}

/** What the freeze test reaches inside an adapter. */
interface Internals {
  known: Set<string>;
  timer: ReturnType<typeof setInterval>;
  phase: string;
  link: { client: Redis; subscriber: Redis };
}

function asLocal(p: FakePeer): ClusterLocalPeer {
  return { id: p.id, user: p.user, rooms: p.rooms } as unknown as ClusterLocalPeer;
}

const encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true });
const decoder = new Decoder({ useBigInt64: true });
const nodes: Node[] = [];

async function startNode(redis: TestRedis, peers: FakePeer[] = [], options: RedisClusterOptions = {}, start = true): Promise<Node> {
  const node: Node = {
    adapter: undefined as unknown as RedisClusterAdapter,
    peers: new Map(peers.map((p) => [p.id, p])),
    delivered: [],
    reports: [],
    received: [],
    down: [],
    linkDowns: 0,
    linkUps: 0,
    link: undefined,
    remotePeers: [],
    connect(peer) {
      node.peers.set(peer.id, peer);
      node.adapter.peerConnected(asLocal(peer));
    },
  };
  const host: ClusterHost = {
    localPeer: (id) => (node.peers.has(id) ? asLocal(node.peers.get(id)!) : undefined),
    localPeers: () => [...node.peers.values()].map(asLocal),
    broadcastLocal(pattern, data, selection) {
      node.delivered.push({ pattern, data, selection });
      return [...node.peers.values()].filter((p) => selects(selection, { id: p.id, user: userIdOf(p.user), rooms: p.rooms })).length;
    },
    encode: (v) => encoder.encode(v),
    decode: (b) => decoder.decode(b),
    report: (e) => node.reports.push(e),
  };
  const remote = (_host: ClusterHost, link: RemoteLink): RemoteCallsPort => {
    node.link = link;
    return {
      peer: (info) => {
        node.remotePeers.push(info);
        return { id: info.id } as WsMsgpackPeer;
      },
      receive: (from, message) => {
        node.received.push({ from, message });
        return true;
      },
      replicaDown: (r) => node.down.push(r),
      linkDown: () => node.linkDowns++,
      linkUp: () => node.linkUps++,
      close: () => {},
    };
  };
  node.adapter = new RedisClusterAdapter(resolveRedisClusterOptions({ url: redis.url, ...FAST, ...options }), remote);
  nodes.push(node);
  if (start) await within(node.adapter.start(host), 5000, 'adapter start');
  return node;
}

async function closeAll(): Promise<void> {
  await Promise.all(nodes.splice(0).map((n) => n.adapter.close()));
}

function ids(peers: WsMsgpackPeerInfo[]): string[] {
  return peers.map((p) => p.id).sort();
}

/** Resolves with `probe()`'s value once `ok` accepts it, polling; rejects after `ms`. */
async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, ms = 2000, what = 'value'): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms (last: ${JSON.stringify(value)})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rejection(p: Promise<unknown>): Promise<WsMsgpackError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof WsMsgpackError)) throw new Error(`expected a WsMsgpackError, got ${String(e)}`);
  return e;
}

describe('redisCluster adapter (real redis-server)', () => {
  let redis: TestRedis;
  let raw: Redis;
  beforeAll(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await raw.connect();
  });
  afterEach(closeAll);
  afterAll(async () => {
    raw.disconnect();
    await redis.stop();
  });

  describe('presence', () => {
    const a = [
      { id: 'p1', user: { sub: 'u1' }, rooms: new Set(['r1', 'r2']) },
      { id: 'p2', rooms: new Set(['r2']) },
    ];
    const b = [
      { id: 'p3', user: 'u1', rooms: new Set(['r1']) },
      { id: 'p4', user: 7, rooms: new Set<string>() },
    ];

    it('lists and counts every replica’s peers by room, user and except, as selects() would', async () => {
      const A = await startNode(redis, a);
      const B = await startNode(redis, b);
      const all = await A.adapter.fetchPeers();
      expect(all.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
        { id: 'p1', replica: A.adapter.replica, user: 'u1', rooms: ['r1', 'r2'] },
        { id: 'p2', replica: A.adapter.replica, user: undefined, rooms: ['r2'] },
        { id: 'p3', replica: B.adapter.replica, user: 'u1', rooms: ['r1'] },
        { id: 'p4', replica: B.adapter.replica, user: '7', rooms: [] },
      ]);
      const selections: WsMsgpackSelection[] = [
        {},
        { to: 'r1' },
        { to: ['r2', 'nowhere'] },
        { users: 'u1' },
        { users: ['7', 'u1'] },
        { except: 'p1' },
        { except: ['r1'] },
        { to: 'r2', except: 'p1' },
        { to: 'r1', users: 'u1' },
        { to: ['r1', 'r2'], users: 'u1', except: 'r2' },
        { users: 'nobody' },
      ];
      for (const selection of selections) {
        const want = all.filter((p) => selects(selection, { id: p.id, user: p.user, rooms: new Set(p.rooms) })).map((p) => p.id);
        expect([JSON.stringify(selection), ids(await B.adapter.fetchPeers(selection))]).toEqual([JSON.stringify(selection), want.sort()]);
        expect([JSON.stringify(selection), await A.adapter.count(selection)]).toEqual([JSON.stringify(selection), want.length]);
      }
    });

    it('follows peers connecting, changing rooms and leaving', async () => {
      const A = await startNode(redis);
      const B = await startNode(redis);
      const p = { id: 'moving', user: 'u9', rooms: new Set(['x']) };
      A.connect(p);
      await eventually(
        () => B.adapter.fetchPeers({ to: 'x' }),
        (l) => l.length === 1,
        2000,
        'registered',
      );
      p.rooms = new Set(['y']);
      A.adapter.peerRoomsChanged(asLocal(p), ['y'], ['x']);
      // A's later commands run after its earlier ones: once A reads the change, B does too.
      expect(await A.adapter.count({ to: 'x' })).toBe(0);
      expect(await B.adapter.count({ to: 'x' })).toBe(0);
      expect(ids(await B.adapter.fetchPeers({ to: 'y', users: 'u9' }))).toEqual(['moving']);
      A.peers.delete('moving');
      A.adapter.peerDisconnected(asLocal(p));
      expect(await A.adapter.count()).toBe(0);
      expect(await raw.exists('{wsmp}:peer:moving', '{wsmp}:rooms:moving', '{wsmp}:room:y', '{wsmp}:user:u9')).toBe(0);
    });

    it('peer(id): a local peer from the host, another replica’s through remote calls, an unknown one undefined', async () => {
      const A = await startNode(redis, a);
      const B = await startNode(redis, b);
      expect((await A.adapter.peer('p1'))?.id).toBe('p1');
      expect(A.remotePeers).toEqual([]);
      expect((await A.adapter.peer('p3'))?.id).toBe('p3');
      expect(A.remotePeers).toEqual([{ id: 'p3', replica: B.adapter.replica, user: 'u1', rooms: ['r1'] }]);
      expect(await A.adapter.peer('nobody')).toBeUndefined();
    });

    it('a replica with 40,000 peers registers them all (its records are written in chunks, not one script call)', async () => {
      const many = Array.from({ length: 40_000 }, (_, i) => ({ id: `m${i}`, rooms: new Set(i % 2 ? ['odd'] : ['even']) }));
      const A = await startNode(redis, many, { prefix: 'many' });
      expect({ all: await A.adapter.count(), odd: await A.adapter.count({ to: 'odd' }), reports: A.reports.map((r) => r.message) }).toEqual({
        all: 40_000,
        odd: 20_000,
        reports: [],
      });
    });

    it('keeps apps with another prefix apart', async () => {
      const A = await startNode(redis, a);
      const other = await startNode(redis, [{ id: 'elsewhere', rooms: new Set(['r1']) }], { prefix: 'other-app' });
      expect(ids(await A.adapter.fetchPeers({ to: 'r1' }))).toEqual(['p1']);
      expect(ids(await other.adapter.fetchPeers())).toEqual(['elsewhere']);
    });

    it('close(): the replica’s peers leave presence at once, and the others fail the calls to it at once', async () => {
      const A = await startNode(redis, a);
      const B = await startNode(redis, b, { heartbeatInterval: 60_000, replicaTimeout: 120_000 });
      await A.adapter.close();
      expect(A.adapter.status).toBe('closed');
      expect(ids(await B.adapter.fetchPeers())).toEqual(['p3', 'p4']);
      await until(() => B.down.includes(A.adapter.replica), 2000, 'B told A left');
      await rejection(A.adapter.count()).then((e) => expect(e.code).toBe('UNAVAILABLE'));
    });

    it('a replica that stops heartbeating leaves presence within replicaTimeout, and its records go within replicaTimeout + heartbeatInterval', async () => {
      const A = await startNode(redis, a);
      const B = await startNode(redis, b);
      await until(() => (A.adapter as unknown as Internals).known.has(B.adapter.replica), 2000, 'A knows B');
      // B freezes as a SIGKILLed process would: no heartbeat, no goodbye.
      const b_ = B.adapter as unknown as Internals;
      clearInterval(b_.timer);
      b_.phase = 'closed';
      b_.link.client.disconnect();
      b_.link.subscriber.disconnect();
      // Within the documented bound (replicaTimeout + heartbeatInterval), plus slack for a loaded machine.
      await until(() => A.down.includes(B.adapter.replica), FAST.replicaTimeout + FAST.heartbeatInterval + 2000, 'A forgets B');
      expect(ids(await A.adapter.fetchPeers())).toEqual(['p1', 'p2']);
      expect(await raw.exists('{wsmp}:peer:p3', '{wsmp}:peer:p4', '{wsmp}:rooms:p3', `{wsmp}:replica:${B.adapter.replica}`)).toBe(0);
      expect(await raw.zscore('{wsmp}:replicas', B.adapter.replica)).toBeNull();
      expect(await raw.smembers('{wsmp}:user:u1')).toEqual(['p1']);
    });
  });

  describe('broadcast', () => {
    it('reaches every other replica’s host exactly once, with the selection, and counts the replicas', async () => {
      const [A, B, C] = [await startNode(redis, [{ id: 'a1', rooms: new Set(['r']) }]), await startNode(redis), await startNode(redis)];
      const result = await A.adapter.broadcast('news', { n: 1, at: new Date(0) }, { to: 'r', except: 'x' });
      expect(result).toEqual({ local: 1, replicas: 2 });
      // A second one after it: once it has arrived, the first cannot arrive again (one connection, in order).
      await A.adapter.broadcast('fence', null);
      await until(() => B.delivered.length === 2 && C.delivered.length === 2, 2000, 'both broadcasts on B and C');
      for (const node of [B, C]) {
        expect(node.delivered[0]).toEqual({ pattern: 'news', data: { n: 1, at: new Date(0) }, selection: { to: 'r', except: 'x' } });
        expect(node.delivered[1]).toEqual({ pattern: 'fence', data: null, selection: undefined });
      }
      expect(A.delivered.map((d) => d.pattern)).toEqual(['news', 'fence']); // its own, once: handed locally, not from the bus
    });

    it('a broadcast written to Redis with a malformed selection (not by a replica) is reported and delivered to nobody', async () => {
      const A = await startNode(redis, [{ id: 'a1', rooms: new Set(['r']) }]);
      const forger = new Redis(redis.url);
      try {
        for (const selection of [{ to: 5 }, 'r', { users: { a: 1 } }]) await forger.publish('wsmp:broadcast', Buffer.from(encoder.encode([0, 'forged', 'news', 'x', selection])));
        await forger.publish('wsmp:broadcast', Buffer.from(encoder.encode([0, 'forged', 'fence', null, null]))); // in order on one connection: after the three
        await until(() => A.delivered.length === 1, 2000, 'the fence');
        expect({ delivered: A.delivered.map((d) => d.pattern), reports: A.reports.map((r) => r.message.replace(/:.*/, '')) }).toEqual({
          delivered: ['fence'],
          reports: ['cluster', 'cluster', 'cluster'],
        });
      } finally {
        forger.disconnect();
      }
    });

    it('a "left" message for a replica that is still registered (written by someone else) is reported and ignored', async () => {
      const A = await startNode(redis);
      const B = await startNode(redis);
      const forger = new Redis(redis.url);
      try {
        await forger.publish('wsmp:broadcast', Buffer.from(encoder.encode([1, B.adapter.replica])));
        await until(() => A.reports.length > 0, 2000, 'the report');
        expect({ down: A.down, report: A.reports[0]!.message }).toEqual({
          down: [],
          report: `cluster: ignored a "left" message for replica ${B.adapter.replica}, which is still registered (not sent by that replica)`,
        });
      } finally {
        forger.disconnect();
      }
    });

    it('refuses a selection that cannot cross the bus', async () => {
      const A = await startNode(redis);
      await expect(A.adapter.broadcast('x', 1, { to: 3 } as never)).rejects.toThrow(/selection's to must be a string or a list of strings, got 3/);
    });
  });

  describe('topics', () => {
    it('delivers the values of one publisher in order to the listeners of other replicas, not back to itself', async () => {
      const [A, B, C] = [await startNode(redis), await startNode(redis), await startNode(redis)];
      const got: Record<string, unknown[]> = { A: [], B: [], C: [] };
      const offA = A.adapter.subscribeTopic('prices', (v) => got.A!.push(v));
      const offB = B.adapter.subscribeTopic('prices', (v) => got.B!.push(v));
      const offC = C.adapter.subscribeTopic('prices', (v) => got.C!.push(v));
      const numsub = async () => Number(((await raw.pubsub('NUMSUB', 'wsmp:topic:prices')) as unknown[])[1]);
      await eventually(numsub, (n) => n === 3, 2000, 'three subscribers');
      const values = Array.from({ length: 1000 }, (_, i) => i);
      await Promise.all(values.map((v) => A.adapter.publishTopic('prices', v)));
      await until(() => got.B!.length === 1000 && got.C!.length === 1000, 5000, 'every value on B and C');
      expect(got.B).toEqual(values);
      expect(got.C).toEqual(values);
      expect(got.A).toEqual([]);
      offB();
      offC();
      offA();
      await eventually(numsub, (n) => n === 0, 2000, 'no subscriber left');
    });
  });

  describe('remote-call messages', () => {
    it('go to the one replica named, tagged with the sender; to a replica that is not there, UNAVAILABLE', async () => {
      const [A, B, C] = [await startNode(redis), await startNode(redis), await startNode(redis)];
      await A.link!.send(B.adapter.replica, { t: 'call', i: 1, p: 'x', k: 'ping', d: new Uint8Array([1, 2]) });
      await A.link!.send(B.adapter.replica, { t: 'cancel', i: 1 });
      await until(() => B.received.length === 2, 2000, 'B got both');
      expect(B.received).toEqual([
        { from: A.adapter.replica, message: { t: 'call', i: 1, p: 'x', k: 'ping', d: new Uint8Array([1, 2]) } },
        { from: A.adapter.replica, message: { t: 'cancel', i: 1 } },
      ]);
      expect(C.received).toEqual([]);
      const e = await rejection(A.link!.send('no-such-replica', { t: 'cancel', i: 2 }));
      expect(e.code).toBe('UNAVAILABLE');
    });
  });

  describe('options', () => {
    it.each([
      [{ prefix: 'has space' }, 'nestjs-ws-msgpack: option prefix must be 1 to 64 letters, digits, _ - . or :, got "has space"'],
      [{ heartbeatInterval: 0 }, 'nestjs-ws-msgpack: option heartbeatInterval must be a whole number of ms from 1 to 2147483647, got 0'],
      [{ heartbeatInterval: 1000, replicaTimeout: 1000 }, 'nestjs-ws-msgpack: option replicaTimeout must be greater than heartbeatInterval (1000 ms), got 1000'],
      [{ url: 'http://x' }, 'nestjs-ws-msgpack: option url must be a redis:// or rediss:// URL, got "http://x"'],
      [{ client: {} }, 'nestjs-ws-msgpack: option client must be an ioredis Redis instance, got "another object"'],
      [{ subscriber: 'redis://x' }, 'nestjs-ws-msgpack: option subscriber must be an ioredis Redis instance, got "redis://x"'],
      [
        { heartbeat: 5 },
        'nestjs-ws-msgpack: option heartbeat must be one of url, client, subscriber, prefix, heartbeatInterval, replicaTimeout, commandTimeout, maxMessageBytes, maxBytesInFlight, maxQueuedBytes (not a redisCluster option), got 5',
      ],
      [{ maxMessageBytes: 10 }, 'nestjs-ws-msgpack: option maxMessageBytes must be a whole number of bytes from 1024, got 10'],
      [{ maxBytesInFlight: 65_536 }, 'nestjs-ws-msgpack: option maxBytesInFlight must be a whole number of bytes from 65537, got 65536'],
      [{ maxQueuedBytes: 1.5e3 + 0.5 }, 'nestjs-ws-msgpack: option maxQueuedBytes must be a whole number of bytes from 1024, got 1500.5'],
    ])('%j is refused', (options, message) => {
      expect(() => redisCluster(options as RedisClusterOptions)).toThrow(new TypeError(message));
    });

    it('defaults: prefix wsmp, heartbeat 5 s, replicas dead after 15 s, commands unanswered after 2 s, 4 MiB messages, 2 MiB in flight per pair, 4 MiB queued', () => {
      expect(resolveRedisClusterOptions({})).toMatchObject({
        url: 'redis://127.0.0.1:6379',
        prefix: 'wsmp',
        heartbeatInterval: 5000,
        replicaTimeout: 15_000,
        commandTimeout: 2000,
        maxMessageBytes: 4 * 1024 * 1024,
        maxBytesInFlight: 2 * 1024 * 1024,
        maxQueuedBytes: 4 * 1024 * 1024,
      });
      expect(resolveRedisClusterOptions({ heartbeatInterval: 10_000 }).replicaTimeout).toBe(20_000);
    });

    it('works over connections the app passes in (a subscriber duplicated from the client), and leaves them open', async () => {
      const client = new Redis(redis.url);
      try {
        const A = await startNode(redis, [{ id: 'mine', rooms: new Set() }], { url: undefined, client } as RedisClusterOptions);
        const B = await startNode(redis);
        expect(ids(await B.adapter.fetchPeers())).toEqual(['mine']);
        await A.adapter.close();
        expect(client.status).toBe('ready');
        expect(await client.ping()).toBe('PONG');
      } finally {
        client.disconnect();
      }
    });
  });
});

describe('redisCluster adapter: Redis stopped and restarted', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterEach(closeAll);
  afterAll(() => redis.stop());

  it('fails fast with UNAVAILABLE while Redis is down, goes down and back to ready by itself, with every peer and channel back', async () => {
    const A = await startNode(redis, [{ id: 'a1', user: 'ua', rooms: new Set(['r']) }]);
    const B = await startNode(redis, [{ id: 'b1', rooms: new Set(['r']) }]);
    const gotB: unknown[] = [];
    B.adapter.subscribeTopic('t', (v) => gotB.push(v));
    expect(await A.adapter.count()).toBe(2);
    const probe = new Redis(redis.url);
    await eventually(
      async () => Number(((await probe.pubsub('NUMSUB', 'wsmp:topic:t')) as unknown[])[1]),
      (n) => n === 1,
      2000,
      'B subscribed',
    );
    probe.disconnect();
    await A.adapter.publishTopic('t', 'before');
    await until(() => gotB.length === 1, 2000, 'the topic before the outage');

    await redis.stop();
    await until(() => A.adapter.status === 'down' && B.adapter.status === 'down', 2000, 'both down');
    for (const op of [
      () => A.adapter.fetchPeers(),
      () => A.adapter.count({ to: 'r' }),
      () => A.adapter.broadcast('x', 1),
      () => A.adapter.publishTopic('t', 1),
      () => A.adapter.peer('b1'),
      () => A.link!.send(B.adapter.replica, { t: 'cancel', i: 1 }),
    ]) {
      // At once: rejected before any timer or I/O callback could run (no wait for a timeout or a reconnect).
      const op$ = op();
      expect(
        await Promise.race([
          op$.then(
            () => 'resolved',
            () => 'rejected',
          ),
          new Promise((r) => setImmediate(() => r('still pending'))),
        ]),
      ).toBe('rejected');
      const e = await rejection(op$);
      expect(e.code).toBe('UNAVAILABLE');
      expect(e.message).toMatch(/^the cluster engine \(Redis\) is unreachable: /);
    }
    expect((await A.adapter.peer('a1'))?.id).toBe('a1'); // local peers carry on
    expect(A.linkDowns).toBe(1);
    expect(A.reports.filter((r) => r instanceof WsMsgpackError && r.code === 'UNAVAILABLE')).toHaveLength(1); // one report per outage

    // A peer comes and another goes during the outage; Redis comes back empty.
    A.connect({ id: 'a2', rooms: new Set(['r']) });
    B.peers.delete('b1');
    B.adapter.peerDisconnected(asLocal({ id: 'b1', rooms: new Set(['r']) }));
    await redis.start();
    await until(() => A.adapter.status === 'ready' && B.adapter.status === 'ready', 5000, 'both ready again');
    expect({ downs: A.linkDowns, ups: A.linkUps }).toEqual({ downs: 1, ups: 1 }); // back: what the drop left unsent goes out
    expect(ids(await B.adapter.fetchPeers({ to: 'r' }))).toEqual(['a1', 'a2']);
    expect(ids(await A.adapter.fetchPeers({ users: 'ua' }))).toEqual(['a1']);
    await A.adapter.publishTopic('t', 'after');
    await until(() => gotB.length === 2, 2000, 'the topic resubscribed');
    expect(gotB).toEqual(['before', 'after']);
    expect(await A.adapter.broadcast('b', 2)).toEqual({ local: 2, replicas: 1 });
    expect(A.reports.filter((r) => !(r instanceof WsMsgpackError))).toEqual([]);
  });

  it('starts while Redis is down: start() rejects UNAVAILABLE, and the adapter comes up by itself once Redis is there', async () => {
    await redis.stop();
    const A = await startNode(redis, [{ id: 'late', rooms: new Set() }], {}, false);
    const started = A.adapter.start({
      localPeer: () => undefined,
      localPeers: () => [asLocal({ id: 'late', rooms: new Set() })],
      broadcastLocal: () => 0,
      encode: (v: unknown) => encoder.encode(v),
      decode: (b: Uint8Array) => decoder.decode(b),
      report: (e: Error) => A.reports.push(e),
    } satisfies ClusterHost);
    const e = await rejection(within(started, 5000, 'start'));
    expect(e.code).toBe('UNAVAILABLE');
    expect(A.adapter.status).toBe('connecting');
    await redis.start();
    await until(() => A.adapter.status === 'ready', 5000, 'ready once Redis is up');
    expect(ids(await A.adapter.fetchPeers())).toEqual(['late']);
  });
});
