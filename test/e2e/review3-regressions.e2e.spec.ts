import { Controller, Injectable, UseInterceptors, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import type { Observable } from 'rxjs';
import { WS_PEER_CONNECTED, WS_PEER_DISCONNECTED, WsEventPattern, WsPeer, type WsMsgpackPeer, type WsPeerDisconnected } from '../../src/index.js';
import { first, startClientApp, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { gate, type Gate } from '../support/streams.js';

/**
 * Regression tests from a review of the "both ends are peers" feature: each states the contract
 * of issue 8 / docs/guides/peers.md / PROTOCOL.md 7.6 and failed on 4a69b1f.
 */

@Injectable()
class PassThrough implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle();
  }
}

/** Counts frames a server received on each connection (after the transport handled them: its listener runs first). */
function countFrames(svc: TestService): { n: number } {
  const counter = { n: 0 };
  svc.server.on('connection', (ws) => ws.on('message', () => counter.n++));
  return counter;
}

/**
 * Shared shape of the hold probes: a gated connection sends a call while its connected hook waits
 * on `hookGate`; an ungated connection's round trip then proves the event loop has turned; the
 * gated call must not have been dispatched yet.
 */
async function expectHeldUntilHookReturns(svc: TestService, log: string[], hookGate: Gate): Promise<void> {
  const frames = countFrames(svc);
  const raw = await RawPeer.open(`${svc.url}/?gated=1`);
  try {
    await until(() => log.includes('hook start'), WAIT_MS, 'the connected hook started');
    raw.send([1, 1, 'ready', null]);
    await until(() => frames.n === 1, WAIT_MS, 'the REQUEST reached the server');
    const other = svc.client();
    expect(await first(other.send('ping', null))).toBe('pong'); // the loop turned: a dispatch would have happened
    await other.close();
    expect(log).not.toContain('call'); // contract: the peer's calls wait until the connected hook has returned
    hookGate.open();
    expect(await raw.next((f) => f[1] === 1)).toEqual([4, 1, true]); // and the call sees what the hook set up
  } finally {
    hookGate.open();
    raw.close();
  }
}

// ---------------------------------------------------------------------------------------------
describe('the connected hook holds the peer back: with an interceptor on the hook', () => {
  const log: string[] = [];
  const hookGate = gate();
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    @UseInterceptors(PassThrough) // docs/guides/peers.md: "DI, guards, interceptors and exception filters apply"
    async connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
      if (!peer.handshake.url.includes('gated')) return;
      log.push('hook start');
      await hookGate.promise;
      peer.state.set('ready', true);
    }

    @MessagePattern('ready')
    ready(@WsPeer() peer: WsMsgpackPeer): boolean {
      log.push('call');
      return peer.state.get('ready') === true;
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
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

  it('a call is not dispatched before an intercepted connected hook has returned', async () => {
    await expectHeldUntilHookReturns(svc, log, hookGate);
  });
});

// ---------------------------------------------------------------------------------------------
describe('the connected hook holds the peer back: with two hook handlers (two controllers)', () => {
  const log: string[] = [];
  const hookGate = gate();
  @Controller()
  class Presence {
    @WsEventPattern(WS_PEER_CONNECTED)
    async connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
      if (!peer.handshake.url.includes('gated')) return;
      log.push('hook start');
      await hookGate.promise;
      peer.state.set('ready', true);
    }
  }
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    audit(): void {
      /* a second, unrelated hook in another controller */
    }

    @MessagePattern('ready')
    ready(@WsPeer() peer: WsMsgpackPeer): boolean {
      log.push('call');
      return peer.state.get('ready') === true;
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Presence, Hub] });
  });
  afterAll(async () => {
    hookGate.open();
    await svc.close();
  });

  it('a call is not dispatched before every connected hook handler has returned', async () => {
    await expectHeldUntilHookReturns(svc, log, hookGate);
  });
});

// ---------------------------------------------------------------------------------------------
describe('the connected hook holds the peer back: with a processing start hook (instrumentation)', () => {
  const log: string[] = [];
  const hookGate = gate();
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    async connected(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
      if (!peer.handshake.url.includes('gated')) return;
      log.push('hook start');
      await hookGate.promise;
      peer.state.set('ready', true);
    }

    @MessagePattern('ready')
    ready(@WsPeer() peer: WsMsgpackPeer): boolean {
      log.push('call');
      return peer.state.get('ready') === true;
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Hub] });
    // Typed `=> void` by Nest: a tracer that runs `done` inside a span and returns nothing.
    svc.server.setOnProcessingStartHook((_transport, _ctx, done) => {
      void done();
    });
  });
  afterAll(async () => {
    hookGate.open();
    await svc.close();
  });

  it('a call is not dispatched before the connected hook has returned', async () => {
    await expectHeldUntilHookReturns(svc, log, hookGate);
  });
});

// ---------------------------------------------------------------------------------------------
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
    async disconnected(@Payload() info: WsPeerDisconnected, @WsPeer() peer: WsMsgpackPeer): Promise<void> {
      log.push('disconnected start');
      await Promise.resolve(); // any await: a lookup, a log write
      log.push(`disconnected name=${String(peer.state.get('name') ?? '-')}`);
    }

    @MessagePattern('state.set')
    setState(@Payload() value: string, @WsPeer() peer: WsMsgpackPeer): boolean {
      peer.state.set('name', value);
      return true;
    }

    @MessagePattern('whoami')
    whoami(@WsPeer() peer: WsMsgpackPeer): string {
      return peer.id;
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
    await until(() => log.length >= 4, WAIT_MS, 'all entries');
    // Issue 8: "connect and disconnect hooks fire exactly once per connection, in order".
    expect(log).toEqual(['connected start', 'connected end', 'disconnected start', 'disconnected name=-']);
    // peer.state "lives exactly as long as the connection".
    expect(peer.state.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
describe("the hooks are the transport's, not the peer's to fire", () => {
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

  it('a client that emits the reserved disconnected pattern does not run the hook (it could evict another peer by id)', async () => {
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
      expect(log).toEqual([]); // contract: the hook fires once per connection, when it ends
    } finally {
      attacker.close();
      await victim.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
describe('held frames are bounded in bytes too', () => {
  const blocked = gate();
  @Controller()
  class Hub {
    @WsEventPattern(WS_PEER_CONNECTED)
    connected(): Promise<void> {
      return blocked.promise; // e.g. awaiting a welcome the peer never answers
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [Hub] }, { maxConnectionBufferBytes: 1024 * 1024 });
    svc.server.on('error', () => {});
  });
  afterAll(async () => {
    blocked.open();
    await svc.close();
  });

  it('40 events of 256 KiB (10 MiB) held while the hook runs, with maxConnectionBufferBytes 1 MiB: the connection is closed', async () => {
    const frames = countFrames(svc);
    const raw = await RawPeer.open(svc.url);
    try {
      await until(() => svc.server.peers.size === 1, WAIT_MS, 'connected');
      const peer = [...svc.server.peers][0]!;
      const blob = Buffer.alloc(256 * 1024, 7);
      for (let i = 0; i < 40; i++) raw.send([2, 'upload', blob]);
      await until(() => frames.n === 40 || !peer.isConnected, WAIT_MS, 'the frames reached the server');
      // 10,000 held frames × maxPayload (16 MiB) is 160 GB: no memory limit applies to what is held.
      expect(peer.isConnected).toBe(false);
    } finally {
      raw.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
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

  it('client.close() then the strategy listens again: no connected hook for the closed connection', async () => {
    log.length = 0;
    const agent = await startClientApp({ controllers: [Agent] }, { url: svc.url });
    try {
      await until(() => log.length === 1, WAIT_MS, 'connected hook');
      await agent.client.close(); // the link stays behind: close() cleared this.connection before onClose ran
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

// ---------------------------------------------------------------------------------------------
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

  it('a connected hook that throws is reported through server.on("error") ', async () => {
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
