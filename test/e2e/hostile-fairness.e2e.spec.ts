/**
 * Issue 15, item 2: one connection must not stall the others. A peer in its own process floods the
 * server with tiny REQUESTs (an unknown pattern, or a real one) and reads the answers, while a
 * well-behaved client calls `echo` every 20 ms with a deadline. Before the fix, `ws` handed the
 * server every message of a large read at once (libuv reads up to 32 chunks of one socket in a row):
 * the event loop stopped for up to ~3 s at a time and the bystander's deadline calls failed. Now each
 * connection gets a slice of each turn of the event loop; the loop delay, measured in-process with
 * monitorEventLoopDelay, stays small, and every bystander call succeeds.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { encode } from '@msgpack/msgpack';
import WebSocket, { WebSocketServer } from 'ws';
import { Connection } from '../../src/connection/connection.js';
import { WS_SOCKET_SUPPORT } from '../../src/connection/ws-socket.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WsMsgpackRecordBuilder } from '../../src/index.js';
import { first, startService, until, within, type TestService } from '../support/helpers.js';

const FLOODER = fileURLToPath(new URL('../support/flooder.mjs', import.meta.url));

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

}

function startFlooder(url: string, pattern: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [FLOODER, url, pattern], { stdio: ['ignore', 'pipe', 'inherit'] });
  return within(
    new Promise<ChildProcess>((resolve, reject) => {
      child.stdout!.once('data', () => resolve(child));
      child.once('exit', (code) => reject(new Error(`the flooder exited (${code})`)));
    }),
    10_000,
    'the flooder',
  );
}

describe('one connection cannot stall the others (issue 15, item 2)', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [EchoController] });
  });
  afterAll(() => svc.close());

  it('a peer that emits a burst and closes at once: every event is handled, none left waiting for a later turn', async () => {
    // A server connection whose event handler works synchronously (0.5 ms each): 100 events in
    // one read take many fair slices, and the close frame comes in the same read.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    await within(new Promise((r) => wss.once('listening', r)), undefined, 'listening');
    let handled = 0;
    let handledAtClose = -1;
    wss.on('connection', (socket: WebSocket) => {
      const conn = new Connection(socket, { role: 'server', socketSupport: WS_SOCKET_SUPPORT, keepAliveInterval: 0 });
      conn.onEvent(() => {
        const t = performance.now();
        while (performance.now() - t < 0.5);
        handled++;
      });
      conn.onClose(() => (handledAtClose = handled));
    });
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as { port: number }).port}`, ['wsmp.v1']);
      await within(new Promise((r) => ws.once('open', r)), undefined, 'open');
      for (let i = 0; i < 100; i++) ws.send(encode([2, 'log', { i }]));
      ws.close(1000);
      await until(() => handledAtClose >= 0, 5000, 'the server side closed');
      expect(handledAtClose).toBe(100); // 18-21 of 100 before the fix
    } finally {
      await new Promise((r) => wss.close(r));
    }
  });

  for (const pattern of ['no-such-pattern', 'echo']) {
    it(`a flood of tiny '${pattern}' requests from one peer: the event loop keeps turning, a bystander's deadline calls all succeed`, async () => {
      const bystander = svc.client();
      expect(await first(bystander.send('echo', 'warm'))).toBe('warm');
      const flooder = await startFlooder(svc.url, pattern);
      const delay = monitorEventLoopDelay({ resolution: 10 });
      const failures: unknown[] = [];
      let calls = 0;
      try {
        await new Promise((r) => setTimeout(r, 300)); // the flood is under way
        delay.enable();
        const until = Date.now() + 2000;
        while (Date.now() < until) {
          calls++;
          try {
            // A deadline of 1 s: the stalls made such calls fail with DEADLINE_EXCEEDED.
            await first(bystander.send('echo', new WsMsgpackRecordBuilder(calls).setTimeout(1000).build()), 5000);
          } catch (e) {
            failures.push(e);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        delay.disable();
      } finally {
        flooder.kill('SIGTERM');
      }
      expect(failures).toEqual([]);
      expect(calls).toBeGreaterThan(20); // ~2.9 s stalls before: a handful of calls in 2 s
      // The worst stall of the server's event loop: a few ms of slices and a GC, not seconds.
      expect(delay.max / 1e6).toBeLessThan(300);
    }, 20_000);
  }
});
