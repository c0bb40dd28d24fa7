import { Controller, Injectable, UseGuards, type CanActivate } from '@nestjs/common';
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
  type WsPeerDisconnected,
} from '../../src/index.js';
import { all, errorOf, first, startClientApp, startService, until, WAIT_MS, within, type TestClientApp, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, gate, Probes } from '../support/streams.js';

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

  it('more than 10,000 frames while it runs close the connection with 1008', async () => {
    // A server whose hook never returns.
    const blocked = gate();
    @Controller()
    class NeverController {
      @WsEventPattern(WS_PEER_CONNECTED)
      connected(): Promise<void> {
        return blocked.promise;
      }
    }
    const svc2 = await startService({ controllers: [NeverController] });
    svc2.server.on('error', () => {});
    const peer = await RawPeer.open(svc2.url);
    try {
      for (let i = 0; i < 10_001; i++) peer.send([2, 'flood', i]);
      expect(await peer.whenClosed()).toEqual({ code: 1008, reason: 'too many frames while the connected hook ran' });
    } finally {
      blocked.open();
      peer.close();
      await svc2.close();
    }
  });
});
