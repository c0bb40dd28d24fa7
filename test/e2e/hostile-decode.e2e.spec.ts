/**
 * Issue 15, item 1: frames within every length limit that decode into far more memory than they
 * take on the wire. A raw peer attacks a real Nest service while a well-behaved client calls `echo`
 * every 20 ms on its own connection. Each bomb must fail its own call with RESOURCE_EXHAUSTED
 * naming maxInboundBytes, before anything of it is allocated: the heap stays put, the event loop
 * keeps turning, the attacker's connection answers its next call, the other client never fails.
 *
 * Before the fix: the 15 MB frame of empty maps grew the heap by ~900 MB and stopped the event loop
 * for ~2.6 s; the 210 KB frame of `{"1023": 0}` maps grew it by ~370 MB (a 2 MB one exhausted it).
 */
import { Controller } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { encode } from '@msgpack/msgpack';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { count, from, lastValueFrom, type Observable } from 'rxjs';
import { WsMsgpackErrorCode, WsMsgpackRecordBuilder, WsMsgpackServer } from '../../src/index.js';
import { FrameCodec } from '../../src/protocol/codec.js';
import { errorOf, first, startService, until, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

const MB = 1024 * 1024;

/** Gates of the running 'hold' calls: each keeps its request until released. */
const gates: (() => void)[] = [];
/** Gates of the running 'slow-event' handlers. */
const eventGates: (() => void)[] = [];
/** Gates of the waiting 'late-hold' handlers. */
const lateGates: (() => void)[] = [];

@Controller()
class BombController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  @MessagePattern('size')
  size(@Payload() data: unknown[]): number {
    return data.length;
  }

  /** Waits until released, then takes its request stream (whatever happened meanwhile). */
  @MessagePattern('late-hold')
  async lateHold(@Payload() items: Observable<Buffer>): Promise<number> {
    await new Promise<void>((resolve) => lateGates.push(resolve));
    return lastValueFrom(items.pipe(count())).catch(() => -1);
  }

  /** An event handler that takes its time (until released). */
  @EventPattern('slow-event')
  slowEvent(@Payload() _rows: unknown): Promise<void> {
    return new Promise((resolve) => eventGates.push(resolve));
  }

  /** Holds its request (and its payload) until released. */
  @MessagePattern('hold')
  hold(): Promise<string> {
    return new Promise((resolve) => gates.push(() => resolve('released')));
  }
}

/** Heap and ArrayBuffer bytes after a full collection (the test script runs node with --expose-gc). */
function memory(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** An array 32 header for `n` elements. */
function array32(n: number): Uint8Array {
  const b = new Uint8Array(5);
  b[0] = 0xdd;
  new DataView(b.buffer).setUint32(1, n);
  return b;
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `[1, id, pattern, payload]` with the payload's bytes given: a REQUEST whose payload is written by hand. */
function request(id: number, pattern: string, payload: Uint8Array): Uint8Array {
  const head = encode([1, id, pattern, null]);
  head[0] = 0x94;
  return cat(head.subarray(0, head.length - 1), payload);
}

/** A client of its own calling echo every 20 ms; every answer must come, and be right. */
function bystander(svc: TestService): { stop(): Promise<number> } {
  const client = svc.client();
  let running = true;
  let calls = 0;
  const failures: unknown[] = [];
  const loop = (async () => {
    while (running) {
      const n = calls++;
      try {
        const answer = await first(client.send('echo', { n }), 10_000);
        if ((answer as { n: number }).n !== n) failures.push(answer);
      } catch (e) {
        failures.push(e);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      await until(() => calls >= 3, 10_000, 'three calls of the bystander');
      running = false;
      await loop;
      expect(failures).toEqual([]);
      return calls;
    },
  };
}

const isFor = (id: number) => (f: unknown[]) => f[1] === id;

describe('frames that decode into far more than they weigh (issue 15, item 1)', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [BombController] });
  });
  afterAll(() => svc.close());

  it('15 MB of empty maps (15 arrays of 1,000,000, every header honest): RESOURCE_EXHAUSTED on that call, no heap growth, no stall', async () => {
    const other = bystander(svc);
    const peer = await RawPeer.open(svc.url);
    const million = cat(array32(1_000_000), new Uint8Array(1_000_000).fill(0x80));
    const payload = cat(Uint8Array.of(0x9f), ...Array<Uint8Array>(15).fill(million)); // fixarray of 15
    const frame = request(1, 'size', payload);
    expect(frame.byteLength).toBeLessThan(16 * MB); // within maxPayload
    const before = memory();
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    peer.sendBytes(frame);
    const answer = await peer.next(isFor(1));
    delay.disable();
    expect(answer.slice(0, 3)).toEqual([5, 1, 'RESOURCE_EXHAUSTED']);
    expect(answer[3]).toMatch(/^a frame of 15000\d+ bytes would take about [\d.]+ MiB once decoded, more than the 256\.0 MiB this side can still take \(maxInboundBytes\)$/);
    expect(memory() - before).toBeLessThan(64 * MB); // the frame itself (15 MB), no decoded maps (~960 MB)
    expect(delay.max / 1e6).toBeLessThan(1000); // the scan stops early; decoding stopped the loop for ~2.6 s
    // The same connection goes on; so does everyone else.
    peer.send([1, 3, 'echo', 'after']);
    expect(await peer.next(isFor(3))).toEqual([4, 3, 'after']);
    peer.close();
    await other.stop();
  });

  it('a 210 KB frame of {"1023": 0} maps (V8 gives each a 1,024-slot store: 8 KB) is refused the same way', async () => {
    const peer = await RawPeer.open(svc.url);
    const n = 30_000;
    const map = Uint8Array.of(0x81, 0xa4, 0x31, 0x30, 0x32, 0x33, 0x00); // {"1023": 0}
    const payload = cat(array32(n), ...Array<Uint8Array>(n).fill(map));
    const numeric = cat(array32(n), ...Array<Uint8Array>(n).fill(Uint8Array.of(0x81, 0xcd, 0x03, 0xff, 0x00))); // {1023: 0}
    const before = memory();
    peer.sendBytes(request(1, 'size', payload));
    peer.sendBytes(request(3, 'size', numeric));
    for (const id of [1, 3]) {
      const answer = await peer.next(isFor(id));
      expect(answer.slice(0, 3)).toEqual([5, id, 'RESOURCE_EXHAUSTED']);
      expect(answer[3]).toMatch(/maxInboundBytes/);
    }
    expect(memory() - before).toBeLessThan(64 * MB); // ~370 MB before the fix
    peer.close();
  });

  it('legitimate large payloads still pass: 4 MB of records, 8 MB of numbers, a 12 MB binary', async () => {
    const client = svc.client();
    const rows = Array.from({ length: 100_000 }, (_, i) => ({ id: i, name: `user ${i}`, active: i % 2 === 0, tags: ['a', 'b'] }));
    expect(encode(rows).byteLength).toBeGreaterThan(3 * MB);
    expect(await first(client.send('size', rows), 20_000)).toBe(100_000);
    const numbers = Array.from({ length: 1_000_000 }, (_, i) => i * 7);
    expect(await first(client.send('size', numbers), 20_000)).toBe(1_000_000);
    const blob = Buffer.alloc(12 * MB, 7);
    expect(((await first(client.send('echo', blob), 20_000)) as Buffer).equals(blob)).toBe(true);
  });

  it('an event that would not fit is dropped and reported; the connection stays up', async () => {
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    const peer = await RawPeer.open(svc.url);
    const empties = cat(array32(1_000_000), new Uint8Array(1_000_000).fill(0x80));
    const head = encode([2, 'note', null]);
    head[0] = 0x93;
    peer.sendBytes(cat(head.subarray(0, head.length - 1), cat(Uint8Array.of(0x95), ...Array<Uint8Array>(5).fill(empties))));
    const answer = await peer.next(isFor(0));
    expect(answer.slice(0, 3)).toEqual([5, 0, 'RESOURCE_EXHAUSTED']);
    await until(() => errors.some((e) => /a frame over a limit/.test(e.message)), undefined, 'the report');
    peer.send([1, 1, 'echo', 'alive']);
    expect(await peer.next(isFor(1))).toEqual([4, 1, 'alive']);
    peer.close();
  });
});

describe("maxInboundBytes: what the peer's calls hold at once", () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [BombController] }, { maxInboundBytes: 4 * MB });
  });
  afterAll(() => svc.close());

  it('requests of running calls are counted until they end; a call that does not fit fails alone, and fits again once others ended', async () => {
    const client = svc.client();
    const payload = Array.from({ length: 30_000 }, (_, i) => `item ${i}`); // ~1.6 MB with its frame: two fit in 4 MiB, three do not
    const held = [1, 2].map(() => first(client.send('hold', payload), 10_000));
    await until(() => gates.length === 2, undefined, 'two calls holding');
    const refused = await errorOf(client.send('hold', payload));
    expect(refused).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED, message: expect.stringMatching(/maxInboundBytes/) });
    expect(await first(client.send('echo', 'small'))).toBe('small'); // small calls still fit
    for (const release of gates.splice(0)) release();
    expect(await Promise.all(held)).toEqual(['released', 'released']);
    const again = first(client.send('hold', payload), 10_000);
    await until(() => gates.length === 1, undefined, 'the call holding again');
    gates.splice(0)[0]!();
    expect(await again).toBe('released');
  });

  it('a call past its deadline whose handler still runs keeps its request counted until the handler returns', async () => {
    const client = svc.client();
    const payload = Array.from({ length: 30_000 }, (_, i) => `item ${i}`);
    const expired = errorOf(client.send('hold', new WsMsgpackRecordBuilder(payload).setTimeout(100).build()), 10_000);
    const held = first(client.send('hold', payload), 10_000);
    await until(() => gates.length === 2, undefined, 'two calls holding');
    expect(await expired).toMatchObject({ code: WsMsgpackErrorCode.DEADLINE_EXCEEDED });
    // The expired call's handler ignores its signal and still holds its payload: still counted.
    expect(await errorOf(client.send('hold', payload))).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED });
    gates.shift()!(); // the expired call's handler returns at last
    const again = first(client.send('hold', payload), 10_000);
    await until(() => gates.length === 2, undefined, 'the freed share taken again');
    for (const release of gates.splice(0)) release();
    expect(await Promise.all([held, again])).toEqual(['released', 'released']);
  });

  it('an event counts while its async handler runs; past the budget events are dropped and reported, then accepted again', async () => {
    const errors: Error[] = [];
    svc.server.on('error', (e) => errors.push(e));
    const client = svc.client();
    const payload = Array.from({ length: 30_000 }, (_, i) => `item ${i}`); // ~1.6 MB each
    for (let i = 0; i < 4; i++) client.emit('slow-event', payload).subscribe();
    await until(() => eventGates.length === 2, undefined, 'two events being handled');
    await until(() => errors.filter((e) => /a frame over a limit/.test(e.message)).length === 2, undefined, 'the two refusals reported');
    expect(eventGates).toHaveLength(2); // the other two did not fit
    for (const release of eventGates.splice(0)) release();
    client.emit('slow-event', payload).subscribe();
    await until(() => eventGates.length === 1, undefined, 'an event accepted again');
    eventGates.splice(0)[0]!();
  });

  it('is checked at construction; 0 means no limit', async () => {
    expect(() => new WsMsgpackServer({ maxInboundBytes: -1 })).toThrow('option maxInboundBytes must be a number >= 0, got -1');
    const unlimited = await startService({ controllers: [BombController] }, { maxInboundBytes: 0 });
    try {
      const rows = Array.from({ length: 30_000 }, (_, i) => `item ${i}`);
      expect(await first(unlimited.client().send('size', rows))).toBe(30_000);
    } finally {
      await unlimited.close();
    }
  });
});

describe('maxServerInboundBytes: what all peers hold, ended connections included', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [BombController] }, { maxInboundBytes: 4 * MB, maxServerInboundBytes: 4 * MB });
  });
  afterAll(() => svc.close());

  it('a handler that outlives its connection keeps its request counted; reconnecting cannot pile them up', async () => {
    const payload = Array.from({ length: 30_000 }, (_, i) => `item ${i}`); // ~1.6 MB with its frame
    for (let round = 0; round < 2; round++) {
      const client = svc.client();
      void first(client.send('hold', payload), 10_000).catch(() => {});
      await until(() => gates.length === round + 1, undefined, 'the call holding');
      await client.close(); // the handler ignores the abort, and still holds the request
    }
    expect(svc.server.inboundBytes).toBeGreaterThan(3 * MB);
    const fresh = svc.client();
    const refused = await errorOf(fresh.send('hold', payload));
    expect(refused).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED, message: expect.stringMatching(/maxServerInboundBytes/) });
    for (const release of gates.splice(0)) release();
    await until(() => svc.server.inboundBytes === 0, undefined, 'the lingering requests released');
    const accepted = first(fresh.send('hold', payload), 10_000);
    await until(() => gates.length === 1, undefined, 'accepted again');
    gates.splice(0)[0]!();
    expect(await accepted).toBe('released');
  });

  it('request-stream items a late handler still holds stay counted after a cancel, until it stops', async () => {
    const client = svc.client();
    const items = Array.from({ length: 8 }, (_, i) => Buffer.alloc(128 * 1024, i));
    const sub = client.send('late-hold', from(items)).subscribe({ error: () => {} });
    await until(() => lateGates.length === 1, undefined, 'the late handler waiting');
    await until(() => svc.server.inboundBytes >= 8 * 128 * 1024, undefined, 'the items arrived');
    sub.unsubscribe(); // CANCEL: the handler ignores it and will still subscribe
    await new Promise((r) => setTimeout(r, 50));
    expect(svc.server.inboundBytes).toBeGreaterThanOrEqual(8 * 128 * 1024);
    lateGates.splice(0)[0]!();
    await until(() => svc.server.inboundBytes === 0, undefined, 'released once the handler stopped');
  });
});

describe('frames that end or pace a call are never refused for the budget', () => {
  it('CANCEL, CREDIT, COMPLETE and ERROR decode with no budget left; a REQUEST does not', () => {
    const codec = new FrameCodec();
    for (const f of [
      [6, 3],
      [7, 3, 10],
      [4, 3],
      [4, 3, 'small'],
      [5, 3, 'CANCELLED', 'gone'],
    ]) {
      expect(() => codec.decode(encode(f), 0)).not.toThrow();
    }
    expect(() => codec.decode(encode([1, 3, 'echo', 'x']), 0)).toThrow(/maxInboundBytes/);
  });
});
