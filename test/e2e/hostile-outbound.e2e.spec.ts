/**
 * Issue 15, item 3: what a server sends a peer that does not read stays inside the documented
 * per-connection bound (maxConnectionBufferBytes for what waits in streams and answers, plus
 * maxSendBufferSize for what waits in the socket), is reported in bufferedBytes, and the server
 * stops reading the frames of a peer whose answers pile up (backpressure on input, as a proxy does).
 *
 * The attacker is a real `ws` client whose socket is paused: it sends, it never reads. Before the
 * fix, 3,000 calls for 256 KiB answers held ~256 MB for that one connection (answers waiting on a
 * full socket were not counted) while bufferedBytes said 0, and a flood of unknown patterns was
 * answered without bound.
 */
import { Controller } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { decode, encode } from '@msgpack/msgpack';
import { of, type Observable } from 'rxjs';
import WebSocket from 'ws';
import { WsMsgpackErrorCode, WsMsgpackServer } from '../../src/index.js';
import { first, startService, until, within, type TestService } from '../support/helpers.js';

const MB = 1024 * 1024;
let served = 0;

@Controller()
class BigController {
  @MessagePattern('big')
  big(@Payload() kb: number): Buffer {
    served++;
    return Buffer.alloc(kb * 1024, 1);
  }

  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

/** Heap and ArrayBuffer bytes after a full collection (the test script runs node with --expose-gc). */
function memory(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A peer that sends and never reads: its socket is paused as soon as it is open. */
async function deafPeer(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, ['wsmp.v1']);
  ws.on('error', () => {});
  await within(new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject))), undefined, 'deaf peer open');
  ws.pause();
  return ws;
}

/** Sends `n` REQUEST frames built by `frame(id)` as fast as the socket takes them. */
function flood(ws: WebSocket, n: number, frame: (id: number) => unknown): void {
  for (let i = 0; i < n; i++) ws.send(encode(frame(2 * i + 1)));
}

describe('a peer that does not read (issue 15, item 3)', () => {
  let svc: TestService;
  const limits = { maxConnectionBufferBytes: 16 * MB, maxBufferedBytes: 1 * MB, maxSendBufferSize: 8 * MB };

  const cleanups: (() => void)[] = [];
  const onCleanup = (fn: () => void): void => void cleanups.push(fn);

  beforeAll(async () => {
    svc = await startService({ controllers: [BigController] }, limits);
  });
  afterEach(async () => {
    for (const fn of cleanups.splice(0)) fn();
    await until(() => svc.server.connectionCount <= 2, undefined, 'the peers of the test gone');
  });
  afterAll(() => svc.close());

  it('3,000 calls for 256 KiB answers: what waits is counted and bounded, reading stops, bufferedBytes says so', async () => {
    const bystander = svc.client();
    expect(await first(bystander.send('echo', 'before'))).toBe('before');
    served = 0;
    const before = memory();
    const ws = await deafPeer(svc.url);
    onCleanup(() => ws.terminate());
    flood(ws, 3000, (id) => [1, id, 'big', 256]);
    // The server answers until the socket is congested, then stops reading this peer.
    await until(() => svc.server.bufferedBytes > limits.maxBufferedBytes, 10_000, 'answers waiting');
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, svc.server.bufferedBytes)), 5);
    await new Promise((r) => setTimeout(r, 500)); // what it could pile up, it has by now
    clearInterval(watch);
    peak = Math.max(peak, svc.server.bufferedBytes);
    const grown = memory() - before;
    // Bounded: waiting answers (16 MiB) + the socket (8 MiB) + what the kernel took; not 3,000 x 256 KiB.
    expect(peak).toBeLessThanOrEqual(limits.maxConnectionBufferBytes + limits.maxSendBufferSize);
    expect(grown).toBeLessThan(96 * MB); // ~256 MB before
    expect(served).toBeLessThan(1000); // reading stopped: most requests were never even read
    // Everyone else is served meanwhile.
    expect(await first(bystander.send('echo', 'during'))).toBe('during');
    ws.terminate();
    await until(() => svc.server.connectionCount === 1, undefined, 'the deaf peer gone');
    await until(() => svc.server.bufferedBytes === 0, undefined, 'nothing buffered');
  });

  it('a flood of unknown patterns from a peer that does not read: the error answers stop when its socket is full', async () => {
    const before = memory();
    const ws = await deafPeer(svc.url);
    onCleanup(() => ws.terminate());
    flood(ws, 100_000, (id) => [1, id, 'no-such-pattern-'.padEnd(64, 'x'), null]);
    await until(() => svc.server.bufferedBytes > limits.maxBufferedBytes, 10_000, 'error answers waiting');
    await new Promise((r) => setTimeout(r, 300));
    expect(svc.server.bufferedBytes).toBeLessThanOrEqual(limits.maxSendBufferSize);
    expect(memory() - before).toBeLessThan(96 * MB);
    const base = svc.server.connectionCount - 1;
    ws.terminate();
    await until(() => svc.server.connectionCount === base, undefined, 'the deaf peer gone');
  });

  it('events a peer does not read past maxSendBufferSize: that connection is cut and reported, the others go on', async () => {
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    const reader = svc.client();
    expect(await first(reader.send('echo', 'hi'))).toBe('hi');
    const base = svc.server.connectionCount;
    const ws = await deafPeer(svc.url);
    onCleanup(() => ws.terminate());
    await until(() => svc.server.connectionCount === base + 1, undefined, 'both connected');
    // The deaf peer cannot see its end (it reads nothing, not even that): the server's side tells.
    const closed = new Promise<number>((resolve) => svc.server.on('disconnect', (_socket, code) => resolve(code)));
    const chunk = Buffer.alloc(256 * 1024, 2);
    for (let i = 0; i < 200 && svc.server.connectionCount === base + 1; i++) {
      svc.server.broadcast('tick', chunk);
      await new Promise((r) => setImmediate(r));
    }
    expect(await within(closed, 10_000, 'the deaf peer cut')).toBe(1008); // cut at once (no closing handshake: the peer reads nothing)
    const report = errors.find((e) => /maxSendBufferSize/.test(e.message));
    expect(report).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED });
    expect(report?.message).toMatch(
      /^the peer is not reading: \d+ bytes wait to be sent, more than maxSendBufferSize \(8388608\), and it took none of them for a second; the connection was cut$/,
    );
    expect(await first(reader.send('echo', 'still'))).toBe('still');
  });

  it('past maxSendBufferSize a new event to that peer is refused loudly (RESOURCE_EXHAUSTED), and broadcast skips it', async () => {
    const base = svc.server.connectionCount;
    const ws = await deafPeer(svc.url);
    onCleanup(() => ws.terminate());
    await until(() => svc.server.connectionCount === base + 1, undefined, 'connected');
    const deaf = [...svc.server.peers].at(-1)!;
    const chunk = Buffer.alloc(256 * 1024, 2);
    let refused: unknown;
    for (let i = 0; i < 200 && refused === undefined; i++) {
      deaf.emit('tick', chunk).subscribe({ error: (e: unknown) => (refused = e) });
      await new Promise((r) => setImmediate(r));
    }
    expect(refused).toMatchObject({
      code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(/^not sent: \d+ bytes already wait for the peer, more than maxSendBufferSize \(8388608\)/),
    });
    const reached = svc.server.broadcast('tick', 'small');
    expect(reached).toBe(base); // everyone but the deaf peer
  });

  it('the options are checked at construction', () => {
    expect(() => new WsMsgpackServer({ maxSendBufferSize: -1 })).toThrow('option maxSendBufferSize must be a number >= 0, got -1');
    expect(() => new WsMsgpackServer({ incompleteMessageTimeout: -1 })).toThrow('option incompleteMessageTimeout must be a number of ms >= 0 or Infinity, got -1');
  });
});

describe('answers that wait are counted, and never dropped (issue 15, item 3)', () => {
  let svc: TestService;

  @Controller()
  class OneController {
    /** A unary answer as an Observable (as behind an interceptor): `of(x)`. */
    @MessagePattern('one')
    one(): Observable<Buffer> {
      return of(Buffer.alloc(256 * 1024, 1));
    }
  }

  beforeAll(async () => {
    svc = await startService({ controllers: [OneController] }, { maxConnectionBufferBytes: 1 * MB, maxBufferedBytes: 64 * 1024 });
  });
  afterAll(() => svc.close());

  it("a slow reader asking 'drop-newest': each one-value answer arrives whole or fails RESOURCE_EXHAUSTED, never as an empty COMPLETE", async () => {
    const ws = await deafPeer(svc.url);
    const frames: unknown[][] = [];
    ws.on('message', (d: Buffer) => frames.push(decode(d) as unknown[]));
    for (let i = 0; i < 40; i++) ws.send(encode([1, 2 * i + 1, 'one', null, { o: 'drop-newest' }]));
    await new Promise((r) => setTimeout(r, 300)); // the answers pile up while the peer does not read
    ws.resume();
    await until(() => frames.length === 40, 10_000, 'an answer to every call');
    const empty = frames.filter((f) => f[0] === 4 && f.length === 2);
    expect(empty).toEqual([]); // 26 of 40 before the fix
    for (const f of frames) expect(f[0] === 4 ? (f[2] as Uint8Array).byteLength : f[2]).toBe(f[0] === 4 ? 256 * 1024 : 'RESOURCE_EXHAUSTED');
    expect(frames.filter((f) => f[0] === 4).length).toBeGreaterThan(0);
    ws.terminate();
  });
});

describe('a client is never cut for its own bursts (issue 15, item 3)', () => {
  let svc: TestService;
  const received: number[] = [];

  @Controller()
  class SinkController {
    @EventPattern('note')
    note(@Payload() note: { i: number }): void {
      received.push(note.i);
    }

    @MessagePattern('echo')
    echo(@Payload() data: unknown): unknown {
      return data;
    }
  }

  beforeAll(async () => {
    svc = await startService({ controllers: [SinkController] });
  });
  afterAll(() => svc.close());

  it('80,000 events of 1 KiB emitted in one loop: what the socket cannot take is refused, the rest arrives, the connection stays', async () => {
    const client = svc.client({ maxSendBufferSize: 16 * MB });
    const conn = await client.connect();
    const pad = 'x'.repeat(1024);
    let sent = 0;
    let refused = 0;
    for (let i = 0; i < 80_000; i++) client.emit('note', { i, pad }).subscribe({ complete: () => sent++, error: () => refused++ });
    await until(() => sent + refused === 80_000, 10_000, 'every emit settled');
    await until(() => received.length === sent, 20_000, 'every accepted event handled');
    expect(sent).toBeGreaterThan(1000);
    expect(refused).toBeGreaterThan(0); // ~80 MB in one tick: more than 16 MiB may wait
    expect(conn.isClosed).toBe(false); // before: cut, and events it had accepted were lost
    expect(await first(client.send('echo', 'still'))).toBe('still');
  });
});
