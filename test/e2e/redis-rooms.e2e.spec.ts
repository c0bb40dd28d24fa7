/**
 * Rooms in Redis presence at scale: a peer's room changes are written as changes (the `rooms`
 * script), and records with more rooms than one script call can carry are split across calls
 * (sync and register). Real servers with redisCluster adapters on one real redis-server
 * (test/support/redis.ts), real clients (the browser client over `ws`); plus the chunking and
 * ConnectionPeer's room changes on their own.
 */
import { Redis } from 'ioredis';
import { WebSocket as WsWebSocket } from 'ws';
import type { ClusterHost, ClusterLocalPeer } from '../../src/cluster/adapter.js';
import type { Connection } from '../../src/connection/connection.js';
import { ConnectionPeer, type WsMsgpackPeer } from '../../src/peer/peer.js';
import { redisCluster } from '../../src/redis/index.js';
import { resolveRedisClusterOptions } from '../../src/redis/options.js';
import { SYNC_ARGS } from '../../src/redis/presence.js';
import { RedisClusterAdapter } from '../../src/redis/redis-cluster.js';
import { PEER_PIECE_HEAD, peerChunks, roomChunks, type PeerRecord } from '../../src/redis/scripts.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { until, within } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { startReplica as startTestReplica, type TestReplica } from '../support/replicas.js';

/** More rooms than one call can pass as arguments (~125,000 on Node 20) or one script call could carry. */
const MANY = 150_000;
/**
 * Redis takes about half a second to write 150,000 rooms (more on a loaded machine), during which
 * it answers nothing else, heartbeats included: generous bounds, so these tests check what is
 * written, not how fast.
 */
const TIMING = { heartbeatInterval: 100, replicaTimeout: 10_000, commandTimeout: 10_000 };
/** Rooms per `join(...)` call: a call with all MANY rooms as arguments would throw RangeError before reaching the peer. */
const PER_JOIN = 75_000;

type Replica = TestReplica;

let redis: TestRedis;
const replicas: Replica[] = [];
const clients: WsMsgpackWebClient[] = [];
const adapters: RedisClusterAdapter[] = [];
let prefix = 0;

async function startReplica(clusterPrefix: string): Promise<Replica> {
  return startTestReplica(redisCluster({ url: redis.url, prefix: clusterPrefix, ...TIMING }), { track: replicas });
}

/** A client of `to` as `user`; resolves with its peer on that replica. */
async function connectClient(to: Replica, user: string): Promise<WsMsgpackPeer> {
  const web = new WsMsgpackWebClient({ url: `${to.svc.url}/?user=${user}`, WebSocket: WsWebSocket as unknown as WebSocketConstructor, reconnect: false });
  web.on('error', () => {});
  clients.push(web);
  await within(web.connect(), 5000, `${user} connects`);
  await until(() => to.peers.has(user), 5000, `${user} on its replica`);
  return to.peers.get(user)!;
}

/** Resolves with `probe()`'s value once `ok` accepts it, polling (a rejection, e.g. UNAVAILABLE while down, counts as not yet); rejects after `ms`. */
async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (ok(value)) return value;
      last = value;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function roomNames(n: number, stem = 'r'): string[] {
  return Array.from({ length: n }, (_, i) => `${stem}${i}`);
}

/** Joins `rooms` in calls of at most PER_JOIN rooms. */
function joinAll(peer: WsMsgpackPeer, rooms: readonly string[]): void {
  for (let i = 0; i < rooms.length; i += PER_JOIN) peer.join(...rooms.slice(i, i + PER_JOIN));
}

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(replicas.splice(0).map((r) => r.svc.close()));
  await Promise.all(adapters.splice(0).map((a) => a.close()));
});
afterAll(() => redis.stop());

describe('rooms in Redis presence, with real servers and clients', () => {
  it(`a peer in ${MANY.toLocaleString('en')} rooms is written, counted by room, leaves one; after Redis restarts empty it is written again`, async () => {
    const p = `rooms${prefix++}`;
    const a = await startReplica(p);
    const b = await startReplica(p);
    const peer = await connectClient(a, 'big');
    const rooms = roomNames(MANY);
    joinAll(peer, rooms);
    expect(peer.rooms.size).toBe(MANY);
    // a's commands run in the order sent: a count sent after the writes sees them.
    expect({ last: await a.cluster.count({ to: 'r149999' }), first: await a.cluster.count({ to: 'r0' }), errors: a.errors.map((e) => e.message) }).toEqual({
      last: 1,
      first: 1,
      errors: [],
    });
    await eventually(
      () => b.cluster.count({ to: 'r149999' }),
      (n) => n === 1,
      10_000,
      'b counts the peer in r149999',
    );
    peer.leave('r0');
    expect(await a.cluster.count({ to: 'r0' })).toBe(0);
    expect(await a.cluster.count({ to: 'r1' })).toBe(1);

    await redis.restart();
    // Empty again: the peer is in Redis again only once a wrote its record anew (in chunks).
    await eventually(
      async () => ({ ready: a.cluster.status === 'ready', last: await a.cluster.count({ to: 'r149999' }), r1: await a.cluster.count({ to: 'r1' }) }),
      (v) => v.ready && v.last === 1 && v.r1 === 1,
      15_000,
      'the peer written again after the restart',
    );
    expect({ r0: await a.cluster.count({ to: 'r0' }), peers: await a.cluster.count(), viaB: await b.cluster.count({ to: ['r77777', 'r149999'] }) }).toEqual({
      r0: 0,
      peers: 1,
      viaB: 1,
    });
    // The outage itself is reported (the link went down); no presence write failed.
    expect(a.errors.filter((e) => /presence/.test(e.message)).map((e) => e.message)).toEqual([]);
  });

  it(`a peer in ${MANY.toLocaleString('en')} rooms, commandTimeout 300 ms: after a drop of the command connection its replica re-syncs (old records deleted a budget at a time), and when it leaves its records go, never a command near the timeout`, async () => {
    const p = `rooms${prefix++}`;
    const cluster = redisCluster({ url: redis.url, prefix: p, heartbeatInterval: 100, replicaTimeout: 10_000, commandTimeout: 300 });
    const { svc, peers, errors } = await startTestReplica(cluster, { track: replicas });
    const web = new WsMsgpackWebClient({ url: `${svc.url}/?user=big`, WebSocket: WsWebSocket as unknown as WebSocketConstructor, reconnect: false });
    web.on('error', () => {});
    await within(web.connect(), 5000, 'connects');
    await until(() => peers.has('big'), 5000, 'the peer');
    joinAll(peers.get('big')!, roomNames(MANY));
    expect(await cluster.count({ to: 'r149999' })).toBe(1);

    const admin = new Redis(redis.url);
    try {
      await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'); // every command connection drops (a's included)
      await until(() => cluster.status !== 'ready', 5000, 'a sees the drop');
      await eventually(
        async () => ({ ready: cluster.status === 'ready', last: await cluster.count({ to: 'r149999' }), first: await cluster.count({ to: 'r0' }) }),
        (v) => v.ready && v.last === 1 && v.first === 1,
        20_000,
        'a written again',
      );
      await web.close();
      await eventually(
        async () => ({ first: await cluster.count({ to: 'r0' }), last: await cluster.count({ to: 'r149999' }), peers: await cluster.count() }),
        (v) => v.first === 0 && v.last === 0 && v.peers === 0,
        20_000,
        'the records gone',
      );
      expect(await admin.scard(`{${p}}:rooms:${[...peers.values()][0]!.id}`)).toBe(0);
    } finally {
      admin.disconnect();
    }
    // One outage reported; no command went unanswered for commandTimeout (a script removing 150,000 rooms at once did).
    expect(errors.filter((e) => /did not answer/.test(e.message)).map((e) => e.message)).toEqual([]);
  }, 60_000);

  it('3,000 rooms joined one by one, then one left: the counts and fetchPeers match', async () => {
    const p = `rooms${prefix++}`;
    const a = await startReplica(p);
    const b = await startReplica(p);
    const peer = await connectClient(a, 'walker');
    const other = await connectClient(a, 'other');
    other.join('x', 's5');
    peer.join('x');
    const rooms = roomNames(3000, 's');
    for (const room of rooms) peer.join(room);
    peer.join('s0'); // again: no change
    peer.leave('s17');
    peer.leave('s17', 'never-joined'); // no change
    expect({
      x: await a.cluster.count({ to: 'x' }),
      s0: await a.cluster.count({ to: 's0' }),
      s5: await a.cluster.count({ to: 's5' }),
      s17: await a.cluster.count({ to: 's17' }),
      s2999: await a.cluster.count({ to: 's2999' }),
      any: await a.cluster.count({ to: rooms }),
    }).toEqual({ x: 2, s0: 1, s5: 2, s17: 0, s2999: 1, any: 2 });
    const want = ['x', ...rooms.filter((r) => r !== 's17')].sort();
    const listed = await eventually(
      () => b.cluster.fetchPeers({ to: 'x' }),
      (l) => l.find((i) => i.id === peer.id)?.rooms.length === want.length,
      10_000,
      'b lists the walker with its rooms',
    );
    expect(listed.map((i) => ({ id: i.id, user: i.user, rooms: i.rooms })).sort((l, r) => (l.id === peer.id ? -1 : r.id === peer.id ? 1 : 0))).toEqual([
      { id: peer.id, user: 'walker', rooms: want },
      { id: other.id, user: 'other', rooms: ['s5', 'x'] },
    ]);
    expect(a.errors).toEqual([]);
  });
});

describe('rooms in Redis presence, one adapter with a plain host', () => {
  it(`registers a peer connected with ${MANY.toLocaleString('en')} rooms (split across calls), next to small ones`, async () => {
    const local = (id: string, rooms: Iterable<string>, user?: string): ClusterLocalPeer => ({ id, user, rooms: new Set(rooms) }) as unknown as ClusterLocalPeer;
    const peers = [local('small1', ['r0', 'x'], 'u1'), local('big', roomNames(MANY)), local('small2', ['r149999'])];
    const reports: Error[] = [];
    const host: ClusterHost = {
      localPeer: (id) => peers.find((q) => q.id === id),
      localPeers: () => peers.slice(0, 1), // the others connect after the start
      broadcastLocal: () => 0,
      encode: () => new Uint8Array(),
      decode: () => undefined,
      report: (e) => reports.push(e),
    };
    const adapter = new RedisClusterAdapter(resolveRedisClusterOptions({ url: redis.url, prefix: `rooms${prefix++}`, ...TIMING }));
    adapters.push(adapter);
    await within(adapter.start(host), 5000, 'adapter start');
    adapter.peerConnected(peers[1]!);
    adapter.peerConnected(peers[2]!);
    expect({
      all: await adapter.count(),
      r0: await adapter.count({ to: 'r0' }),
      last: await adapter.count({ to: 'r149999' }),
      x: (await adapter.fetchPeers({ to: 'x' })).map((i) => ({ id: i.id, user: i.user, rooms: i.rooms })),
      reports: reports.map((e) => e.message),
    }).toEqual({ all: 3, r0: 2, last: 2, x: [{ id: 'small1', user: 'u1', rooms: ['r0', 'x'] }], reports: [] });
    adapter.peerRoomsChanged(peers[1]!, ['late'], ['r0', 'r149999']);
    expect({ r0: await adapter.count({ to: 'r0' }), last: await adapter.count({ to: 'r149999' }), late: await adapter.count({ to: 'late' }) }).toEqual({ r0: 1, last: 1, late: 1 });
    // A change for a peer this replica has no record of writes nothing.
    adapter.peerRoomsChanged(local('ghost', []), ['late'], []);
    expect(await adapter.count({ to: 'late' })).toBe(1);
  });
});

/** Reads `add_peers` pieces back as the script does: per peer, whether its first piece is new, its user, its rooms. */
function readPieces(chunks: string[][]): { id: string; news: number; user: string | undefined; rooms: string[] }[] {
  const out: { id: string; news: number; user: string | undefined; rooms: string[] }[] = [];
  for (const args of chunks) {
    for (let i = 0; i < args.length;) {
      const [id, isNew, hasUser, user, n] = args.slice(i, i + PEER_PIECE_HEAD) as [string, string, string, string, string];
      const rooms = args.slice(i + PEER_PIECE_HEAD, i + PEER_PIECE_HEAD + Number(n));
      if (isNew === '1') out.push({ id, news: 1, user: hasUser === '1' ? user : undefined, rooms });
      else if (out[out.length - 1]?.id === id) out[out.length - 1]!.rooms.push(...rooms);
      else throw new Error(`a piece of more rooms of ${id} that does not follow its record`);
      i += PEER_PIECE_HEAD + Number(n);
    }
  }
  return out;
}

describe('presence chunks', () => {
  it('peerChunks: every list within the bound, big peers split (first piece new, the rest more rooms), nothing lost or repeated', () => {
    const peers: PeerRecord[] = [
      { id: 'none', user: undefined, rooms: [] },
      { id: 'big', user: 'u', rooms: roomNames(MANY) },
      { id: 'small', user: undefined, rooms: ['a', 'b'] },
      { id: 'exact', user: undefined, rooms: roomNames(SYNC_ARGS - PEER_PIECE_HEAD, 'e') },
    ];
    for (const most of [PEER_PIECE_HEAD + 1, 7, 100, SYNC_ARGS]) {
      const few = most < 100 ? peers.map((p) => ({ ...p, rooms: [...p.rooms].slice(0, 30) })) : peers;
      const chunks = peerChunks(few, most);
      expect({ most, over: chunks.filter((c) => c.length > most || c.length === 0).length }).toEqual({ most, over: 0 });
      expect(readPieces(chunks)).toEqual(few.map((p) => ({ id: p.id, news: 1, user: p.user, rooms: [...p.rooms] })));
    }
    expect(peerChunks([], SYNC_ARGS)).toEqual([]);
    expect(peerChunks(peers.slice(1, 2), SYNC_ARGS).length).toBe(Math.ceil(MANY / (SYNC_ARGS - PEER_PIECE_HEAD)));
    expect(() => peerChunks(peers, PEER_PIECE_HEAD)).toThrow(RangeError);
  });

  it('roomChunks: joined rooms first, then left, each list within the bound', () => {
    const joined = roomNames(25_000, 'j');
    const left = roomNames(12_345, 'l');
    const chunks = roomChunks(joined, left, SYNC_ARGS);
    const back = { joined: [] as string[], left: [] as string[] };
    for (const c of chunks) {
      const n = Number(c[0]);
      back.joined.push(...c.slice(1, 1 + n));
      back.left.push(...c.slice(1 + n));
    }
    expect({ over: chunks.filter((c) => c.length > SYNC_ARGS).length, back }).toEqual({ over: 0, back: { joined, left } });
    expect(roomChunks([], [], SYNC_ARGS)).toEqual([]);
    expect(roomChunks(['a'], ['b'], 2)).toEqual([
      ['1', 'a'],
      ['0', 'b'],
    ]);
  });
});

describe('ConnectionPeer room changes', () => {
  const newPeer = (): { peer: ConnectionPeer; told: [string[], string[]][] } => {
    const peer = new ConnectionPeer({ isClosed: false } as unknown as Connection, { url: '/', headers: {}, remoteAddress: undefined });
    const told: [string[], string[]][] = [];
    peer.onRoomsChanged = (_p, joined, left) => void told.push([[...joined], [...left]]);
    return { peer, told };
  };

  it("join('a', '') throws a TypeError and changes nothing (no room joined, nothing told)", () => {
    const { peer, told } = newPeer();
    expect(() => peer.join('a', '')).toThrow(new TypeError('nestjs-ws-msgpack: a room is a non-empty string, got ""'));
    expect(() => peer.join('b', 3 as unknown as string)).toThrow(TypeError);
    expect({ rooms: [...peer.rooms], told }).toEqual({ rooms: [], told: [] });
    peer.join('a');
    expect(() => peer.leave('a', '')).toThrow(TypeError);
    expect({ rooms: [...peer.rooms], told }).toEqual({ rooms: ['a'], told: [[['a'], []]] });
  });

  it('tells only the rooms really joined or left', () => {
    const { peer, told } = newPeer();
    peer.join('a', 'b', 'a');
    peer.join('a');
    peer.leave('b', 'zz', 'b');
    peer.leave('zz');
    expect({ rooms: [...peer.rooms], told }).toEqual({
      rooms: ['a'],
      told: [
        [['a', 'b'], []],
        [[], ['b']],
      ],
    });
  });
});
