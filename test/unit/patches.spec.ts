/**
 * The internals of `ws` and Node's http server that src/patches/ reads or wraps (the Nest ones
 * are in nest-internals.spec.ts, the msgpack ones in codec-guard.spec.ts). Each test fails loudly
 * when the internal changes shape, instead of the patch quietly doing nothing.
 */
import { createServer, request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import WebSocket, { WebSocketServer } from 'ws';
import { bytesOfPartialMessage, hasReceiverInternals, rawSocketOf } from '../../src/patches/ws.js';
import { until, within } from '../support/helpers.js';

describe(`ws internals (ws ${(createRequire(import.meta.url)('ws/package.json') as { version: string }).version})`, () => {
  it('_socket is the TCP socket (cork/uncork, data events); _receiver counts the bytes of a partial message', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await within(new Promise((r) => wss.once('listening', r)), 5000, 'listen');
    const accepted = new Promise<WebSocket>((r) => wss.once('connection', r));
    const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    await within(new Promise((r) => client.once('open', r)), 5000, 'open');
    const server = await within(accepted, 5000, 'accepted');
    try {
      const raw = rawSocketOf<{ cork: unknown; uncork: unknown; on: unknown }>(server);
      expect(typeof raw?.cork).toBe('function');
      expect(typeof raw?.uncork).toBe('function');
      expect(typeof raw?.on).toBe('function');
      expect(hasReceiverInternals(server)).toBe(true);
      expect(bytesOfPartialMessage(server)).toBe(0);
      client.send(Buffer.alloc(700), { binary: true, fin: false });
      await until(() => bytesOfPartialMessage(server) === 700, 5000, 'the fragment counted');
    } finally {
      client.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});

describe(`Node's http server (Node ${process.version})`, () => {
  it("delivers an upgrade through the instance's emit('upgrade', request, socket, head)", async () => {
    const server = createServer();
    const seen: unknown[][] = [];
    const emit = server.emit;
    server.emit = function (this: typeof server, event: string | symbol, ...args: unknown[]) {
      if (event === 'upgrade') {
        seen.push(args);
        (args[1] as { destroy(): void }).destroy();
        return true;
      }
      return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    } as typeof server.emit;
    server.on('upgrade', () => {}); // without a listener, Node treats an upgrade as plain HTTP
    await within(new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r())), 5000, 'listen');
    try {
      const req = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', headers: { connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('error', () => {});
      req.end();
      await until(() => seen.length === 1, 5000, 'the upgrade through emit');
      expect((seen[0]![0] as IncomingMessage).headers.upgrade).toBe('websocket');
      expect(Buffer.isBuffer(seen[0]![2])).toBe(true);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
