/**
 * Replicas on Redis as they are deployed: three server processes (test/support/child-replica.mjs,
 * the built package) on one real redis-server, and real client apps (Nest, WsMsgpackClient with
 * exposeHandlers) in this process, each given a list of replicas to fail over to. Every delivery
 * is counted. The tests run in order on one deployment: the last two kill replica B (SIGKILL)
 * and stop Redis.
 *
 * Bounds are derived from the options below plus SLACK, what a loaded machine may add (2 cores
 * shared with other jobs); no assertion is about speed (that is bench/'s job).
 */
import { Controller, Inject } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { firstValueFrom } from 'rxjs';
import { WsMsgpackStatus, WsSignal } from '../../src/index.js';
import { ensureBuilt } from '../support/dist.js';
import { startClientApp, until, WAIT_MS, within, type TestClientApp } from '../support/helpers.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { codeOf } from '../support/streams.js';

const script = fileURLToPath(new URL('../support/child-replica.mjs', import.meta.url));

/** The replicas' redisCluster timing (short, so that the test stays fast). */
const HEARTBEAT = 100;
/** Longer than replica A's stall in the stream test (a stopped replica stops heartbeating). */
const REPLICA_TIMEOUT = 1500;
const COMMAND_TIMEOUT = 500;
/** The clients' reconnect settings. */
const RECONNECT = { initialDelay: 50, maxDelay: 400, factor: 2 };
/** What a bounded wait allows beyond the bound under test (a loaded machine; a hang still fails). */
const SLACK = 3000;
/** The long stream: its credit window, and where replica A's subscriber stalls. */
const WINDOW = 128;
const STREAM_ITEMS = 100_000;
const STALL_AT = 50_000;

// ---------------------------------------------------------------- the replicas (child processes)

interface Answer {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** A `<tag> <kind> <n>` line before the answer (the stream's `stalled`). */
  note?: (kind: string, n: number) => void;
}

class Replica {
  /** This replica's id in the cluster. */
  id = '';
  port = 0;
  private lastTag = 0;
  private readonly answers = new Map<string, Answer>();
  readonly exited: Promise<unknown>;

  private constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => process.once('exit', resolve));
    process.stdin!.on('error', () => {}); // a command written as it dies: its answer fails below
    void this.exited.then(() => {
      for (const [tag, answer] of this.answers) answer.reject(Object.assign(new Error(`replica ${name} exited before answering ${tag}`), { code: 'EXITED' }));
      this.answers.clear();
    });
  }

  static async start(name: string, redisUrl: string, prefix: string): Promise<Replica> {
    const args = [script, redisUrl, prefix, HEARTBEAT, REPLICA_TIMEOUT, COMMAND_TIMEOUT].map(String);
    const replica = new Replica(name, spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
    const ready = new Promise<void>((resolve, reject) => {
      replica.exited.then(() => reject(new Error(`replica ${name} exited before it was ready`)), reject);
      createInterface({ input: replica.process.stdout! }).on('line', (line) => {
        const [tag, kind, ...rest] = line.split(' ');
        if (tag === 'ready') {
          replica.port = Number(kind);
          replica.id = rest[0]!;
          return resolve();
        }
        replica.answered(tag!, kind!, rest.join(' '));
      });
    });
    await within(ready, WAIT_MS * 3, `replica ${name} ready`);
    return replica;
  }

  /** A client's URL for this replica. */
  url(user: string, room?: string): string {
    return `ws://127.0.0.1:${this.port}/?user=${user}${room ? `&room=${room}` : ''}`;
  }

  /** Runs a command (see child-replica.mjs); rejects with the replica's error (its `code` set). */
  run<T = unknown>(verb: string, arg?: unknown, note?: (kind: string, n: number) => void): Promise<T> {
    const tag = `t${++this.lastTag}`;
    return new Promise<T>((resolve, reject) => {
      this.answers.set(tag, { resolve: resolve as (v: unknown) => void, reject, note });
      this.process.stdin!.write(`${tag} ${verb}${arg === undefined ? '' : ` ${typeof arg === 'string' ? arg : JSON.stringify(arg)}`}\n`);
    });
  }

  /** The code a command fails with, or 'ok'. */
  outcome(verb: string, arg?: unknown): Promise<string> {
    return this.run(verb, arg).then(
      () => 'ok',
      (e: unknown) => codeOf(e) ?? String(e),
    );
  }

  async kill(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    this.process.kill('SIGKILL');
    await this.exited;
  }

  private answered(tag: string, kind: string, body: string): void {
    const answer = this.answers.get(tag);
    if (!answer) return;
    if (kind !== 'ok' && kind !== 'err') return answer.note?.(kind, Number(body));
    this.answers.delete(tag);
    if (kind === 'ok') return answer.resolve(JSON.parse(body));
    const { code, message } = JSON.parse(body) as { code: string; message: string };
    answer.reject(Object.assign(new Error(`replica ${this.name}: ${message}`), { code }));
  }
}

// ---------------------------------------------------------------- the clients (Nest apps in this process)

/** What one client's handlers saw. */
interface Probe {
  news: unknown[];
  produced: number;
  aborted: boolean;
  finalized: boolean;
  slowStarted: number;
  slowAbortedWith: string | undefined;
  /** Called as the 'count' generator produces item `produced` (the lag check of the long stream). */
  onProduce: ((produced: number) => void) | undefined;
}

const PROBE = Symbol('probe');

@Controller()
class ClientHandlers {
  constructor(@Inject(PROBE) private readonly probe: Probe) {}

  @EventPattern('news')
  news(@Payload() data: unknown): void {
    this.probe.news.push(data);
  }

  @MessagePattern('double')
  double(@Payload() n: number): number {
    return n * 2;
  }

  @MessagePattern('count')
  async *count(@Payload() n: number, @WsSignal() signal: AbortSignal): AsyncGenerator<number> {
    const probe = this.probe;
    Object.assign(probe, { produced: 0, aborted: false, finalized: false });
    signal.addEventListener('abort', () => (probe.aborted = true));
    try {
      for (let i = 0; i < n; i++) {
        probe.produced++;
        probe.onProduce?.(probe.produced);
        yield i;
      }
    } finally {
      probe.finalized = true;
    }
  }

  @MessagePattern('slow')
  slow(@Payload() ms: number, @WsSignal() signal: AbortSignal): Promise<string> {
    const probe = this.probe;
    probe.slowStarted++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('late'), ms);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        probe.slowAbortedWith = codeOf(signal.reason);
      });
    });
  }
}

interface TestClient {
  user: string;
  app: TestClientApp;
  probe: Probe;
  /** Every status the client went through. */
  statuses: WsMsgpackStatus[];
}

async function startClient(user: string, urls: string[]): Promise<TestClient> {
  const probe: Probe = { news: [], produced: 0, aborted: false, finalized: false, slowStarted: 0, slowAbortedWith: undefined, onProduce: undefined };
  const app = await startClientApp({ controllers: [ClientHandlers], providers: [{ provide: PROBE, useValue: probe }] }, { url: urls, reconnect: RECONNECT });
  const client: TestClient = { user, app, probe, statuses: [] };
  app.client.status.subscribe((s) => client.statuses.push(s));
  app.client.on('error', () => {}); // the drops the tests cause
  await within(app.client.connect(), WAIT_MS, `${user} connects`);
  return client;
}

// ---------------------------------------------------------------- the deployment

interface PeerInfo {
  id: string;
  replica: string;
  user: string;
  rooms: string[];
}

let redis: TestRedis;
let A: Replica;
let B: Replica;
let C: Replica;
const clients = new Map<string, TestClient>();
/** Peer ids by user, as registered at start. */
const ids = new Map<string, string>();

const client = (user: string) => clients.get(user)!;
const peers = (replica: Replica, selection: object = {}) => replica.run<PeerInfo[]>('peers', selection);

/** Resolves once replica A's presence lists these users, each on a replica other than `not`. */
async function registered(users: string[], not?: Replica): Promise<PeerInfo[]> {
  for (const deadline = Date.now() + WAIT_MS; ;) {
    const found = (await peers(A, { users })).filter((p) => p.replica !== not?.id);
    if (found.length === users.length) return found;
    if (Date.now() > deadline) throw new Error(`${users.join(', ')} not registered within ${WAIT_MS} ms (found ${JSON.stringify(found)})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The fences broadcast since the last {@link clearNews}. */
let fences: string[] = [];
const isFence = (x: unknown) => typeof x === 'string' && x.startsWith('fence ');

/** Broadcasts `data` from `from`, then a fence to everyone, and waits until every client has the fence. */
async function broadcastAndFence(from: Replica, data: string, selection?: object): Promise<unknown> {
  const result = await from.run('broadcast', { pattern: 'news', data, selection });
  const fence = `fence ${fences.length + 1}`;
  fences.push(fence);
  await from.run('broadcast', { pattern: 'news', data: fence });
  await until(() => [...clients.values()].every((c) => c.probe.news.includes(fence)), WAIT_MS, `${fence} reaches every client`);
  return result;
}

/** What each client received apart from the fences, once each was found to have every fence once, in order. */
function newsByUser(): Record<string, unknown[]> {
  for (const c of clients.values()) expect([c.user, c.probe.news.filter(isFence)]).toEqual([c.user, fences]);
  return Object.fromEntries([...clients.values()].map((c) => [c.user, c.probe.news.filter((x) => !isFence(x))]));
}

const clearNews = () => {
  clients.forEach((c) => (c.probe.news = []));
  fences = [];
};

beforeAll(async () => {
  ensureBuilt();
  redis = await startRedis();
  const prefix = `proc${process.pid}`;
  [A, B, C] = await Promise.all(['A', 'B', 'C'].map((name) => Replica.start(name, redis.url, prefix)));
  // a1, b1, c1 in room r; each client's list starts with its replica, then the others to fail over to.
  const lists: [string, string[]][] = [
    ['a1', [A.url('a1', 'r'), B.url('a1', 'r'), C.url('a1', 'r')]],
    ['a2', [A.url('a2')]],
    ['b1', [B.url('b1', 'r'), C.url('b1', 'r'), A.url('b1', 'r')]],
    ['b2', [B.url('b2'), A.url('b2'), C.url('b2')]],
    ['c1', [C.url('c1', 'r'), A.url('c1', 'r'), B.url('c1', 'r')]],
    ['c2', [C.url('c2'), A.url('c2'), B.url('c2')]],
  ];
  for (const [user, urls] of lists) clients.set(user, await startClient(user, urls));
  for (const p of await registered([...clients.keys()])) ids.set(p.user, p.id);
}, 150_000);

afterAll(async () => {
  await Promise.all([...clients.values()].map((c) => c.app.close()));
  await Promise.all([A, B, C].map((r) => r?.kill()));
  await redis?.stop();
});

describe('three replica processes on Redis, real clients', () => {
  it('a broadcast from A reaches the clients of A, B and C once each; a room broadcast only the members', async () => {
    const all = await broadcastAndFence(A, 'all');
    expect(all).toEqual({ local: 2, replicas: 2 });
    expect(await broadcastAndFence(A, 'room', { to: 'r' })).toEqual({ local: 1, replicas: 2 });
    expect(newsByUser()).toEqual({ a1: ['all', 'room'], a2: ['all'], b1: ['all', 'room'], b2: ['all'], c1: ['all', 'room'], c2: ['all'] });
    const inRoom = await peers(B, { to: 'r' });
    expect(inRoom.map((p) => [p.user, p.replica]).sort()).toEqual([
      ['a1', A.id],
      ['b1', B.id],
      ['c1', C.id],
    ]);
  });

  it('A calls a client connected to C: unary; 100,000 items with credit, in order; cancel stops the client’s handler; deadline', async () => {
    const c1 = client('c1');
    const peer = ids.get('c1')!;
    expect(await A.run('lookup', peer)).toBe('remote');
    expect(await A.run('call', { peer, pattern: 'double', data: 21 })).toBe(42);

    // The client's generator is pulled only as credit allows, on two hops: the client's connection
    // to C (at most a window ahead of what C pulled) and C to A (C pulls at most a window ahead of
    // what A's subscriber took). A's subscriber stops dead at item STALL_AT (the process stops
    // itself, before granting credit for it): from then on the client may produce at most two
    // windows more (and the generator's one item ahead), and it does fill both windows at least
    // half (credit is topped up once half a window was taken), so it reaches STALL_AT + WINDOW.
    let stalledAt: number | undefined;
    let maxLead = -Infinity;
    const lead = () => (maxLead = Math.max(maxLead, c1.probe.produced - stalledAt!));
    c1.probe.onProduce = () => stalledAt !== undefined && lead();
    const stream = A.run<{ count: number; inOrder: boolean }>('stream', { peer, pattern: 'count', data: STREAM_ITEMS, window: WINDOW, stallAt: STALL_AT }, (kind, n) => {
      if (kind !== 'stalled') return;
      stalledAt = n;
      lead();
    });
    try {
      await until(() => stalledAt !== undefined && c1.probe.produced >= stalledAt + WINDOW, 15_000, 'the client pulled up to its credit while A is stalled');
    } finally {
      c1.probe.onProduce = undefined;
      A.process.kill('SIGCONT');
    }
    expect(stalledAt).toBe(STALL_AT);
    expect(maxLead).toBeLessThanOrEqual(2 * WINDOW + 1);
    expect(await within(stream, 60_000, 'the 100,000-item stream')).toEqual({ count: STREAM_ITEMS, inOrder: true });
    expect(c1.probe.produced).toBe(STREAM_ITEMS);
    expect(c1.probe.finalized).toBe(true);

    // Cancel: A takes 5 items of a million and unsubscribes; the client's handler is told and ends.
    expect(await A.run('take', { peer, pattern: 'count', data: 1_000_000, n: 5 })).toEqual([0, 1, 2, 3, 4]);
    await until(() => c1.probe.aborted && c1.probe.finalized, WAIT_MS, 'the client’s signal aborted and its generator finalized');
    expect(c1.probe.produced).toBeLessThan(5 + 2 * 256 + 2); // held by credit (default window 256 on both hops), then stopped

    // Deadline: the client's handler is told DEADLINE_EXCEEDED, A's call fails with it.
    const late = A.outcome('call', { peer, pattern: 'slow', data: 60_000, timeout: 200 });
    expect(await within(late, 200 + 1000 + SLACK, 'the call with a deadline')).toBe('DEADLINE_EXCEEDED'); // deadline + the caller's grace
    await until(() => c1.probe.slowAbortedWith !== undefined, WAIT_MS, 'the client’s handler told');
    expect(c1.probe.slowAbortedWith).toBe('DEADLINE_EXCEEDED');
  }, 90_000);

  it('SIGKILL of B: its clients reconnect to A or C within the backoff bound; calls to its old peers fail UNAVAILABLE; nothing is delivered twice', async () => {
    const [b1, b2] = [client('b1'), client('b2')];
    const [oldB1, oldB2] = [ids.get('b1')!, ids.get('b2')!];
    expect(await A.run('lookup', oldB1)).toBe('remote'); // A holds this peer object across the kill
    const inFlight = A.outcome('call', { peer: oldB2, pattern: 'slow', data: 60_000 });
    await until(() => b2.probe.slowStarted === 1, WAIT_MS, 'the call reached b2');
    clearNews();

    const before = [b1.statuses.length, b2.statuses.length];
    await B.kill();
    // The first retry after a drop waits at most min(maxDelay, initialDelay × factor^failures),
    // failures being 0 or 1 here (1 when the connection lived less than a second), and goes to the
    // next URL of the client's list (C for b1, A for b2): that bound, plus the new handshake.
    const reconnectBound = Math.min(RECONNECT.maxDelay, RECONNECT.initialDelay * RECONNECT.factor) + SLACK;
    const since = (c: TestClient, i: number) => c.statuses.slice(before[i]).join(' ');
    const back = (c: TestClient, i: number) => since(c, i).startsWith('reconnecting') && since(c, i).endsWith(' connected');
    await until(() => back(b1, 0) && back(b2, 1), reconnectBound, 'b1 and b2 dropped and reconnected');
    expect([since(b1, 0), since(b2, 1)]).toEqual([expect.stringMatching(/^(reconnecting )+connected$/), expect.stringMatching(/^(reconnecting )+connected$/)]);
    expect(await within(firstValueFrom(b1.app.client.send('whoami', null)))).toBe(C.id);
    expect(await within(firstValueFrom(b2.app.client.send('whoami', null)))).toBe(A.id);
    const moved = await registered(['b1', 'b2'], B);
    expect(moved.map((p) => [p.user, p.replica]).sort()).toEqual([
      ['b1', C.id],
      ['b2', A.id],
    ]);

    // Calls to B's old peers: the one in flight fails once B is forgotten (heartbeat), at the latest;
    // the peer A held fails at once (B's channel has no subscriber left) or once B is forgotten.
    const dead = REPLICA_TIMEOUT + HEARTBEAT + SLACK;
    expect(await within(inFlight, dead, 'the call in flight to b2 on B')).toBe('UNAVAILABLE');
    expect(await within(A.outcome('call', { peer: oldB1, pattern: 'double', data: 1, held: true }), dead, 'a call to the peer held')).toBe('UNAVAILABLE');
    // A new lookup of an old id: within replicaTimeout B's record may still name it (the call then
    // fails UNAVAILABLE); after it, no replica holds it.
    expect(['UNAVAILABLE', 'NO_PEER']).toContain(await A.outcome('call', { peer: oldB1, pattern: 'double', data: 1 }));
    for (const deadline = Date.now() + dead; (await A.run('lookup', oldB1)) !== 'none';) {
      if (Date.now() > deadline) throw new Error(`peer ${oldB1} of B still found after ${dead} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await A.outcome('call', { peer: oldB2, pattern: 'double', data: 1 })).toBe('NO_PEER');
    expect(await A.run('peers', { users: ['b1', 'b2'] })).toHaveLength(2); // one each: the new connections

    // Nothing twice: every client (b1, b2 on their new replicas) gets each broadcast once.
    expect(await broadcastAndFence(A, 'after')).toEqual({ local: 3, replicas: 1 }); // a1, a2 and b2 on A; C
    expect(await broadcastAndFence(C, 'room after', { to: 'r' })).toEqual({ local: 2, replicas: 1 }); // c1 and b1 on C; A
    expect(newsByUser()).toEqual({
      a1: ['after', 'room after'],
      a2: ['after'],
      b1: ['after', 'room after'],
      b2: ['after'],
      c1: ['after', 'room after'],
      c2: ['after'],
    });
  }, 60_000);

  it('Redis stopped mid-run: cross-replica calls fail fast with UNAVAILABLE, local calls never fail; restarted, cross-replica works again without restarting anything', async () => {
    const newIds = new Map((await peers(A)).map((p) => [p.user, p.id]));
    expect(newIds.size).toBe(6);
    // Local calls all along: every client to its replica, and A and C to one of their own clients.
    let outage = false;
    let running = true;
    const loops: { name: string; ok: number; okDuringOutage: number; failures: string[] }[] = [];
    const loop = (name: string, call: () => Promise<unknown>) => {
      const stats = { name, ok: 0, okDuringOutage: 0, failures: [] as string[] };
      loops.push(stats);
      return (async () => {
        while (running) {
          try {
            await within(call(), WAIT_MS, name);
            stats.ok++;
            if (outage) stats.okDuringOutage++;
          } catch (e) {
            stats.failures.push(codeOf(e) ?? String(e));
          }
        }
      })();
    };
    const looping = [
      ...[...clients.values()].map((c) => loop(`${c.user} → its replica`, () => firstValueFrom(c.app.client.send('sum', [1, 2])))),
      loop('A → a1', () => A.run('call', { peer: newIds.get('a1'), pattern: 'double', data: 2 })),
      loop('C → c1', () => C.run('call', { peer: newIds.get('c1'), pattern: 'double', data: 2 })),
    ];
    // A cross-replica call in flight when Redis goes.
    const inFlight = A.outcome('call', { peer: newIds.get('c2'), pattern: 'slow', data: 60_000 });
    await until(() => client('c2').probe.slowStarted === 1, WAIT_MS, 'the call reached c2');

    await redis.stop();
    try {
      outage = true;
      // Redis closed the connections: each replica is down at once (status 'down').
      for (const r of [A, C]) {
        for (const deadline = Date.now() + WAIT_MS; (await r.run('status')) !== 'down';) {
          if (Date.now() > deadline) throw new Error(`replica ${r.name} not down within ${WAIT_MS} ms`);
          await new Promise((res) => setTimeout(res, 10));
        }
      }
      expect(await within(inFlight, COMMAND_TIMEOUT + SLACK, 'the call in flight')).toBe('UNAVAILABLE');
      const failFast = await within(
        Promise.all([A.outcome('call', { peer: newIds.get('c2'), pattern: 'double', data: 1 }), A.outcome('broadcast', { pattern: 'news', data: 'lost' }), C.outcome('peers', {})]),
        COMMAND_TIMEOUT + SLACK,
        'cross-replica operations during the outage',
      );
      expect(failFast).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
      await until(() => loops.every((l) => l.okDuringOutage > 0), WAIT_MS, 'local calls during the outage');
    } finally {
      await redis.start();
    }
    for (const r of [A, C]) {
      // ioredis's own connections retry every 2 s at the most; then presence is written again.
      for (const deadline = Date.now() + 2000 + SLACK; (await r.run('status')) !== 'ready';) {
        if (Date.now() > deadline) throw new Error(`replica ${r.name} not ready again within ${2000 + SLACK} ms`);
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    outage = false;
    running = false;
    await Promise.all(looping);
    expect(loops.filter((l) => l.failures.length > 0)).toEqual([]);

    await registered([...clients.keys()]);
    expect(await A.run('call', { peer: newIds.get('c2'), pattern: 'double', data: 5 })).toBe(10);
    clearNews();
    expect(await broadcastAndFence(A, 'back')).toEqual({ local: 3, replicas: 1 });
    expect(Object.values(newsByUser())).toEqual(Array.from({ length: 6 }, () => ['back']));
  }, 60_000);
});
