/**
 * Issue 15, item 4: a message that never completes. Peers send fragments of a message (or a
 * large frame's first bytes) and never the rest, while answering pings, so keep-alive never cuts
 * them. Before the fix each held up to maxPayload on the server for ever (100 such connections:
 * ~1.5 GB). incompleteMessageTimeout bounds the time from a message's first bytes to its last.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { encode } from '@msgpack/msgpack';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { WsMsgpackErrorCode } from '../../src/index.js';
import { first, startService, until, within, type TestService } from '../support/helpers.js';
import { bytesOfPartialMessage } from '../../src/patches/ws.js';

const MB = 1024 * 1024;

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

async function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['wsmp.v1']); // answers pings by itself
  ws.on('error', () => {});
  await within(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), undefined, 'open');
  return ws;
}

describe('a message that never completes (issue 15, item 4)', () => {
  let svc: TestService;
  const errors: Error[] = [];
  const disconnects: number[] = [];

  beforeAll(async () => {
    // Pings every 50 ms, answered by every peer here: keep-alive alone would never cut them.
    svc = await startService({ controllers: [EchoController] }, { incompleteMessageTimeout: 800, keepAliveInterval: 50, keepAliveTimeout: 1000 });
    // Reading .stack formats it: an unformatted V8 stack keeps the objects of its frames (here the
    // socket) alive for as long as the error is kept.
    svc.server.on('error', (e) => {
      void e.stack;
      errors.push(e);
    });
    svc.server.on('disconnect', (_s, code) => disconnects.push(code));
  });
  afterAll(() => svc.close());

  it('fragments sent steadily, never the last one, while answering pings: cut after incompleteMessageTimeout, memory freed', async () => {
    const serverSockets: WeakRef<object>[] = [];
    const onConnection = (socket: object): void => void serverSockets.push(new WeakRef(socket));
    svc.server.on('connection', onConnection);
    let peers: WebSocket[] = await Promise.all(Array.from({ length: 20 }, () => open(svc.url)));
    const fragment = Buffer.alloc(MB, 0x90);
    for (const ws of peers) ws.send(fragment, { binary: true, fin: false });
    // Keeps making progress (another fragment every 50 ms): a timer restarted by every read never fires.
    const trickle = setInterval(() => {
      for (const ws of peers) if (ws.readyState === WebSocket.OPEN) ws.send(Buffer.alloc(1024), { binary: true, fin: false });
    }, 50);
    try {
      // The server holds each peer's megabyte (seen once per socket: on a loaded machine the first
      // may already be cut when the last arrives)...
      const held = new WeakSet<object>();
      let heldCount = 0;
      await until(
        () => {
          for (const s of svc.server.unwrap().clients) {
            if (held.has(s) || bytesOfPartialMessage(s) < MB) continue;
            held.add(s);
            heldCount++;
          }
          return heldCount === 20;
        },
        5000,
        'the fragments held by the server',
      );
      // ...until it cuts them all.
      await until(() => svc.server.connectionCount === 0, 5000, 'every incomplete peer cut');
    } finally {
      clearInterval(trickle);
      for (const ws of peers) ws.terminate();
      peers = [];
    }
    // Nothing of them stays: the server's sockets, with the fragments they held, are collected.
    await until(() => (global.gc?.(), serverSockets.every((r) => r.deref() === undefined)), 5000, 'the server sockets collected');
    const cut = errors.filter((e) => /incompleteMessageTimeout/.test(e.message));
    expect(cut).toHaveLength(20);
    expect(cut[0]).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED });
    expect(cut[0]!.message).toMatch(/^a message from the peer did not complete within incompleteMessageTimeout \(800 ms; \d+ bytes of it had arrived\): the connection was cut$/);
    expect(disconnects.filter((c) => c === 1006)).toHaveLength(20);
  });

  it('one large frame whose bytes stop coming (raw socket): cut the same way', async () => {
    errors.length = 0;
    const { port } = new URL(svc.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => {});
    await within(new Promise((r) => socket.once('connect', r)), undefined, 'tcp connect');
    socket.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wsmp.v1\r\n\r\n',
    );
    await within(new Promise((r) => socket.once('data', r)), undefined, '101');
    // A masked binary frame header declaring 2 MiB, then 64 KiB of it, then nothing.
    const header = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 0x20, 0, 0, 1, 2, 3, 4]);
    socket.write(Buffer.concat([header, Buffer.alloc(64 * 1024)]));
    const closed = new Promise((r) => socket.once('close', r));
    await within(closed, 5000, 'the connection cut');
    expect(errors.some((e) => /incompleteMessageTimeout \(800 ms/.test(e.message))).toBe(true);
  });

  it('messages that complete in time pass, fragmented or slow; the timer is per message', async () => {
    const client = svc.client();
    expect(await first(client.send('echo', Buffer.alloc(4 * MB, 3)))).toHaveLength(4 * MB);
    const ws = await open(svc.url);
    const frame = Buffer.from(encode([1, 1, 'echo', 'in three parts']));
    const answer = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)));
    // Three fragments 150 ms apart: 300 ms in all, under the 800 ms limit.
    ws.send(frame.subarray(0, 5), { binary: true, fin: false });
    await new Promise((r) => setTimeout(r, 150));
    ws.send(frame.subarray(5, 10), { fin: false });
    await new Promise((r) => setTimeout(r, 150));
    ws.send(frame.subarray(10), { fin: true });
    expect(await within(answer, 5000, 'the answer')).toEqual(Buffer.from(encode([4, 1, 'in three parts'])));
    // Ten more such messages, one after the other: 3 s in all (far past the limit), each under it.
    for (let id = 3; id < 23; id += 2) {
      const f = Buffer.from(encode([1, id, 'echo', id]));
      const got = new Promise<Buffer>((resolve) => ws.once('message', (d: Buffer) => resolve(d)));
      ws.send(f.subarray(0, 3), { binary: true, fin: false });
      await new Promise((r) => setTimeout(r, 300));
      ws.send(f.subarray(3), { fin: true });
      expect(await within(got, 5000, 'an answer')).toEqual(Buffer.from(encode([4, id, id])));
    }
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.terminate();
  });

  it("ws's receiver still has the internals the check reads (else the check would be off)", async () => {
    const ws = await open(svc.url);
    await until(() => svc.server.connectionCount >= 1, undefined, 'connected');
    const serverSide = [...svc.server.unwrap().clients].at(-1)!;
    expect(bytesOfPartialMessage(serverSide)).toBe(0);
    ws.send(Buffer.alloc(1000), { binary: true, fin: false });
    await until(() => bytesOfPartialMessage(serverSide) === 1000, undefined, 'the fragment seen');
    ws.terminate();
  });
});
