/**
 * Health checks with @nestjs/terminus (nestjs-ws-msgpack/terminus): WsMsgpackHealthIndicator in a
 * real HealthCheckService of a Nest HTTP app, against a real WsMsgpackServer on 127.0.0.1. The
 * client check is healthy while the server is up, unhealthy within a second after it goes away,
 * and healthy again once the client reconnected to it on the same port; the server check goes
 * down as soon as the drain starts. Also: terminus's own MicroserviceHealthIndicator with
 * `customClass: WsMsgpackClient`.
 */
import { Controller, Get, Module, ServiceUnavailableException } from '@nestjs/common';
import { MessagePattern, Payload, Transport, type CustomClientOptions } from '@nestjs/microservices';
import { HealthCheck, HealthCheckService, MicroserviceHealthIndicator, TerminusModule, type HealthCheckResult } from '@nestjs/terminus';
import { WebSocketServer } from 'ws';
import { InjectWsMsgpackClient, WsMsgpackClient, WsMsgpackClientModule, WsMsgpackStatus, type WsMsgpackServer } from '../../src/index.js';
import { WsMsgpackHealthIndicator } from '../../src/health/index.js';
import { first, freePort, startHttpApp, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { gate } from '../support/streams.js';

const release = { gate: gate(), holding: 0 };

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    return v;
  }

  /** Finishes when the test lets it (keeps a drain going). */
  @MessagePattern('hold')
  async hold(): Promise<string> {
    release.holding++;
    await release.gate.promise;
    return 'released';
  }
}

const serviceOn = (port: number, options: { drainTimeout?: number } = {}): Promise<TestService> => startService({ controllers: [EchoController] }, { port, ...options });

/** The server the health app's server check looks at (the test sets it). */
const target: { server: WsMsgpackServer | undefined } = { server: undefined };

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly wsmp: WsMsgpackHealthIndicator,
    private readonly microservice: MicroserviceHealthIndicator,
    @InjectWsMsgpackClient('ECHO') private readonly echo: WsMsgpackClient,
  ) {}

  @Get('ready')
  @HealthCheck()
  ready(): Promise<HealthCheckResult> {
    return this.health.check([() => this.wsmp.isHealthy('echo', this.echo)]);
  }

  @Get('server')
  @HealthCheck()
  server(): Promise<HealthCheckResult> {
    return this.health.check([() => this.wsmp.isServerHealthy('rpc', target.server!)]);
  }

  /** Terminus's own indicator: a new WsMsgpackClient per check (connect, then close). */
  @Get('terminus')
  @HealthCheck()
  terminus(): Promise<HealthCheckResult> {
    const url = (this.echo as unknown as { options: { url: string } }).options.url;
    return this.health.check([
      () =>
        this.microservice.pingCheck<CustomClientOptions>('echo', {
          transport: Transport.TCP, // required by terminus's type; ignored when customClass is given
          customClass: WsMsgpackClient,
          options: { url, reconnect: false, connectTimeout: 1000 },
        }),
    ]);
  }
}

/** The health app: TerminusModule, the typed client module, the indicator. */
async function startHealthApp(url: string): Promise<{ port: number; controller: HealthController; client: WsMsgpackClient; close(): Promise<void> }> {
  @Module({
    imports: [TerminusModule.forRoot({ logger: false }), WsMsgpackClientModule.register({ name: 'ECHO', url })],
    controllers: [HealthController],
    providers: [WsMsgpackHealthIndicator, MicroserviceHealthIndicator],
  })
  class HealthAppModule {}
  const { app, port } = await startHttpApp(HealthAppModule);
  return {
    port,
    controller: app.get(HealthController),
    client: app.get<WsMsgpackClient>('ECHO'),
    close: () => within(app.close(), WAIT_MS, 'health app close'),
  };
}

/** GET /health/<path>: the HTTP status and terminus's body. */
async function probe(port: number, path: string): Promise<{ code: number; body: HealthCheckResult }> {
  const res = await within(fetch(`http://127.0.0.1:${port}/health/${path}`), WAIT_MS, `GET /health/${path}`);
  return { code: res.status, body: (await res.json()) as HealthCheckResult };
}

/** Probes until the answer has HTTP status `code`; fails after `ms`. Returns the last answer. */
async function probeUntil(port: number, path: string, code: number, ms: number): Promise<{ code: number; body: HealthCheckResult; afterMs: number }> {
  const started = Date.now();
  for (;;) {
    const r = await probe(port, path);
    const afterMs = Date.now() - started;
    if (r.code === code) return { ...r, afterMs };
    if (afterMs > ms) throw new Error(`GET /health/${path} still answered ${r.code} ${JSON.stringify(r.body)} ${afterMs} ms later (expected ${code})`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('WsMsgpackHealthIndicator.isHealthy (client)', () => {
  it('ok while the server is up, an error within 1 s after it goes away, ok again once it is back on the same port', async () => {
    const port = await freePort();
    let svc: TestService | undefined = await serviceOn(port);
    const health = await startHealthApp(svc.url);
    try {
      const up = await probe(health.port, 'ready');
      expect(up.code).toBe(200);
      expect(up.body.status).toBe('ok');
      expect(up.body.info?.echo).toMatchObject({ status: 'up', state: 'connected' });
      expect(typeof up.body.info?.echo?.roundTripMs).toBe('number');

      await svc.close();
      svc = undefined;
      const down = await probeUntil(health.port, 'ready', 503, WAIT_MS);
      expect(down.body.status).toBe('error');
      expect(down.body.error?.echo).toMatchObject({ status: 'down', code: 'UNAVAILABLE' });
      expect(['reconnecting', 'connecting']).toContain(down.body.error?.echo?.state);
      // What terminus does without HTTP in between: HealthCheckService.check throws.
      await expect(health.controller.ready()).rejects.toBeInstanceOf(ServiceUnavailableException);

      svc = await serviceOn(port);
      // The client's own reconnect (backoff of at most 2 s) brings it back; the check does not wait for it.
      const back = await probeUntil(health.port, 'ready', 200, WAIT_MS);
      expect(back.body.info?.echo).toMatchObject({ status: 'up', state: 'connected' });
    } finally {
      await health.close();
      await svc?.close();
    }
  });

  it('a client not connected yet is connected by its first check; with no server there, it is down at once', async () => {
    const port = await freePort();
    const health = await startHealthApp(`ws://127.0.0.1:${port}`);
    let svc: TestService | undefined;
    try {
      // Nothing listens: one attempt, refused at once (no waiting for reconnects or the timeout).
      const down = await probe(health.port, 'ready');
      expect(down.code).toBe(503);
      expect(down.body.error?.echo).toMatchObject({ status: 'down', code: 'UNAVAILABLE' });
      // The first attempt's refusal is the answer (the check did not wait out its timeout, nor a reconnect).
      expect(down.body.error?.echo).toMatchObject({ state: 'reconnecting', message: expect.stringMatching(/cannot connect to .*ECONNREFUSED/) });

      svc = await serviceOn(port);
      const up = await probeUntil(health.port, 'ready', 200, WAIT_MS);
      expect(up.body.info?.echo).toMatchObject({ status: 'up', state: 'connected' });
      expect(await first(health.client.send('echo', 7))).toBe(7);
    } finally {
      await health.close();
      await svc?.close();
    }
  });

  it('a closed client is down and the check does not open it again', async () => {
    const svc = await serviceOn(0);
    const health = await startHealthApp(svc.url);
    try {
      expect((await probe(health.port, 'ready')).code).toBe(200);
      await health.client.close();
      const down = await probe(health.port, 'ready');
      expect(down.code).toBe(503);
      expect(down.body.error?.echo).toMatchObject({ status: 'down', state: 'closed' });
      expect(svc.server.connectionCount).toBe(0);
      expect(await first(health.client.status)).toBe(WsMsgpackStatus.CLOSED);
    } finally {
      await health.close();
      await svc.close();
    }
  });

  it('a peer that accepted the connection but answers nothing is down after the timeout (the round trip, not only the socket)', async () => {
    // A bare ws server speaking wsmp.v1 that never answers a frame (its ws library still answers pings).
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'wsmp.v1' });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;
    const client = new WsMsgpackClient({ url, reconnect: false });
    const indicator = new WsMsgpackHealthIndicator(new (await import('@nestjs/terminus')).HealthIndicatorService());
    try {
      await within(client.connect(), WAIT_MS, 'connect');
      const started = Date.now();
      const result = await within(indicator.isHealthy('mute', client, { timeout: 200 }), WAIT_MS, 'check');
      expect(result.mute).toMatchObject({ status: 'down', state: 'connected', code: 'DEADLINE_EXCEEDED' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      await expect(indicator.isHealthy('mute', client, { timeout: 0 })).rejects.toThrow(TypeError);
    } finally {
      await client.close();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });
});

describe('WsMsgpackHealthIndicator.isServerHealthy (server readiness)', () => {
  it('up while listening, down as soon as the drain starts (calls still finishing), down once closed', async () => {
    release.gate = gate();
    release.holding = 0;
    const svc = await serviceOn(0, { drainTimeout: WAIT_MS });
    target.server = svc.server;
    const health = await startHealthApp(svc.url);
    const caller = svc.client({ reconnect: false });
    try {
      const up = await probe(health.port, 'server');
      expect(up.code).toBe(200);
      expect(up.body.info?.rpc).toMatchObject({ status: 'up', state: 'listening' });

      const held = first(caller.send('hold', null));
      await until(() => release.holding === 1, WAIT_MS, "the 'hold' call in its handler");
      let closed = false;
      const closing = svc.app.close().then(() => (closed = true));
      const draining = await probeUntil(health.port, 'server', 503, WAIT_MS);
      expect(draining.body.error?.rpc).toMatchObject({ status: 'down', state: 'draining' });
      expect(closed).toBe(false); // still draining: the held call has not finished
      release.gate.open();
      expect(await held).toBe('released');
      await within(closing, WAIT_MS, 'close after the drain');

      const after = await probe(health.port, 'server');
      expect(after.code).toBe(503);
      expect(after.body.error?.rpc).toMatchObject({ status: 'down', state: 'closed' });
    } finally {
      release.gate.open();
      target.server = undefined;
      await caller.close();
      await health.close();
      await svc.close();
    }
  });

  it('down before listen()', async () => {
    const { WsMsgpackServer } = await import('../../src/index.js');
    const { HealthIndicatorService } = await import('@nestjs/terminus');
    const indicator = new WsMsgpackHealthIndicator(new HealthIndicatorService());
    expect(indicator.isServerHealthy('rpc', new WsMsgpackServer({ port: 0 })).rpc).toMatchObject({ status: 'down', state: 'not listening' });
  });

  it('isClusterHealthy: down, saying so, for a server without the cluster option (the Redis states: redis-cluster.e2e)', async () => {
    const { WsMsgpackServer } = await import('../../src/index.js');
    const { HealthIndicatorService } = await import('@nestjs/terminus');
    const indicator = new WsMsgpackHealthIndicator(new HealthIndicatorService());
    expect(indicator.isClusterHealthy('cluster', new WsMsgpackServer({ port: 0 })).cluster).toEqual({
      status: 'down',
      state: 'no cluster',
      message: 'the server has no cluster option',
    });
  });
});

describe("terminus's MicroserviceHealthIndicator with customClass: WsMsgpackClient", () => {
  it('up while the server is up (a new connection per check), down within 1 s after it goes away', async () => {
    const port = await freePort();
    let svc: TestService | undefined = await serviceOn(port);
    const health = await startHealthApp(svc.url);
    try {
      const up = await probe(health.port, 'terminus');
      expect(up.code).toBe(200);
      expect(up.body.info?.echo).toMatchObject({ status: 'up' });
      await until(() => svc!.server.connectionCount === 0, WAIT_MS, 'the probe connection closed');

      await svc.close();
      svc = undefined;
      const down = await probeUntil(health.port, 'terminus', 503, WAIT_MS);
      expect(down.body.error?.echo).toMatchObject({ status: 'down' });
    } finally {
      await health.close();
      await svc?.close();
    }
  });
});
