import {
  Controller,
  Injectable,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type ModuleMetadata,
  type NestInterceptor,
} from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { finalize, firstValueFrom, from, interval, lastValueFrom, type Observable, range, reduce, take, toArray } from 'rxjs';
import {
  WS_PEER_CONNECTED,
  WS_PEER_DISCONNECTED,
  WsEventPattern,
  WsMsgpackClient,
  WsMsgpackContext,
  WsMsgpackError,
  WsMsgpackRecordBuilder,
  WsPeer,
  WsSignal,
  type WsMsgpackPeer,
  type WsMsgpackServerOptions,
  type WsPeerDisconnected,
} from '../../src/index.js';
import { all, errorOf, first, startClientApp, startService, until, WAIT_MS, within, type TestClientApp, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, gate, Probes, type Gate } from '../support/streams.js';

/** What happened, in order, on the server side. */
const serverLog: string[] = [];
/** What the client apps' handlers saw. */
const clientLog: string[] = [];
const probes = new Probes();

// ---------------------------------------------------------------- server app

@Controller()
class HubController {
  @WsEventPattern(WS_PEER_CONNECTED)
  async connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
    serverLog.push(`connected ${peer.id}`);
    peer.state.set('calls', 0);
    // simplerpc's welcome: the hook calls the client; the client's own calls wait meanwhile.
    const rooms = new URL(peer.handshake.url, 'ws://x').searchParams.get('rooms');
    if (rooms) peer.join(...rooms.split(','));
    if (new URL(peer.handshake.url, 'ws://x').searchParams.has('welcome')) {
      const answer = await firstValueFrom(peer.send<string>('client.welcome', 'welcome!'));
      serverLog.push(`welcomed ${peer.id}: ${answer}`);
    }
  }

  @WsEventPattern(WS_PEER_DISCONNECTED)
  disconnected(@Payload() info: WsPeerDisconnected, @WsPeer() peer: WsMsgpackPeer): void {
    serverLog.push(`disconnected ${info.peerId} ${info.code} state.calls=${String(peer.state.get('calls'))} name=${String(peer.state.get('name') ?? '-')}`);
  }

  @MessagePattern('whoami')
  whoami(@Ctx() ctx: WsMsgpackContext): string {
    const peer = ctx.getPeer();
    peer.state.set('calls', (peer.state.get('calls') as number) + 1);
    serverLog.push(`call ${peer.id}`);
    return peer.id;
  }

  @MessagePattern('state.set')
  setState(@Payload() value: string, @WsPeer() peer: WsMsgpackPeer): boolean {
    peer.state.set('name', value);
    return true;
  }

  @MessagePattern('state.get')
  getState(@WsPeer() peer: WsMsgpackPeer): string | null {
    return (peer.state.get('name') as string | undefined) ?? null;
  }

  /** wsrpc_aiohttp's multiply_loopback: the server calls the client back inside the client's call. */
  @MessagePattern('multiply_loopback')
  multiplyLoopback(@Payload() { a, b }: { a: number; b: number }, @WsPeer() peer: WsMsgpackPeer): Observable<number> {
    return peer.send<number>('client.multiply', { a, b });
  }

  /** One level of a loopback chain: calls the client, which calls back, down to depth 0. */
  @MessagePattern('loop')
  async loop(@Payload() { depth, tag }: { depth: number; tag: string }, @WsPeer() peer: WsMsgpackPeer, @WsSignal() signal: AbortSignal): Promise<Observable<number>> {
    probes.get(`${tag}:server:${depth}`).watch(signal).started++;
    return peer.send<number>('client.loop', { depth: depth - 1, tag });
  }

  /** The same, as a Promise that awaits the nested call: only the bound peer can cancel it. */
  @MessagePattern('loopAwait')
  async loopAwait(@Payload() { depth, tag }: { depth: number; tag: string }, @WsPeer() peer: WsMsgpackPeer, @WsSignal() signal: AbortSignal): Promise<number[]> {
    probes.get(`${tag}:server:${depth}`).watch(signal).started++;
    return lastValueFrom(peer.send<number>('client.loopAwait', { depth: depth - 1, tag }).pipe(toArray()));
  }
}

// ---------------------------------------------------------------- client app

@Injectable()
class DenyGuard implements CanActivate {
  canActivate(): boolean {
    return false;
  }
}

@Controller()
class AgentController {
  @MessagePattern('client.add')
  add(@Payload() { a, b }: { a: number; b: number }): number {
    return a + b;
  }

  @MessagePattern('client.multiply')
  multiply(@Payload() { a, b }: { a: number; b: number }): number {
    return a * b;
  }

  @MessagePattern('client.count')
  count(@Payload() n: number): Observable<number> {
    return range(0, n);
  }

  @MessagePattern('client.sum')
  sum(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, b) => a + b, 0));
  }

  @MessagePattern('client.ticks')
  ticks(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return interval(2).pipe(finalize(() => p.finalized++));
  }

  @MessagePattern('client.secret')
  @UseGuards(DenyGuard)
  secret(): string {
    return 'leaked';
  }

  @MessagePattern('client.whoami')
  whoami(@Ctx() ctx: WsMsgpackContext): string | null {
    return new URL(ctx.getPeer().handshake.url).searchParams.get('client');
  }

  @MessagePattern('client.ctx')
  context(@Ctx() ctx: WsMsgpackContext): unknown {
    return {
      headers: ctx.getHeaders(),
      pattern: ctx.getPattern(),
      signal: ctx.getSignal() instanceof AbortSignal,
      peerUrl: ctx.getPeer().handshake.url,
      oddId: ctx.getCallId() % 2,
    };
  }

  @MessagePattern('client.welcome')
  welcome(@Payload() text: string): string {
    clientLog.push(`welcome: ${text}`);
    return 'thanks';
  }

  @WsEventPattern('news')
  news(@Payload() item: string, @Ctx() ctx: WsMsgpackContext): void {
    clientLog.push(`news ${item} ${new URL(ctx.getPeer().handshake.url).searchParams.get('client')}`);
  }

  @MessagePattern('client.hang')
  hang(@Payload() tag: string, @WsSignal() signal: AbortSignal): Promise<never> {
    probes.get(tag).watch(signal).started++;
    return new Promise<never>(() => {});
  }

  @MessagePattern('client.loop')
  loop(@Payload() { depth, tag }: { depth: number; tag: string }, @WsPeer() server: WsMsgpackPeer, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(`${tag}:client:${depth}`).watch(signal);
    p.started++;
    if (depth === 0) return interval(2).pipe(finalize(() => p.finalized++));
    return server.send<number>('loop', { depth: depth - 1, tag });
  }

  @MessagePattern('client.loopAwait')
  async loopAwait(
    @Payload() { depth, tag }: { depth: number; tag: string },
    @WsPeer() server: WsMsgpackPeer,
    @WsSignal() signal: AbortSignal,
  ): Promise<Observable<number> | number[]> {
    const p = probes.get(`${tag}:client:${depth}`).watch(signal);
    p.started++;
    if (depth === 0) return interval(2).pipe(finalize(() => p.finalized++));
    return lastValueFrom(server.send<number>('loopAwait', { depth: depth - 1, tag }).pipe(toArray()));
  }
}

/** The server-side peer of a client (found through the id the server reports). */
async function serverPeerOf(svc: TestService, client: WsMsgpackClient): Promise<WsMsgpackPeer> {
  const id = await first(client.send<string>('whoami', null));
  const peer = svc.server.peers.get(id);
  if (!peer) throw new Error(`no server peer ${id}`);
  return peer;
}

describe('the server calls the client: a client app exposes ordinary Nest handlers', () => {
  let svc: TestService;
  let agent: TestClientApp;
  let peer: WsMsgpackPeer;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
    agent = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=agent` });
    peer = await serverPeerOf(svc, agent.client);
  });
  afterAll(async () => {
    await agent.close();
    await svc.close();
  });

  it('unary', async () => {
    expect(await first(peer.send('client.add', { a: 2, b: 3 }))).toBe(5);
  });

  it('response stream', async () => {
    expect(await all(peer.send('client.count', 5))).toEqual([0, 1, 2, 3, 4]);
  });

  it('request stream', async () => {
    expect(await first(peer.send('client.sum', from([1, 2, 3, 4])))).toBe(10);
  });

  it('cancel: the client-side producer is stopped (finalize runs, signal CANCELLED)', async () => {
    const tag = `ticks-${Math.random()}`;
    expect(await all(peer.send<number>('client.ticks', tag).pipe(take(3)))).toEqual([0, 1, 2]);
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'client producer finalized');
    expect(p.abortCode).toBe('CANCELLED');
  });

  it('headers, deadline and the context on the client side', async () => {
    const record = new WsMsgpackRecordBuilder(null).setHeaders({ tenant: 'acme' }).setTimeout(5000).build();
    expect(await first(peer.send('client.ctx', record))).toEqual({
      headers: { tenant: 'acme' },
      pattern: 'client.ctx',
      signal: true,
      peerUrl: `${svc.url}/?client=agent`,
      oddId: 0, // the server's calls use even ids
    });
  });

  it("a guard on the client-side handler denies: the server gets Nest's Forbidden payload", async () => {
    expect(await errorOf(peer.send('client.secret', null))).toEqual({ status: 'error', message: 'Forbidden resource' });
  });

  it('an unknown pattern: UNIMPLEMENTED', async () => {
    const err = await errorOf(peer.send('client.nothing', null));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(codeOf(err)).toBe('UNIMPLEMENTED');
  });

  it("wsrpc_aiohttp's multiply_loopback: the server calls the client inside the client's call", async () => {
    expect(await first(agent.client.send('multiply_loopback', { a: 6, b: 7 }))).toBe(42);
  });

  it.each(['loop', 'loopAwait'])('%s: three levels deep; cancelling the outer call tears every inner one down', async (pattern) => {
    const tag = `${pattern}-${Math.random()}`;
    // client → server(3) → client(2) → server(1) → client(0): an endless stream at the bottom.
    const it = agent.client.iterate<number>(pattern, { depth: 3, tag });
    if (pattern === 'loop') {
      expect((await within(it.next())).value).toBe(0);
      await it.return!();
    } else {
      // loopAwait answers only at the end (it never comes): wait until the bottom runs, then cancel.
      const pending = it.next();
      await until(() => probes.get(`${tag}:client:0`).started === 1, WAIT_MS, 'the bottom level started');
      await it.return!();
      expect(await within(pending)).toEqual({ value: undefined, done: true });
    }
    await until(() => probes.get(`${tag}:client:0`).finalized === 1, WAIT_MS, 'the innermost producer finalized');
    // Meanwhile the connection carried other calls in both directions (no head-of-line blocking).
    expect(await first(peer.send('client.add', { a: 1, b: 1 }))).toBe(2);
    for (const level of [`${tag}:server:3`, `${tag}:client:2`, `${tag}:server:1`, `${tag}:client:0`]) {
      await until(() => probes.get(level).abortReasons.length === 1, WAIT_MS, `${level} aborted`);
      expect(probes.get(level).abortCode).toBe('CANCELLED');
    }
  });

  it("a client that disconnects in the middle of a call: the server's call fails with UNAVAILABLE, never hangs", async () => {
    const other = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=leaver` });
    const leaver = await serverPeerOf(svc, other.client);
    const tag = `hang-${Math.random()}`;
    const pending = errorOf(leaver.send('client.hang', tag));
    await until(() => probes.get(tag).started === 1, WAIT_MS, 'the client handler started');
    await other.close();
    expect(codeOf(await pending)).toBe('UNAVAILABLE');
    expect(probes.get(tag).abortCode).toBe('UNAVAILABLE'); // and the client-side handler was aborted
  });
});

describe("limits apply to the server's calls too", () => {
  let svc: TestService;
  let agent: TestClientApp;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
    agent = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=limited`, maxConcurrentCalls: 1 });
  });
  afterAll(async () => {
    await agent.close();
    await svc.close();
  });

  it('the client refuses a second concurrent server call with RESOURCE_EXHAUSTED (maxConcurrentCalls: 1)', async () => {
    const peer = await serverPeerOf(svc, agent.client);
    const tag = `limit-${Math.random()}`;
    const hanging = peer.send('client.hang', tag).subscribe({ error: () => {} });
    await until(() => probes.get(tag).started === 1, WAIT_MS, 'first call running');
    const err = await errorOf(peer.send('client.add', { a: 1, b: 1 }));
    expect(codeOf(err)).toBe('RESOURCE_EXHAUSTED');
    hanging.unsubscribe();
  });
});

describe('a client without exposed handlers, and reconnects', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
  });
  afterAll(() => svc.close());

  it('answers server calls with UNIMPLEMENTED', async () => {
    const plain = svc.client();
    const peer = await serverPeerOf(svc, plain);
    const err = await errorOf(peer.send('client.add', { a: 1, b: 1 }));
    expect(codeOf(err)).toBe('UNIMPLEMENTED');
  });

  it('after a reconnect the exposed handlers answer again, with no user code', async () => {
    const agent = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=again` });
    try {
      const before = await serverPeerOf(svc, agent.client);
      expect(await first(before.send('client.add', { a: 1, b: 2 }))).toBe(3);
      await agent.client.close();
      await agent.client.connect();
      const after = await serverPeerOf(svc, agent.client);
      expect(after.id).not.toBe(before.id);
      expect(await first(after.send('client.add', { a: 2, b: 2 }))).toBe(4);
    } finally {
      await agent.close();
    }
  });
});

describe('100 clients, each called by the server at once', () => {
  let svc: TestService;
  const clients: WsMsgpackClient[] = [];
  let app: TestClientApp;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
    // One client app serving its handlers over 100 clients (each its own connection).
    app = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=0` });
    clients.push(app.client);
    for (let k = 1; k < 100; k++) {
      const c = new WsMsgpackClient({ url: `${svc.url}/?client=${k}` });
      app.app.connectMicroservice({ strategy: c.exposeHandlers() });
      clients.push(c);
    }
    await within(app.app.startAllMicroservices(), WAIT_MS, 'start 100 client strategies');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await app.close();
    await svc.close();
  });

  it('every answer comes from the right client: no crossed answers', async () => {
    await until(() => svc.server.peers.size === 100, WAIT_MS, '100 peers');
    const peers = [...svc.server.peers];
    const answers = await within(
      Promise.all(
        peers.map(async (peer) => ({ asked: new URL(peer.handshake.url, 'ws://x').searchParams.get('client'), answered: await first(peer.send('client.whoami', null)) })),
      ),
      WAIT_MS,
      '100 concurrent calls',
    );
    expect(answers.every((a) => a.asked === a.answered)).toBe(true);
    expect(new Set(answers.map((a) => a.answered)).size).toBe(100);
  });
});

describe('connection hooks, per-connection state, broadcast', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [HubController] });
  });
  afterAll(() => svc.close());

  it('connected and disconnected fire exactly once per connection, connected before any call, disconnected after', async () => {
    serverLog.length = 0;
    const clients = [svc.client(), svc.client(), svc.client()];
    const ids = await Promise.all(clients.map((c) => first(c.send<string>('whoami', null))));
    await Promise.all(clients.map((c) => c.close()));
    await until(() => serverLog.filter((l) => l.startsWith('disconnected')).length === 3, WAIT_MS, 'three disconnected hooks');
    for (const id of ids) {
      const mine = serverLog.filter((l) => l.includes(id));
      expect(mine).toEqual([`connected ${id}`, `call ${id}`, `disconnected ${id} 1000 state.calls=1 name=-`]);
    }
  });

  it("a connected hook may call the peer (simplerpc's welcome); the peer's calls wait until it returns", async () => {
    serverLog.length = 0;
    clientLog.length = 0;
    const agent = await startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=w&welcome=1` });
    try {
      const id = await first(agent.client.send<string>('whoami', null));
      expect(clientLog).toContain('welcome: welcome!');
      expect(serverLog.filter((l) => l.includes(id))).toEqual([`connected ${id}`, `welcomed ${id}: thanks`, `call ${id}`]);
    } finally {
      await agent.close();
    }
  });

  it('state is per connection, readable in the disconnected hook, and gone after it', async () => {
    const a = svc.client();
    const b = svc.client();
    try {
      expect(await first(a.send('state.set', 'alice'))).toBe(true);
      expect(await first(a.send('state.get', null))).toBe('alice');
      expect(await first(b.send('state.get', null))).toBeNull();
      const peerA = await serverPeerOf(svc, a);
      expect(peerA.state.get('name')).toBe('alice');
      serverLog.length = 0;
      await a.close();
      await until(() => serverLog.includes(`disconnected ${peerA.id} 1000 state.calls=1 name=alice`), WAIT_MS, 'disconnected hook, with the state');
      await until(() => peerA.state.size === 0, WAIT_MS, 'state cleared');
      expect(peerA.isConnected).toBe(false);
      expect(svc.server.peers.has(peerA.id)).toBe(false);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('broadcast reaches every connected client exactly once, and none that disconnected', async () => {
    clientLog.length = 0;
    const apps = await Promise.all(['b1', 'b2', 'b3'].map((k) => startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=${k}` })));
    try {
      await apps[2]!.close();
      await until(() => svc.server.peers.size === 2, WAIT_MS, 'two peers left');
      expect(svc.server.broadcast('news', 'n1')).toBe(2);
      expect(svc.server.broadcast('news', 'n2', (p) => p.handshake.url.includes('b1'))).toBe(1);
      await until(() => clientLog.length === 3, WAIT_MS, 'three deliveries');
      // A round trip on each connection: nothing else was on its way.
      await Promise.all(apps.slice(0, 2).map((a) => first(a.client.send('whoami', null))));
      expect(clientLog.sort()).toEqual(['news n1 b1', 'news n1 b2', 'news n2 b1']);
    } finally {
      await Promise.all(apps.slice(0, 2).map((a) => a.close()));
    }
  });

  it('broadcast to a selection: rooms the peers joined in the connected hook (to), and exceptions by room or peer id (except)', async () => {
    clientLog.length = 0;
    const apps = await Promise.all(
      [
        ['r1', 'eu,vip'],
        ['r2', 'eu'],
        ['r3', 'us'],
      ].map(([k, rooms]) => startClientApp({ controllers: [AgentController], providers: [DenyGuard] }, { url: `${svc.url}/?client=${k}&rooms=${rooms}` })),
    );
    try {
      await Promise.all(apps.map((a) => first(a.client.send('whoami', null)))); // connected hooks done: rooms joined
      const r2 = [...svc.server.peers].find((p) => p.handshake.url.includes('client=r2'))!;
      expect([...r2.rooms]).toEqual(['eu']);
      expect(svc.server.broadcast('news', 'eu', { to: 'eu' })).toBe(2);
      expect(svc.server.broadcast('news', 'eu-not-vip', { to: ['eu'], except: 'vip' })).toBe(1);
      expect(svc.server.broadcast('news', 'all-but-r2', { except: [r2.id] })).toBe(2);
      expect(svc.server.broadcast('news', 'nobody', { to: 'asia' })).toBe(0);
      r2.leave('eu');
      r2.join('us');
      expect(svc.server.peers.broadcast('news', 'us', { to: 'us' })).toBe(2);
      await until(() => clientLog.length === 7, WAIT_MS, 'seven deliveries');
      await Promise.all(apps.map((a) => first(a.client.send('whoami', null))));
      expect(clientLog.sort()).toEqual(['news all-but-r2 r1', 'news all-but-r2 r3', 'news eu r1', 'news eu r2', 'news eu-not-vip r2', 'news us r2', 'news us r3']);
      expect(() => r2.join('')).toThrow('nestjs-ws-msgpack: a room is a non-empty string, got ""');
    } finally {
      await Promise.all(apps.map((a) => a.close()));
    }
  });

  it('broadcast of data that cannot be encoded throws instead of silently reaching nobody', async () => {
    const c = svc.client();
    await first(c.send('whoami', null));
    expect(() => svc.server.broadcast('news', () => 1)).toThrow(/could not be encoded/);
    await c.close();
  });
});

describe('the connected hook holds the peer back, within a bound', () => {
  const hookGate = gate();
  let echoCalls = 0;
  let framesReceived = 0;
  @Controller()
  class SlowHookController {
    @WsEventPattern(WS_PEER_CONNECTED)
    async connected(): Promise<void> {
      await hookGate.promise;
    }

    @MessagePattern('echo')
    echo(@Payload() v: unknown): unknown {
      echoCalls++;
      return v;
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [SlowHookController] });
    svc.server.on('error', () => {});
    svc.server.on('connection', (ws) => ws.on('message', () => framesReceived++));
  });
  afterAll(async () => {
    hookGate.open();
    await svc.close();
  });

  it('a call made while the hook runs is answered once it returns', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'echo', 'early']);
      peer.send([1, 3, 'echo', 'ping']);
      await until(() => framesReceived === 2, WAIT_MS, 'both REQUESTs reached the server');
      expect(echoCalls).toBe(0); // held while the hook runs
      hookGate.open();
      expect(await peer.next((f) => f[1] === 1)).toEqual([4, 1, 'early']);
      expect(await peer.next((f) => f[1] === 3)).toEqual([4, 3, 'ping']);
    } finally {
      peer.close();
    }
  });

  // A server whose hook never returns, e.g. awaiting a welcome the peer never answers.
  it.each<[string, WsMsgpackServerOptions, number, () => unknown]>([
    ['more than 10,000 frames', {}, 10_001, () => 0],
    ['more bytes than maxConnectionBufferBytes (40 events of 256 KiB, 10 MiB, with 1 MiB)', { maxConnectionBufferBytes: 1024 * 1024 }, 40, () => Buffer.alloc(256 * 1024, 7)],
  ])('%s held while it runs close the connection with 1008', async (_what, options, count, payload) => {
    const blocked = gate();
    @Controller()
    class NeverController {
      @WsEventPattern(WS_PEER_CONNECTED)
      connected(): Promise<void> {
        return blocked.promise;
      }
    }
    const svc2 = await startService({ controllers: [NeverController] }, options);
    svc2.server.on('error', () => {});
    const peer = await RawPeer.open(svc2.url);
    try {
      const data = payload();
      for (let i = 0; i < count; i++) peer.send([2, 'flood', data]);
      expect(await peer.whenClosed()).toEqual({ code: 1008, reason: 'too many frames while the connected hook ran' });
    } finally {
      blocked.open();
      peer.close();
      await svc2.close();
    }
  });
});

// ---------------------------------------------------------------- the hooks' contract, whatever their shape

@Injectable()
class PassThrough implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

/** Counts the frames a server received on each connection (after the transport handled them: its listener runs first). */
function countFrames(svc: TestService): { n: number } {
  const counter = { n: 0 };
  svc.server.on('connection', (ws) => ws.on('message', () => counter.n++));
  return counter;
}

/** What a hold probe watches: the hook's start and the call, and the gate the hook waits on. */
interface HeldHook {
  readonly log: string[];
  readonly hookGate: Gate;
}

/** The probed connected hook: for a connection to `/?gated=1`, waits on the gate, then sets the peer's state up. */
async function gatedHook(held: HeldHook, peer: WsMsgpackPeer): Promise<void> {
  if (!peer.handshake.url.includes('gated')) return;
  held.log.push('hook start');
  await held.hookGate.promise;
  peer.state.set('ready', true);
}

/** 'ready' answers whether the hook set the state up (logging 'call'); 'ping' is an ungated round trip. */
function readyController(held: HeldHook): ModuleMetadata['controllers'] {
  @Controller()
  class Ready {
    @MessagePattern('ready')
    ready(@WsPeer() peer: WsMsgpackPeer): boolean {
      held.log.push('call');
      return peer.state.get('ready') === true;
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }
  return [Ready];
}

/**
 * A gated connection sends a call while its connected hook waits; an ungated connection's round
 * trip then proves the event loop has turned; the gated call must not have been dispatched yet,
 * and once the hook returns it sees what the hook set up.
 */
async function expectHeldUntilHookReturns(svc: TestService, { log, hookGate }: HeldHook): Promise<void> {
  const frames = countFrames(svc);
  const raw = await RawPeer.open(`${svc.url}/?gated=1`);
  try {
    await until(() => log.includes('hook start'), WAIT_MS, 'the connected hook started');
    raw.send([1, 1, 'ready', null]);
    await until(() => frames.n === 1, WAIT_MS, 'the REQUEST reached the server');
    const other = svc.client();
    expect(await first(other.send('ping', null))).toBe('pong'); // the loop turned: a dispatch would have happened
    await other.close();
    expect(log).not.toContain('call'); // the peer's calls wait until the connected hook has returned
    hookGate.open();
    expect(await raw.next((f) => f[1] === 1)).toEqual([4, 1, true]); // and the call sees what the hook set up
  } finally {
    hookGate.open();
    raw.close();
  }
}

type HoldCase = (held: HeldHook) => { metadata: ModuleMetadata; setup?: (svc: TestService) => void };

describe.each<[string, HoldCase]>([
  [
    'an interceptor on the hook',
    (held) => {
      @Controller()
      class Hub {
        @WsEventPattern(WS_PEER_CONNECTED)
        @UseInterceptors(PassThrough) // docs/guides/peers.md: "DI, guards, interceptors and exception filters apply"
        connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
          return gatedHook(held, peer);
        }
      }
      return { metadata: { controllers: [Hub, ...readyController(held)!], providers: [PassThrough] } };
    },
  ],
  [
    'two hook handlers in two controllers',
    (held) => {
      @Controller()
      class Presence {
        @WsEventPattern(WS_PEER_CONNECTED)
        connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
          return gatedHook(held, peer);
        }
      }
      @Controller()
      class Audit {
        @WsEventPattern(WS_PEER_CONNECTED)
        audit(): void {
          /* a second, unrelated hook in another controller */
        }
      }
      return { metadata: { controllers: [Presence, Audit, ...readyController(held)!] } };
    },
  ],
  [
    'a processing start hook (instrumentation)',
    (held) => {
      @Controller()
      class Hub {
        @WsEventPattern(WS_PEER_CONNECTED)
        connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
          return gatedHook(held, peer);
        }
      }
      return {
        metadata: { controllers: [Hub, ...readyController(held)!] },
        // Typed `=> void` by Nest: a tracer that runs `done` inside a span and returns nothing.
        setup: (svc) =>
          svc.server.setOnProcessingStartHook((_transport, _ctx, done) => {
            void done();
          }),
      };
    },
  ],
])('the connected hook holds the peer back until it returns, with %s', (_what, make) => {
  const held: HeldHook = { log: [], hookGate: gate() };
  let svc: TestService;
  beforeAll(async () => {
    const { metadata, setup } = make(held);
    svc = await startService(metadata);
    setup?.(svc);
  });
  afterAll(async () => {
    held.hookGate.open();
    await svc.close();
  });

  it('a call made while the hook runs is dispatched only after it returned, and sees the state it set up', async () => {
    await expectHeldUntilHookReturns(svc, held);
  });
});

describe('the disconnected hook and the state', () => {
  const log: string[] = [];
  const hookGate = gate();
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    async connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
      if (!peer.handshake.url.includes('slow')) return;
      log.push('connected start');
      await hookGate.promise;
      peer.state.set('joined', true);
      log.push('connected end');
    }

    @WsEventPattern(WS_PEER_DISCONNECTED)
    @UseInterceptors(PassThrough)
    async disconnected(@Payload() _info: WsPeerDisconnected, @WsPeer() peer: WsMsgpackPeer): Promise<void> {
      log.push('disconnected start');
      await Promise.resolve(); // any await: a lookup, a log write
      log.push(`disconnected name=${String(peer.state.get('name') ?? '-')}`);
    }

    @MessagePattern('state.set')
    setState(@Payload() value: string, @WsPeer() peer: WsMsgpackPeer): boolean {
      peer.state.set('name', value);
      return true;
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Hub], providers: [PassThrough] });
  });
  afterAll(async () => {
    hookGate.open();
    await svc.close();
  });

  it('the state is still there in an (intercepted) disconnected hook that awaits something', async () => {
    log.length = 0;
    const c = svc.client();
    expect(await first(c.send('state.set', 'alice'))).toBe(true);
    await c.close();
    await until(() => log.some((l) => l.startsWith('disconnected name=')), WAIT_MS, 'the disconnected hook ran');
    expect(log).toContain('disconnected name=alice'); // docs/guides/peers.md: "the peer's `state` is still there while it runs, and is cleared once it returns"
  });

  it('a peer that leaves while the connected hook runs: disconnected comes after connected, and no state outlives the connection', async () => {
    log.length = 0;
    const raw = await RawPeer.open(`${svc.url}/?slow=1`);
    await until(() => log.includes('connected start'), WAIT_MS, 'the connected hook started');
    const peer = [...svc.server.peers].find((p) => p.handshake.url.includes('slow'))!;
    raw.close();
    await until(() => !peer.isConnected, WAIT_MS, 'the server saw the close');
    hookGate.open();
    await until(() => log.includes('connected end') && log.some((l) => l.startsWith('disconnected name=')), WAIT_MS, 'both hooks ran');
    // Issue 8: "connect and disconnect hooks fire exactly once per connection, in order".
    expect(log).toEqual(['connected start', 'connected end', 'disconnected start', 'disconnected name=-']);
    // peer.state "lives exactly as long as the connection".
    expect(peer.state.size).toBe(0);
  });
});

describe("the hooks are the transport's to fire, not the peer's", () => {
  const log: string[] = [];
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_DISCONNECTED)
    disconnected(@Payload() info: WsPeerDisconnected): void {
      log.push(`disconnected ${info.peerId} ${info.reason}`); // e.g. sessions.delete(info.peerId)
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Hub] });
  });
  afterAll(() => svc.close());

  it('an EVENT with the reserved disconnected pattern from a peer does not run the hook (it could evict another peer by id)', async () => {
    const victim = svc.client();
    await victim.connect();
    await until(() => svc.server.peers.size === 1, WAIT_MS, 'victim connected');
    const victimId = [...svc.server.peers][0]!.id;
    const frames = countFrames(svc);
    const attacker = await RawPeer.open(svc.url);
    try {
      attacker.send([2, WS_PEER_DISCONNECTED, { peerId: victimId, code: 1000, reason: 'spoofed' }]);
      await until(() => frames.n === 1, WAIT_MS, 'the EVENT reached the server');
      await first(victim.send('nothing', null)).catch(() => undefined); // a round trip: the loop turned
      expect(log).toEqual([]); // the hook fires once per connection, when it ends
    } finally {
      attacker.close();
      await victim.close();
    }
  });
});

describe('client app: the connected/disconnected hooks fire once per connection', () => {
  const log: string[] = [];
  @Controller()
  class Agent {
    @WsEventPattern(WS_PEER_CONNECTED)
    connected(@WsPeer() server: WsMsgpackPeer): void {
      log.push(`connected ${server.isConnected ? 'open' : 'CLOSED'}`);
    }

    @WsEventPattern(WS_PEER_DISCONNECTED)
    disconnected(): void {
      log.push('disconnected');
    }
  }
  @Controller()
  class Hub {
    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Hub] });
  });
  afterAll(() => svc.close());

  it('app.close() of the client app runs the disconnected hook of its connection', async () => {
    log.length = 0;
    const agent = await startClientApp({ controllers: [Agent] }, { url: svc.url });
    await until(() => log.length === 1, WAIT_MS, 'connected hook');
    await agent.close(); // Nest closes the strategy (dispose) before ClientsModule closes the client (shutdown hook)
    await until(() => svc.server.peers.size === 0, WAIT_MS, 'the server saw the client go');
    await first(svc.client().send('ping', null)); // a round trip: the loop turned
    expect(log).toEqual(['connected open', 'disconnected']);
  });

  it('the strategy closed and listened again on the same connection: its hooks come in pairs (closing the handlers ends the connection for them)', async () => {
    log.length = 0;
    const agent = await startClientApp({ controllers: [Agent] }, { url: svc.url });
    try {
      await until(() => log.length === 1, WAIT_MS, 'connected hook');
      const strategy = agent.client.exposeHandlers();
      await strategy.close();
      await within(new Promise<void>((resolve, reject) => strategy.listen((e) => (e ? reject(e) : resolve()))));
      await first(agent.client.send('ping', null));
      expect(log).toEqual(['connected open', 'disconnected', 'connected open']);
    } finally {
      await agent.close();
    }
  });

  it('client.close() then the strategy listens again: no connected hook for the closed connection, one for the new one', async () => {
    log.length = 0;
    const agent = await startClientApp({ controllers: [Agent] }, { url: svc.url });
    try {
      await until(() => log.length === 1, WAIT_MS, 'connected hook');
      await agent.client.close();
      const strategy = agent.client.exposeHandlers();
      await strategy.close();
      await within(new Promise<void>((resolve, reject) => strategy.listen((e) => (e ? reject(e) : resolve())))); // reconnects
      await first(agent.client.send('ping', null));
      expect(log.filter((l) => l.startsWith('connected'))).toEqual(['connected open', 'connected open']); // one per connection, none for a dead one
    } finally {
      await agent.close();
    }
  });
});

describe('a connected hook that fails', () => {
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    connected(): void {
      throw new Error('hook blew up');
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }

  it("is reported through server.on('error') (what the exception filters made of it), and the peer's calls go on", async () => {
    const svc = await startService({ controllers: [Hub] });
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    try {
      const c = svc.client();
      expect(await first(c.send('ping', null))).toBe('pong'); // released after the hook failed
      // Nest's exception filters ran for the hook (the default one logged 'hook blew up' and
      // answered "Internal server error"): what they made of it reaches 'error'.
      expect(errors.map((e) => e.message)).toEqual(['the wsmp:peer-connected hook failed: {"status":"error","message":"Internal server error"}']);
    } finally {
      await svc.close();
    }
  });
});
