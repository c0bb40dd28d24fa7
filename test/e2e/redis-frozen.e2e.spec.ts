/**
 * A frozen Redis: redis-server stopped with SIGSTOP, so its connections stay open and nothing is
 * answered (as with a Redis that hangs, or a network path that drops packets without a reset).
 * TCP notices nothing; `commandTimeout` does. Two WsMsgpackServer replicas in this process on a
 * real redis-server (test/support/redis.ts): `a` with the adapter's own connections (`url`), `b`
 * with ioredis connections the app passes in (`client`, `subscriber`), and a real client on each.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import { firstValueFrom } from 'rxjs';
import { WebSocket as WsWebSocket } from 'ws';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { redisCluster, type RedisClusterOptions } from '../../src/redis/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { until, WAIT_MS, within } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { startReplica as startTestReplica, type TestReplica } from '../support/replicas.js';

@Controller()
class SumController {
  @MessagePattern('sum')
  sum(data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }
}

const COMMAND_TIMEOUT = 300;
const HEARTBEAT = 100;
const TIMING = { heartbeatInterval: HEARTBEAT, replicaTimeout: 1000, commandTimeout: COMMAND_TIMEOUT };
/**
 * What a bounded wait allows beyond the bound under test, for a loaded machine (2 cores shared
 * with other jobs). Without commandTimeout the operations below never settle, so any slack
 * still fails then.
 */
const SLACK = 2000;

type Replica = TestReplica;

let redis: TestRedis;
const replicas: Replica[] = [];
const webClients: WsMsgpackWebClient[] = [];
const connections: Redis[] = [];
let prefix = 0;
/** How many 'slow' calls the clients have received. */
let slowCalls = 0;

async function startReplica(options: RedisClusterOptions): Promise<Replica> {
  return startTestReplica(redisCluster({ ...TIMING, ...options }), { metadata: { controllers: [SumController] }, track: replicas });
}

/** Broadcasts each client received, by user. */
const news = new Map<string, unknown[]>();

async function connectClient(to: Replica, user: string): Promise<WsMsgpackWebClient> {
  const web = new WsMsgpackWebClient({ url: `${to.svc.url}/?user=${user}`, WebSocket: WsWebSocket as unknown as WebSocketConstructor, reconnect: false });
  webClients.push(web);
  web.on('error', () => {});
  news.set(user, []);
  web.handle('news', (data) => void news.get(user)!.push(data));
  web.handle('double', (n: number) => n * 2);
  web.handle(
    'slow',
    (ms: number, { signal }) =>
      new Promise((resolve) => {
        slowCalls++;
        const timer = setTimeout(() => resolve('late'), ms);
        signal.addEventListener('abort', () => clearTimeout(timer));
      }),
  );
  await within(web.connect(), WAIT_MS, `${user} connects`);
  await until(() => to.peers.has(user), WAIT_MS, `${user} registered`);
  return web;
}

/** Replica a on its own connections, b on connections passed in; client a1 on a, b1 on b; both registered. */
async function twoReplicas(): Promise<{ a: Replica; b: Replica; a1: WsMsgpackWebClient }> {
  const p = `frozen${prefix++}`;
  const client = new Redis(redis.url, { lazyConnect: true });
  const subscriber = new Redis(redis.url, { lazyConnect: true });
  connections.push(client, subscriber);
  const a = await startReplica({ url: redis.url, prefix: p });
  const b = await startReplica({ client, subscriber, prefix: p });
  const a1 = await connectClient(a, 'a1');
  await connectClient(b, 'b1');
  await until(() => a.cluster.status === 'ready' && b.cluster.status === 'ready', WAIT_MS, 'both ready');
  for (let i = 0; (await a.cluster.count()) !== 2; i++) {
    if (i > 500) throw new Error('the two peers were not registered');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { a, b, a1 };
}

/** The code an operation fails with ('resolved' if it does not). */
const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof WsMsgpackError ? e.code : String(e)),
  );

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  await redis.resume();
  await Promise.all(webClients.splice(0).map((c) => c.close()));
  await Promise.all(replicas.splice(0).map((r) => r.svc.close()));
  for (const c of connections.splice(0)) c.disconnect();
});
afterAll(() => redis.stop());

describe('a frozen Redis (SIGSTOP)', () => {
  it('cross-replica operations fail UNAVAILABLE within commandTimeout, status goes down; local calls carry on; after SIGCONT both replicas are ready again by themselves', async () => {
    const { a, b, a1 } = await twoReplicas();
    const b1 = b.peers.get('b1')!;
    const remote = await a.cluster.peer(b1.id);
    const inFlight = outcome(firstValueFrom(remote!.send('slow', 60_000)));
    await until(() => slowCalls === 1, WAIT_MS, 'the call reached the client on b');

    redis.pause();
    // Sent while both links still look up: each waits commandTimeout for Redis, then fails typed.
    const fromA = [a.cluster.count(), a.cluster.broadcast('news', 'x'), firstValueFrom(remote!.send('double', 1))].map(outcome);
    const fromB = [b.cluster.fetchPeers()].map(outcome); // b's connections are the app's own: wrapped all the same
    expect(await within(Promise.all([...fromA, ...fromB]), COMMAND_TIMEOUT + SLACK, 'the operations while Redis is frozen')).toEqual([
      'UNAVAILABLE',
      'UNAVAILABLE',
      'UNAVAILABLE',
      'UNAVAILABLE',
    ]);
    expect(await within(inFlight, SLACK, 'the call in flight')).toBe('UNAVAILABLE'); // the link went down: its calls fail
    // An idle replica notices through its heartbeat: within heartbeatInterval + commandTimeout.
    await until(() => a.cluster.status === 'down' && b.cluster.status === 'down', HEARTBEAT + COMMAND_TIMEOUT + SLACK, 'both down');
    expect(a.errors.map((e) => e.message)).toContainEqual(expect.stringContaining('did not answer within 300 ms (commandTimeout)'));

    // Down: new cross-replica operations fail at once (no second wait for commandTimeout).
    expect(await within(outcome(a.cluster.peer('anyone')), COMMAND_TIMEOUT / 2, 'a lookup while down')).toBe('UNAVAILABLE');
    // Local calls never touch Redis.
    expect(await within(a1.call('sum', [1, 2]))).toBe(3);
    const local = await a.cluster.peer(a.peers.get('a1')!.id);
    expect(await within(firstValueFrom(local!.send<number>('double', 4)))).toBe(8);

    await redis.resume();
    await until(() => a.cluster.status === 'ready' && b.cluster.status === 'ready', WAIT_MS, 'both ready again, by themselves');
    // The freeze may have outlasted replicaTimeout on Redis's clock: a heartbeat then drops the
    // others, who write their records again at their next heartbeat.
    for (let i = 0; (await a.cluster.count()) !== 2; i++) {
      if (i > 500) throw new Error('presence was not written again');
      await new Promise((r) => setTimeout(r, 5));
    }
    const again = await a.cluster.peer(b1.id);
    expect(await within(firstValueFrom(again!.send<number>('double', 5)))).toBe(10);
    expect(await b.cluster.count()).toBe(2);
  });

  it('a replica closes with Redis frozen: it does not wait for Redis longer than commandTimeout', async () => {
    const { a, b } = await twoReplicas();
    redis.pause();
    for (const r of [a, b]) replicas.splice(replicas.indexOf(r), 1);
    // Its goodbye (unregister, unsubscribe, QUIT) gets no answer: given up after commandTimeout.
    await within(Promise.all([a.svc.close(), b.svc.close()]), COMMAND_TIMEOUT + SLACK, 'closing with Redis frozen');
    expect([a.cluster.status, b.cluster.status]).toEqual(['closed', 'closed']);
  });

  it('commandTimeout is checked like the other options', () => {
    expect(() => redisCluster({ commandTimeout: 0 })).toThrow(new TypeError('nestjs-ws-msgpack: option commandTimeout must be a whole number of ms from 1 to 2147483647, got 0'));
    expect(() => redisCluster({ commandTimeout: 1.5 })).toThrow(TypeError);
  });

  it('a broadcast Redis does not take (frozen while the link still looks ready) reached nobody: not even the local peers, so a retry delivers nothing twice', async () => {
    const { a, a1 } = await twoReplicas();
    await redis.pause();
    expect(a.cluster.status).toBe('ready'); // nothing noticed yet
    expect(await within(outcome(a.cluster.broadcast('news', 'frozen')), COMMAND_TIMEOUT + SLACK, 'the broadcast')).toBe('UNAVAILABLE');
    expect(await within(a1.call<number>('sum', [1, 2]))).toBe(3); // a round trip on a1's connection: nothing else was on its way
    expect(news.get('a1')).toEqual([]);
  });

  it("the app's own channels on a subscriber it passes in are left alone (not decoded, not reported)", async () => {
    const { b } = await twoReplicas();
    const [, subscriber] = connections.slice(-2);
    const got: string[] = [];
    subscriber!.on('message', (channel: string, message: string) => channel === 'app-events' && got.push(message));
    await subscriber!.subscribe('app-events');
    const publisher = new Redis(redis.url);
    connections.push(publisher);
    await publisher.publish('app-events', 'hello');
    await until(() => got.length === 1, WAIT_MS, "the app's own message");
    await b.cluster.count(); // a round trip after it
    expect({ got, errors: b.errors.map((e) => e.message) }).toEqual({ got: ['hello'], errors: [] });
  });
});
