import { jest } from '@jest/globals';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { NEVER, type Observable, timer } from 'rxjs';
import { startCallKeepAlive } from '../../src/connection/keepalive.js';
import { WsMsgpackClient, WsMsgpackServer, WS_PEER_CONNECTED, WsEventPattern, WsPeer, type WsMsgpackPeer } from '../../src/index.js';
import { errorOf, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, holds } from '../support/streams.js';

/**
 * Keep-alive against a peer whose process is frozen with SIGSTOP: the TCP connection stays open
 * (the kernel keeps it), but no pong comes. Each side must find out within interval + timeout and
 * fail every call on the connection with UNAVAILABLE.
 */

const script = fileURLToPath(new URL('../support/frozen-peer.mjs', import.meta.url));

/** Starts the helper process and resolves with it and the rest of its "ready" line. */
async function startPeer(args: string[]): Promise<{ child: ChildProcess; ready: string }> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const ready = await within(
    new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => line.startsWith('ready') && resolve(line.slice(5).trim()));
      child.once('exit', (code) => reject(new Error(`frozen-peer exited with ${code}`)));
    }),
    WAIT_MS,
    'frozen-peer ready',
  );
  return { child, ready };
}

function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
}

const peers: WsMsgpackPeer[] = [];

@Controller()
class KeepAliveController {
  @WsEventPattern(WS_PEER_CONNECTED)
  connected(@WsPeer() peer: WsMsgpackPeer): void {
    peers.push(peer);
  }

  @MessagePattern('ping')
  ping(): string {
    return 'pong';
  }
}

describe('keep-alive finds a frozen peer within interval + timeout', () => {
  it('the server cuts a client whose process is stopped; its calls to that client fail with UNAVAILABLE', async () => {
    const svc: TestService = await startService({ controllers: [KeepAliveController] }, { keepAliveInterval: 100, keepAliveTimeout: 150 });
    const { child } = await startPeer(['client', svc.url]);
    try {
      await until(() => peers.length === 1, WAIT_MS, 'the child connected');
      const peer = peers[0]!;
      const disconnected = new Promise<number>((resolve) => svc.server.on('disconnect', (_ws, code) => resolve(code)));
      const call = errorOf(peer.send('anything', null), WAIT_MS); // the child never answers it
      child.kill('SIGSTOP');
      expect(await within(disconnected, WAIT_MS, 'the server cutting the frozen client')).toBe(1006);
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      expect(peer.isConnected).toBe(false);
      // The server is fine: other clients are served.
      const other = svc.client();
      expect(await within(new Promise((resolve, reject) => other.send('ping', null).subscribe({ next: resolve, error: reject })))).toBe('pong');
    } finally {
      await kill(child);
      await svc.close();
    }
  });

  it('the client cuts a server whose process is stopped; its calls fail with UNAVAILABLE', async () => {
    const { child, ready } = await startPeer(['server']);
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${ready}`, keepAliveInterval: 100, keepAliveTimeout: 150 });
    try {
      const conn = await client.connect();
      const closed = new Promise<number>((resolve) => conn.onClose((info) => resolve(info.code)));
      const call = errorOf(client.send('anything', null), WAIT_MS); // the bare server never answers
      child.kill('SIGSTOP');
      expect(await within(closed, WAIT_MS, 'the client cutting the frozen server')).toBe(1006);
      expect(codeOf(await call)).toBe('UNAVAILABLE');
    } finally {
      await client.close();
      await kill(child);
    }
  });
});

describe('keepAliveInterval: Infinity is off, not a fallback to the default (30 s)', () => {
  // Fake clocks (the sockets stay real): the server's keep-alive timers are armed under them, so
  // 31 s of its time pass at once. A pong to the peer's own ping then marks the point in the
  // stream by which any server ping already arrived: an order, not a wait.
  it.each([
    ['Infinity: no ping, however long the connection lasts', Infinity, 0],
    ['the default (the same check sees the ping Infinity must not send)', undefined, 1],
  ])('keepAliveInterval %s', async (_what, keepAliveInterval, expected) => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask', 'hrtime', 'performance', 'Date'] });
    const server = new WsMsgpackServer(keepAliveInterval === undefined ? { port: 0 } : { port: 0, keepAliveInterval });
    server.on('error', () => {});
    let raw: RawPeer | undefined;
    try {
      await new Promise<void>((r) => server.listen(() => r()));
      raw = await RawPeer.open(`ws://127.0.0.1:${server.address()!.port}`);
      // (until() sleeps on setTimeout, faked here: setImmediate turns instead, bounded by the real clock)
      for (const deadline = Date.now() + WAIT_MS; server.connectionCount !== 1;) {
        if (Date.now() > deadline) throw new Error('connection not open');
        await new Promise((r) => setImmediate(r));
      }
      let pings = 0;
      raw.ws.on('ping', () => pings++);
      jest.advanceTimersByTime(31_000);
      const pong = new Promise<void>((resolve) => raw!.ws.once('pong', () => resolve()));
      raw.ws.ping();
      await pong;
      expect(pings).toBe(expected);
    } finally {
      jest.useRealTimers();
      raw?.close();
      await within(server.close());
    }
  });
});

describe('keepAliveTimeout: Infinity means no limit (not ~1 ms)', () => {
  it('pings keep going every interval; a peer that never answers them is not cut', async () => {
    const server = new WsMsgpackServer({ port: 0, keepAliveInterval: 20, keepAliveTimeout: Infinity });
    server.on('error', () => {});
    await new Promise<void>((r) => server.listen(() => r()));
    const raw = await RawPeer.open(`ws://127.0.0.1:${server.address()!.port}`, ['wsmp.v1'], { autoPong: false });
    try {
      let pings = 0;
      await within(
        new Promise<void>((resolve, reject) => {
          raw.ws.on('ping', () => ++pings === 3 && resolve());
          raw.ws.once('close', () => reject(new Error(`cut after ${pings} ping(s)`)));
        }),
        WAIT_MS,
        'three unanswered pings',
      );
      expect(raw.closed).toBeUndefined();
    } finally {
      raw.close();
      await within(server.close());
    }
  });

  it('keep-alive calls (sockets that cannot ping) never cut the connection; an interval of Infinity makes none', async () => {
    let pings = 0;
    let cut: string | undefined;
    const stop = startCallKeepAlive(
      () => {
        pings++;
        return pings === 1 ? answerAfter(30) : answerAfter(1); // the first answer is slow, the others quick
      },
      (reason) => (cut = reason),
      5,
      Infinity,
    );
    try {
      await until(() => pings >= 3 || cut !== undefined, WAIT_MS, 'three keep-alive calls');
      expect(cut).toBeUndefined();
    } finally {
      stop();
    }
    let calls = 0;
    const off = startCallKeepAlive(
      () => (calls++, NEVER),
      () => {},
      Infinity,
      100,
    );
    await holds(() => calls === 0, 'no keep-alive call');
    off();
  });
});

/** An answer to a keep-alive call after `ms` (the peer's latency in this scenario, not a test wait). */
function answerAfter(ms: number): Observable<unknown> {
  return timer(ms);
}
