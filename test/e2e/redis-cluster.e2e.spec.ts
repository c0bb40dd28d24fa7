/**
 * Replicas on Redis, end to end: three WsMsgpackServer instances in this process, each with its
 * own redisCluster adapter on one real redis-server (test/support/redis.ts), and real clients
 * (the browser client over `ws`) connected to each. Every delivery is counted.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, take, toArray, type Subscription } from 'rxjs';
import { WebSocket as WsWebSocket } from 'ws';
import { WsMsgpackRecordBuilder, WsMsgpackTopics } from '../../src/index.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { redisCluster } from '../../src/redis/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { until, within } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { query, startReplica as startTestReplica, type TestReplica } from '../support/replicas.js';

@Controller()
class SumController {
  @MessagePattern('sum')
  sum(data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }
}

interface Replica extends TestReplica {
  readonly name: string;
}

interface TestClient {
  user: string;
  web: WsMsgpackWebClient;
  news: unknown[];
  /** Items the 'count' handler produced, and whether its signal fired. */
  produced: number;
  aborted: boolean;
  /** The 'count' handler's generator has ended (returned or run out). */
  finished: boolean;
}

let redis: TestRedis;
const replicas: Replica[] = [];
const clients: TestClient[] = [];
let prefix = 0;

async function startReplica(name: string, clusterPrefix: string): Promise<Replica> {
  const cluster = redisCluster({ url: redis.url, prefix: clusterPrefix, heartbeatInterval: 100, replicaTimeout: 500 });
  const replica = await startTestReplica(cluster, {
    metadata: { controllers: [SumController] },
    onConnection: (peer, req) => {
      const room = query(req.url, 'room');
      if (room) peer.join(room);
    },
  });
  const named = { name, ...replica };
  replicas.push(named);
  return named;
}

async function connectClient(to: Replica, user: string, room?: string): Promise<TestClient> {
  const c: TestClient = { user, web: undefined as unknown as WsMsgpackWebClient, news: [], produced: 0, aborted: false, finished: false };
  const url = `${to.svc.url}/?user=${user}${room ? `&room=${room}` : ''}`;
  c.web = new WsMsgpackWebClient({ url, WebSocket: WsWebSocket as unknown as WebSocketConstructor, reconnect: false });
  c.web.on('error', () => {});
  c.web.handle('news', (data) => void c.news.push(data));
  c.web.handle('double', (n: number) => n * 2);
  c.web.handle(
    'slow',
    (ms: number, { signal }) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => resolve('late'), ms);
        signal.addEventListener('abort', () => clearTimeout(timer)); // the caller's deadline reaches the client
      }),
  );
  c.web.handle('count', async function* (n: number, { signal }) {
    c.finished = false;
    signal.addEventListener('abort', () => (c.aborted = true));
    try {
      for (let i = 0; i < n; i++) {
        c.produced++;
        yield i;
      }
    } finally {
      c.finished = true;
    }
  });
  await within(c.web.connect(), 5000, `${user} connects`);
  await until(() => to.peers.has(user), 5000, `${user} on ${to.name}`);
  clients.push(c);
  return c;
}

/** Three replicas a, b, c, two clients each: a1/b1/c1 in room r, a2/b2/c2 in none. */
async function threeReplicas(): Promise<{ a: Replica; b: Replica; c: Replica; all: TestClient[] }> {
  const p = `e2e${prefix++}`;
  const [a, b, c] = [await startReplica('a', p), await startReplica('b', p), await startReplica('c', p)];
  const all: TestClient[] = [];
  for (const r of [a, b, c]) all.push(await connectClient(r, `${r.name}1`, 'r'), await connectClient(r, `${r.name}2`));
  for (let i = 0; ; i++) {
    if ((await a.cluster.count()) === 6) break;
    if (i > 200) throw new Error('the six peers were not registered');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { a, b, c, all };
}

async function closeAll(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.web.close()));
  await Promise.all(replicas.splice(0).map((r) => r.svc.close()));
}

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(closeAll);
afterAll(() => redis.stop());

describe('replicas on Redis', () => {
  it('a broadcast from replica a reaches every client on a, b and c once; a room broadcast only the members; presence lists them', async () => {
    const { a, b, all } = await threeReplicas();
    expect(await a.cluster.broadcast('news', 'all')).toEqual({ local: 2, replicas: 2 });
    expect(await a.cluster.broadcast('news', 'room', { to: 'r' })).toEqual({ local: 1, replicas: 2 });
    expect(await a.cluster.broadcast('news', 'no b1', { to: 'r', except: b.peers.get('b1')!.id })).toEqual({ local: 1, replicas: 2 });
    await a.cluster.broadcast('news', 'fence');
    await until(() => all.every((c) => c.news.includes('fence')), 5000, 'the fence everywhere');
    const byUser = Object.fromEntries(all.map((c) => [c.user, c.news]));
    expect(byUser).toEqual({
      a1: ['all', 'room', 'no b1', 'fence'],
      a2: ['all', 'fence'],
      b1: ['all', 'room', 'fence'],
      b2: ['all', 'fence'],
      c1: ['all', 'room', 'no b1', 'fence'],
      c2: ['all', 'fence'],
    });
    const inRoom = await b.cluster.fetchPeers({ to: 'r' });
    expect(inRoom.map((p) => [p.user, p.rooms]).sort()).toEqual([
      ['a1', ['r']],
      ['b1', ['r']],
      ['c1', ['r']],
    ]);
    expect(await b.cluster.count({ users: ['a2', 'c2'] })).toBe(2);
    expect(a.errors).toEqual([]);
  });

  it('a topic published on b reaches the subscribers on a and c, in publish order', async () => {
    const { a, b, c } = await threeReplicas();
    const topics = new Map([a, b, c].map((r) => [r.name, new WsMsgpackTopics<number>({ cluster: r.cluster, name: 'prices' })]));
    const onA = lastValueFrom(topics.get('a')!.subscribe('ACME').pipe(take(1000), toArray()));
    const onC = lastValueFrom(topics.get('c')!.subscribe('ACME').pipe(take(1000), toArray()));
    // Subscribed on Redis once a value published after the subscription arrives.
    const probe: Subscription[] = [];
    let seen = 0;
    for (const r of [a, c]) probe.push(new WsMsgpackTopics<number>({ cluster: r.cluster, name: 'probe' }).subscribe('x').subscribe(() => seen++));
    const probeTopics = new WsMsgpackTopics<number>({ cluster: b.cluster, name: 'probe' });
    await until(() => (probeTopics.publish('x', 0), seen >= 2), 5000, 'a and c subscribed');
    probe.forEach((s) => s.unsubscribe());
    const values = Array.from({ length: 1000 }, (_, i) => i);
    for (const v of values) topics.get('b')!.publish('ACME', v);
    expect(await within(onA, 5000, 'a got 1000')).toEqual(values);
    expect(await within(onC, 5000, 'c got 1000')).toEqual(values);
  });

  it('replica a calls a client connected to c: unary, a stream with credit, cancel stops the client’s handler, deadline', async () => {
    const { a, c, all } = await threeReplicas();
    const c1 = all.find((x) => x.user === 'c1')!;
    const peer = await a.cluster.peer(c.peers.get('c1')!.id);
    expect(peer?.id).toBe(c.peers.get('c1')!.id);
    expect(await within(firstValueFrom(peer!.send<number>('double', 21)))).toBe(42);

    const items = await within(lastValueFrom(peer!.send<number>('count', 10_000).pipe(toArray())), 15_000, 'the stream');
    expect(items).toHaveLength(10_000);
    expect(items[9_999]).toBe(9_999);

    c1.produced = 0;
    const first = await within(firstValueFrom(peer!.send<number>('count', 1_000_000).pipe(take(5), toArray())));
    expect(first).toEqual([0, 1, 2, 3, 4]);
    await until(() => c1.aborted && c1.finished, 5000, 'the client’s handler told to stop, and its generator ended');
    expect(c1.produced).toBeLessThan(10_000); // held by credit, then stopped: never the million

    const late = await firstValueFrom(peer!.send('slow', new WsMsgpackRecordBuilder(2000).setTimeout(100).build())).catch((e: unknown) => e);
    expect((late as WsMsgpackError).code).toBe('DEADLINE_EXCEEDED');
  });

  it('a replica that closes: its peers leave presence at once, and a peer obtained before fails UNAVAILABLE', async () => {
    const { a, c } = await threeReplicas();
    const peer = await a.cluster.peer(c.peers.get('c2')!.id);
    await c.svc.close();
    replicas.splice(replicas.indexOf(c), 1);
    expect(await a.cluster.count()).toBe(4);
    expect(await a.cluster.peer(c.peers.get('c2')!.id)).toBeUndefined();
    const e = await firstValueFrom(peer!.send('double', 1)).catch((err: unknown) => err);
    expect((e as WsMsgpackError).code).toBe('UNAVAILABLE');
  });

  it('a replica that freezes as after SIGKILL (no heartbeat, no goodbye): a call in flight to its client fails UNAVAILABLE within replicaTimeout + heartbeatInterval', async () => {
    const { a, c } = await threeReplicas();
    const peer = await a.cluster.peer(c.peers.get('c1')!.id);
    const pending = firstValueFrom(peer!.send('slow', 60_000)).then(
      () => 'answered',
      (e: unknown) => e as WsMsgpackError,
    );
    await new Promise((r) => setImmediate(r));
    const frozen = c.cluster as unknown as { timer: ReturnType<typeof setInterval>; phase: string; link: { client: { disconnect(): void }; subscriber: { disconnect(): void } } };
    clearInterval(frozen.timer);
    frozen.phase = 'closed';
    frozen.link.client.disconnect();
    frozen.link.subscriber.disconnect();
    // Within replicaTimeout + heartbeatInterval (500 + 100), plus slack for a loaded machine.
    const failed = await within(pending, 500 + 100 + 2000, 'the call in flight');
    expect(failed).toBeInstanceOf(WsMsgpackError);
    expect((failed as WsMsgpackError).code).toBe('UNAVAILABLE');
    expect(await a.cluster.count()).toBe(4);
  });

  it('Redis stopped mid-run: cross-replica operations fail fast with UNAVAILABLE, local calls carry on; restarted, both work again', async () => {
    const { a, b, c, all } = await threeReplicas();
    const a1 = all.find((x) => x.user === 'a1')!;
    const remote = await a.cluster.peer(b.peers.get('b1')!.id);
    await redis.stop();
    try {
      await until(() => a.cluster.status === 'down', 5000, 'a down');
      // At once: each is rejected before any timer or I/O callback could run (no wait for a timeout).
      const settled = [a.cluster.broadcast('news', 'x'), a.cluster.count(), a.cluster.peer(b.peers.get('b2')!.id), firstValueFrom(remote!.send('double', 1))].map((p) =>
        p.then(
          () => 'resolved',
          (e: unknown) => (e as WsMsgpackError).code,
        ),
      );
      const firstTurn = new Promise<string>((r) => setImmediate(() => r('still pending')));
      const failures = await Promise.all(settled.map((p) => Promise.race([p, firstTurn])));
      expect(failures).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);

      // The broadcast Redis refused reached nobody, not even a's own peers (a retry delivers nothing twice).
      await Promise.all(all.filter((x) => x.user.startsWith('a')).map((x) => x.web.call('sum', [0])));
      expect(all.filter((x) => x.news.includes('x')).map((x) => x.user)).toEqual([]);
      expect(await within(a1.web.call('sum', [1, 2]))).toBe(3); // a client's call to its own replica
      const local = await a.cluster.peer(a.peers.get('a2')!.id); // a local peer is found without Redis
      expect(await within(firstValueFrom(local!.send<number>('double', 4)))).toBe(8);
    } finally {
      await redis.start();
    }
    // c too: count() sees its peers only once c has written its records again.
    await until(() => [a, b, c].every((r) => r.cluster.status === 'ready'), 10_000, 'ready again');
    expect(await a.cluster.count()).toBe(6);
    const again = await a.cluster.peer(b.peers.get('b1')!.id);
    expect(await within(firstValueFrom(again!.send<number>('double', 5)))).toBe(10);
    expect(await a.cluster.broadcast('news', 'back')).toEqual({ local: 2, replicas: 2 });
    await until(() => all.every((x) => x.news.includes('back')), 5000, 'the broadcast after the outage');
  });

  it('a value that cannot be encoded fails with INTERNAL (as on a connection), and the link stays ready', async () => {
    const { a, b } = await threeReplicas();
    const remote = await a.cluster.peer(b.peers.get('b1')!.id);
    const codes = await Promise.all(
      [a.cluster.broadcast('news', { f: () => 1 }), firstValueFrom(remote!.send('double', { f: () => 1 }))].map((p) =>
        p.then(
          () => 'resolved',
          (e: unknown) => (e as WsMsgpackError).code,
        ),
      ),
    );
    expect({ codes, status: a.cluster.status }).toEqual({ codes: ['INTERNAL', 'INTERNAL'], status: 'ready' });
    expect(await within(firstValueFrom(remote!.send<number>('double', 2)))).toBe(4);
  });
});
