import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { createServer as createHttpsServer, get as httpsGet, type Server as HttpsServer } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WsMsgpackClient, WsMsgpackContext, WsMsgpackErrorCode, WsMsgpackServer, WsMsgpackUpgradeError, type WsMsgpackClientOptions } from '../../src/index.js';
import { first, startService, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { makeTestPki, type TestPki } from '../support/certs.js';

@Controller()
class TlsController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  @MessagePattern('whoami')
  whoami(@Ctx() ctx: WsMsgpackContext): unknown {
    return ctx.getUser() ?? null;
  }
}

@Module({ controllers: [TlsController] })
class TlsModule {}

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

/** The URL of a service, as wss://. */
const wss = (svc: TestService): string => svc.url.replace(/^ws:/, 'wss:');

/**
 * A client that makes one connection attempt: WsMsgpackClient retries failures other than HTTP
 * 4xx refusals (with backoff, until `readyTimeout`), and these tests look at the first failure.
 */
const once = (options: WsMsgpackClientOptions): WsMsgpackClient => new WsMsgpackClient({ ...options, reconnect: false });

/** connect() of a client must fail; returns the error. */
async function connectError(client: WsMsgpackClient): Promise<{ code: string; message: string }> {
  try {
    await within(client.connect(), WAIT_MS, 'connect');
  } catch (e) {
    return e as { code: string; message: string };
  } finally {
    await client.close();
  }
  throw new Error('connect() succeeded');
}

describe('TLS: the standalone server with `tls`', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [TlsController] }, { tls: { key: pki.server.key, cert: pki.server.cert } });
  });
  afterAll(() => svc.close());

  it('listens for wss://; a client trusting the CA (wsOptions.ca) calls it', async () => {
    expect(svc.server.address()).toMatchObject({ address: '127.0.0.1' });
    const c = svc.client({ url: wss(svc), wsOptions: { ca: pki.ca } });
    expect(await first(c.send('echo', { over: 'tls' }))).toEqual({ over: 'tls' });
    expect(c.unwrap<{ url: string }>().url).toMatch(/^wss:/);
  });

  it("a client that does not trust the server's certificate fails to connect with UNAVAILABLE naming the TLS error", async () => {
    const err = await connectError(once({ url: wss(svc) }));
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.UNAVAILABLE, message: expect.stringMatching(/cannot connect to wss:.*: unable to verify the first certificate/) });
    const other = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.otherCa } }));
    expect(other.message).toMatch(/unable to verify the first certificate/);
  });

  it('the certificate is checked against the host name: the right CA for the wrong name fails', async () => {
    // `servername` (SNI and the name checked) goes on to tls.connect; @types/ws does not list it.
    const err = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.ca, ...({ servername: 'api.example.com' } as object) } }));
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/Hostname\/IP does not match certificate's altnames/) });
  });

  it('a plain ws:// client to the TLS port fails with UNAVAILABLE', async () => {
    const err = await connectError(once({ url: svc.url, connectTimeout: 2000 }));
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect to ws:/) });
  });

  it('tls with httpServer is refused (give an https server instead)', () => {
    expect(() => new WsMsgpackServer({ httpServer: createHttpsServer(), path: '/rpc', tls: { key: pki.server.key, cert: pki.server.cert } })).toThrow(
      /option tls is for the standalone server/,
    );
  });
});

describe('mTLS: client certificates', () => {
  const agentOptions = (p: TestPki): Partial<WsMsgpackClientOptions> => ({ wsOptions: { ca: p.ca, cert: p.client.cert, key: p.client.key } });

  it('requestCert + rejectUnauthorized: a client with a certificate of the CA connects, authenticate() names it from the certificate', async () => {
    const svc = await startService(
      { controllers: [TlsController] },
      {
        tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: true },
        authenticate: (req) => ({ cn: (req.socket as TLSSocket).getPeerCertificate().subject.CN }),
      },
    );
    try {
      const agent = svc.client({ url: wss(svc), ...agentOptions(pki) });
      expect(await first(agent.send('whoami', {}))).toEqual({ cn: 'agent-1' });
      const anonymous = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.ca } }));
      expect(anonymous).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect to wss:.*(certificate required|socket hang up|ECONNRESET)/) });
      const intruder = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.ca, cert: pki.otherClient.cert, key: pki.otherClient.key } }));
      expect(intruder).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/cannot connect to wss:.*(unknown ca|socket hang up|ECONNRESET)/) });
      expect(svc.server.connectionCount).toBe(1);
    } finally {
      await svc.close();
    }
  });

  it('requestCert without rejectUnauthorized: authenticate() decides, and can say why with a status', async () => {
    const svc = await startService(
      { controllers: [TlsController] },
      {
        tls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca, requestCert: true, rejectUnauthorized: false },
        authenticate: (req) => {
          const socket = req.socket as TLSSocket;
          if (!socket.authorized) throw new WsMsgpackUpgradeError(403, `client certificate refused: ${String(socket.authorizationError)}`);
          return { cn: socket.getPeerCertificate().subject.CN };
        },
      },
    );
    try {
      expect(await first(svc.client({ url: wss(svc), ...agentOptions(pki) }).send('whoami', {}))).toEqual({ cn: 'agent-1' });
      const intruder = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.ca, cert: pki.otherClient.cert, key: pki.otherClient.key } }));
      expect(intruder).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/HTTP 403 Forbidden/) });
      const anonymous = await connectError(once({ url: wss(svc), wsOptions: { ca: pki.ca } }));
      expect(anonymous.message).toMatch(/HTTP 403 Forbidden/);
    } finally {
      await svc.close();
    }
  });
});

describe('TLS handshake timeout', () => {
  it('the standalone TLS server drops a connection that does not start its TLS handshake within handshakeTimeout', async () => {
    const svc = await startService({ controllers: [TlsController] }, { tls: { key: pki.server.key, cert: pki.server.cert }, handshakeTimeout: 300 });
    try {
      const socket = netConnect(Number(new URL(svc.url).port), '127.0.0.1');
      socket.on('error', () => {});
      await within(new Promise((r) => socket.once('connect', r)));
      const started = Date.now();
      await within(new Promise((r) => socket.once('close', r)), WAIT_MS, 'server drops the silent socket');
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    } finally {
      await svc.close();
    }
  });
});

describe('TLS: an https server of the application (httpServer)', () => {
  it('a Nest HTTP app with httpsOptions shares its port: HTTPS routes and wss:// on the path', async () => {
    const app = await NestFactory.create(TlsModule, { logger: false, httpsOptions: { key: pki.server.key, cert: pki.server.cert } });
    app.connectMicroservice({ strategy: new WsMsgpackServer({ httpServer: app.getHttpServer(), path: '/rpc' }) });
    await within(app.startAllMicroservices());
    await within(app.listen(0, '127.0.0.1'));
    const { port } = (app.getHttpServer() as HttpsServer).address() as { port: number };
    const client = new WsMsgpackClient({ url: `wss://127.0.0.1:${port}/rpc`, wsOptions: { ca: pki.ca } });
    try {
      expect(await first(client.send('echo', 'hybrid over tls'))).toBe('hybrid over tls');
      const status = await within(
        new Promise<number | undefined>((resolve, reject) => {
          httpsGet({ host: '127.0.0.1', port, path: '/no-such-route', ca: pki.ca }, (res) => {
            res.resume();
            resolve(res.statusCode);
          }).on('error', reject);
        }),
      );
      expect(status).toBe(404); // Nest's HTTPS router answered: the HTTP side is untouched
      const err = await connectError(once({ url: `wss://127.0.0.1:${port}/rpc` }));
      expect(err.message).toMatch(/unable to verify the first certificate/);
    } finally {
      await client.close();
      await within(app.close());
    }
  });

  it('a plain https.createServer() given as httpServer', async () => {
    const https = createHttpsServer({ key: pki.server.key, cert: pki.server.cert }, (_req, res) => res.end('hello'));
    await within(new Promise<void>((r) => https.listen(0, '127.0.0.1', r)));
    const server = new WsMsgpackServer({ httpServer: https, path: '/rpc' });
    const app = await NestFactory.createMicroservice(TlsModule, { strategy: server, logger: false });
    await within(app.listen());
    const { port } = https.address() as { port: number };
    const client = new WsMsgpackClient({ url: `wss://127.0.0.1:${port}/rpc`, wsOptions: { ca: pki.ca } });
    try {
      expect(await first(client.send('echo', 42))).toBe(42);
    } finally {
      await client.close();
      await within(app.close());
      await within(new Promise((r) => https.close(r)));
    }
  });
});
