/**
 * Replicas on Redis, in bytes: what one replica may put on Redis for another is bounded
 * (`maxBytesInFlight` per pair of replicas, `maxMessageBytes` per message, `maxQueuedBytes` for
 * what waits to reach Redis), so large values cannot make Redis cut a replica's pub/sub
 * connection (`client-output-buffer-limit pubsub`), and a flood of publishes cannot hold up the
 * heartbeat. Two WsMsgpackServer replicas in this process on one real redis-server, real clients.
 */
import { lastValueFrom, toArray } from 'rxjs';
import { Redis } from 'ioredis';
import { WebSocket as WsWebSocket } from 'ws';
import { WsMsgpackTopics, type WsMsgpackPeer } from '../../src/index.js';
import type { WsMsgpackClusterAdapter } from '../../src/cluster/adapter.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { redisCluster, type RedisClusterOptions } from '../../src/redis/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { startService, until, within, type TestService } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';

const KIB = 1024;
const MIB = 1024 * KIB;

interface Replica {
  svc: TestService;
  cluster: WsMsgpackClusterAdapter;
  peers: WsMsgpackPeer[];
  errors: Error[];
}

let redis: TestRedis;
let admin: Redis;
let prefix = 0;
const replicas: Replica[] = [];
const clients: WsMsgpackWebClient[] = [];

async function startReplica(p: string, options: RedisClusterOptions): Promise<Replica> {
  const cluster = redisCluster({ url: redis.url, prefix: p, heartbeatInterval: 200, replicaTimeout: 2000, ...options });
  const svc = await startService({ controllers: [] }, { cluster });
  const r: Replica = { svc, cluster, peers: [], errors: [] };
  svc.server.on('error', (e) => r.errors.push(e));
  svc.server.on('connection', (_ws, _req, peer) => r.peers.push(peer));
  await until(() => cluster.status === 'ready', 5000, 'replica ready');
  replicas.push(r);
  return r;
}

/** A client of `to` whose `blobs` handler yields `n` items of `size` bytes; `news` collects events. */
async function connect(to: Replica): Promise<{ web: WsMsgpackWebClient; news: unknown[]; aborted: () => boolean }> {
  const web = new WsMsgpackWebClient({ url: to.svc.url, WebSocket: WsWebSocket as unknown as WebSocketConstructor, reconnect: false });
  const news: unknown[] = [];
  let aborted = false;
  web.on('error', () => {});
  web.handle('news', (data) => void news.push(data));
  web.handle('blobs', async function* ([n, size]: [number, number], { signal }) {
    signal.addEventListener('abort', () => (aborted = true));
    for (let i = 0; i < n; i++) yield new Uint8Array(size).fill(i % 251);
  });
  const before = to.peers.length;
  await within(web.connect(), 5000, 'client connects');
  await until(() => to.peers.length > before, 5000, 'the peer on its replica');
  clients.push(web);
  return { web, news, aborted: () => aborted };
}

/** Two replicas a, b with these options (`aSubscriber`: a's pub/sub connection); a client on b; b's peer as a sees it. */
async function pair(options: RedisClusterOptions, aSubscriber?: Redis) {
  const p = `bytes${prefix++}`;
  const a = await startReplica(p, aSubscriber ? { ...options, subscriber: aSubscriber } : options);
  const b = await startReplica(p, options);
  const client = await connect(b);
  let remote: WsMsgpackPeer | undefined;
  for (let i = 0; !remote; i++) {
    remote = await a.cluster.peer(b.peers[0]!.id);
    if (i > 200) throw new Error('the peer was not registered');
    if (!remote) await new Promise((r) => setTimeout(r, 5));
  }
  return { a, b, client, remote };
}

/** The output buffer (bytes) Redis holds for the client named `name`; -1 when there is none (Redis cut it). */
async function outputBuffer(name: string): Promise<number> {
  const list = (await admin.client('LIST')) as string;
  const line = list.split('\n').find((l) => l.includes(` name=${name} `));
  return line ? Number(/ omem=(\d+)/.exec(line)?.[1] ?? 0) : -1;
}

const codeOf = (e: unknown) => (e instanceof WsMsgpackError ? e.code : String(e));

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
  // Tighter than Redis's default (32mb 8mb 60): what the bound must keep under.
  await admin.config('SET', 'client-output-buffer-limit', 'pubsub 8mb 8mb 0');
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(replicas.splice(0).map((r) => r.svc.close()));
});
afterAll(async () => {
  admin.disconnect();
  await redis.stop();
});

describe('replicas on Redis: bytes', () => {
  it('12 streams of 24 x 512 KiB from a client on b to a, which stops reading: Redis holds at most the bound for a, and when a reads again all arrive and its link never dropped', async () => {
    const sub = new Redis(redis.url, { lazyConnect: true, connectionName: 'a-sub' });
    try {
      const { a, remote } = await pair({ maxBytesInFlight: 1 * MIB }, sub);
      sub.stream.pause(); // a reads nothing from its pub/sub connection: b's answers pile up in Redis
      const calls = Promise.all(Array.from({ length: 12 }, () => lastValueFrom(remote.send<Uint8Array>('blobs', [24, 512 * KIB]).pipe(toArray()))));
      let peak = 0;
      for (let i = 0; i < 150; i++) {
        // Long enough for b to send far more than the bound if nothing held it (without the bound, Redis cuts a at 8 MiB within this).
        peak = Math.max(peak, await outputBuffer('a-sub'));
        if (peak < 0) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      // At most the budget + the item that crossed it + envelopes (the sockets' kernel buffers take some of it first).
      expect(peak).toBeGreaterThanOrEqual(0); // -1: Redis cut a's connection
      expect(peak).toBeLessThan(1 * MIB + 512 * KIB + 64 * KIB);
      sub.stream.resume();
      const results = await within(calls, 60_000, 'the 12 streams');
      expect(results.map((r) => r.length)).toEqual(Array(12).fill(24));
      expect(results.every((r) => r.every((b, i) => b.byteLength === 512 * KIB && b[0] === i % 251))).toBe(true);
      expect(a.cluster.status).toBe('ready');
      expect(a.errors).toEqual([]); // no drop reported (a cut pub/sub connection is)
    } finally {
      sub.disconnect();
    }
  }, 90_000);

  it("a's pub/sub connection is cut by Redis (CLIENT KILL) twice, with answers in flight: afterwards a's calls to b's client still complete", async () => {
    const sub = new Redis(redis.url, { lazyConnect: true, connectionName: 'a-sub2' });
    try {
      const { a, b } = await pair({ maxBytesInFlight: 128 * KIB }, sub);
      const id = b.peers[0]!.id;
      for (let cut = 0; cut < 2; cut++) {
        const remote = (await a.cluster.peer(id))!;
        expect((await within(lastValueFrom(remote.send<Uint8Array>('blobs', [1, 60 * KIB]).pipe(toArray())), 5000, 'a call')).length).toBe(1);
        sub.stream.pause(); // answers pile up in Redis, then are lost with the connection
        const lost = lastValueFrom(remote.send('blobs', [50, 64 * KIB])).catch((e: unknown) => e);
        const list = (await admin.client('LIST')) as string;
        const killed = /id=(\d+) [^\n]* name=a-sub2 /.exec(list)?.[1];
        await admin.client('KILL', 'ID', killed!);
        sub.stream.resume();
        expect(codeOf(await within(lost, 10_000, 'the call in flight to fail'))).toBe('UNAVAILABLE');
        await until(() => a.cluster.status === 'ready', 10_000, 'a back');
      }
      const remote = (await a.cluster.peer(id))!;
      expect((await within(lastValueFrom(remote.send<Uint8Array>('blobs', [20, 60 * KIB]).pipe(toArray())), 10_000, 'a call after the cuts')).length).toBe(20);
    } finally {
      sub.disconnect();
    }
  }, 60_000);

  it('maxMessageBytes: a broadcast, a topic value, a payload and a stream item over it fail RESOURCE_EXHAUSTED; smaller ones pass; the cluster stays ready', async () => {
    const { a, b, client, remote } = await pair({ maxMessageBytes: 256 * KIB });
    const over = new Uint8Array(300 * KIB);
    const e1 = await a.cluster.broadcast('news', over).catch((e: unknown) => e);
    expect(codeOf(e1)).toBe('RESOURCE_EXHAUSTED');
    expect((e1 as Error).message).toMatch(/maxMessageBytes \(262144\)/);
    expect(await a.cluster.broadcast('news', new Uint8Array(100 * KIB))).toEqual({ local: 0, replicas: 1 });
    await until(() => client.news.length === 1, 5000, 'the broadcast under the limit');

    const topicErrors: Error[] = [];
    new WsMsgpackTopics({ cluster: a.cluster, name: 't', onError: (e) => topicErrors.push(e) }).publish('x', over);
    await until(() => topicErrors.length === 1, 5000, 'the topic error');
    expect(codeOf(topicErrors[0])).toBe('RESOURCE_EXHAUSTED');

    const e2 = await lastValueFrom(remote.send('blobs', over)).catch((e: unknown) => e);
    expect(codeOf(e2)).toBe('RESOURCE_EXHAUSTED');

    // The stream's items are 300 KiB: the first one fails the call, and the client's handler (held by credit) is stopped.
    const e3 = await within(
      lastValueFrom(remote.send('blobs', [100_000, 300 * KIB])).catch((e: unknown) => e),
      10_000,
      'the stream fails',
    );
    expect(codeOf(e3)).toBe('RESOURCE_EXHAUSTED');
    await until(client.aborted, 5000, "the client's handler to be stopped");
    expect((await lastValueFrom(remote.send<Uint8Array>('blobs', [3, 100 * KIB]).pipe(toArray()))).length).toBe(3);
    expect([a.cluster.status, b.cluster.status]).toEqual(['ready', 'ready']);
    expect([...a.errors, ...b.errors]).toEqual([]);
  }, 30_000);

  it('maxQueuedBytes: a burst of broadcasts not awaited is refused past the queue (RESOURCE_EXHAUSTED); each accepted one is delivered once; then it takes more', async () => {
    const { a, client } = await pair({ maxQueuedBytes: 1 * MIB });
    const sent = Array.from({ length: 100 }, (_, i) =>
      a.cluster.broadcast('news', { i, pad: new Uint8Array(100 * KIB) }).then(
        () => i,
        (e: unknown) => e,
      ),
    );
    const outcomes = await Promise.all(sent);
    const accepted = outcomes.filter((o): o is number => typeof o === 'number');
    const refused = outcomes.filter((o) => typeof o !== 'number');
    expect(accepted.length).toBeGreaterThanOrEqual(10);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((e) => codeOf(e) === 'RESOURCE_EXHAUSTED' && /maxQueuedBytes/.test((e as Error).message))).toBe(true);
    await until(() => client.news.length === accepted.length, 10_000, 'every accepted broadcast delivered');
    expect(client.news.map((n) => (n as { i: number }).i)).toEqual(accepted);
    expect(await a.cluster.broadcast('news', { i: -1 })).toEqual({ local: 0, replicas: 1 });
    // One message larger than the queue's bound goes when nothing waits (the largest message can always go).
    expect(await a.cluster.broadcast('news', { i: -2, pad: new Uint8Array(1.5 * MIB) })).toEqual({ local: 0, replicas: 1 });
    expect(a.cluster.status).toBe('ready');
    expect(a.errors).toEqual([]);
  }, 30_000);
});
