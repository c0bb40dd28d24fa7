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
import { decode, encode } from '@msgpack/msgpack';
import WebSocket, { WebSocketServer } from 'ws';
import { Connection } from '../../src/connection/connection.js';
import { WS_SOCKET_SUPPORT } from '../../src/node/ws-socket.js';
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

  it('20 peers that send 64 KiB of invalid frames and reset: what waits is handled slice by slice, no stall', async () => {
    const invalid = encode([9, 1, 'x']); // an unknown frame type: a PROTOCOL_ERROR each
    const burst = new Uint8Array(Math.floor((64 * 1024) / (invalid.length + 6)) * invalid.length);
    const peers = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const ws = new WebSocket(svc.url, ['wsmp.v1']);
        ws.on('error', () => {});
        await within(new Promise((r) => ws.once('open', r)), undefined, 'open');
        return ws;
      }),
    );
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    for (const ws of peers) {
      for (let at = 0; at < burst.length; at += invalid.length) ws.send(invalid);
      ws.terminate(); // the frames are out; the connection resets right after them
    }
    await until(() => svc.server.connectionCount <= 1, 10_000, 'the peers gone');
    await new Promise((r) => setTimeout(r, 100));
    delay.disable();
    expect(delay.max / 1e6).toBeLessThan(1000); // ~3.7 s when the frames left were handled all at once (a margin for GC and a busy machine)
  });

  it('a 15 MB pattern is answered UNIMPLEMENTED without being parsed (it stopped the loop for seconds)', async () => {
    const ws = new WebSocket(svc.url, ['wsmp.v1']);
    ws.on('error', () => {});
    await within(new Promise((r) => ws.once('open', r)), undefined, 'open');
    const answer = new Promise<unknown[]>((resolve) => ws.once('message', (d: Buffer) => resolve(decode(d) as unknown[])));
    const pattern = `[${'{},'.repeat(5_000_000)}{}]`;
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    ws.send(encode([1, 1, pattern, null]));
    expect((await within(answer, 10_000, 'the answer')).slice(0, 3)).toEqual([5, 1, 'UNIMPLEMENTED']);
    ws.send(encode([2, pattern, null])); // an event: logged with the pattern cut short, nothing parsed
    await new Promise((r) => setTimeout(r, 200));
    delay.disable();
    expect(delay.max / 1e6).toBeLessThan(1000); // 2.9-4.8 s per frame before (decoding the 15 MB frame itself remains)
    ws.terminate();
  });

  it('a peer flooding invalid frames: at most 10 reports a second, and one that sums up the rest', async () => {
    const reports: Error[] = [];
    svc.server.on('error', (e) => reports.push(e));
    const ws = new WebSocket(svc.url, ['wsmp.v1']);
    ws.on('error', () => {});
    await within(new Promise((r) => ws.once('open', r)), undefined, 'open');
    for (let i = 0; i < 2000; i++) ws.send(encode([9, 2 * i + 1]));
    await until(() => reports.some((e) => /more such frames/.test(e.message)), 5000, 'the summary');
    const invalid = reports.filter((e) => /invalid frame|more such frames/.test(e.message));
    expect(invalid.length).toBeLessThanOrEqual(12); // 2,000 reports (and their stacks in the log) before
    expect(invalid.at(-1)!.message).toMatch(/^\d+ more such frames from the peer within a second were not reported one by one; the first: /);
    ws.terminate();
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
