import { Controller } from '@nestjs/common';
import { Payload, RpcException } from '@nestjs/microservices';
import { WsMessagePattern, WsMsgpackRecordBuilder } from '../../src/index.js';
import { first, startService, until, within, type TestService } from '../support/helpers.js';

const produced = { count: 0, finalized: 0 };

@Controller()
class StreamController {
  /** Infinite: only backpressure keeps it from running ahead. */
  @WsMessagePattern('endless')
  async *endless(@Payload() size: number): AsyncGenerator<{ i: number; pad: Buffer }> {
    try {
      for (let i = 0; ; i++) {
        produced.count++;
        yield { i, pad: Buffer.alloc(size, i % 256) };
      }
    } finally {
      produced.finalized++;
    }
  }

  @WsMessagePattern('few')
  async *few(@Payload() n: number): AsyncGenerator<number> {
    for (let i = 0; i < n; i++) yield i;
  }

  @WsMessagePattern('failAfter')
  async *failAfter(@Payload() n: number): AsyncGenerator<number> {
    for (let i = 0; i < n; i++) yield i;
    throw new RpcException('ran dry');
  }

  @WsMessagePattern('ping')
  ping(): string {
    return 'pong';
  }
}

function reset(): void {
  produced.count = 0;
  produced.finalized = 0;
}

describe('client.iterate(): pull-based consumption with end-to-end backpressure', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [StreamController] });
  });
  afterAll(() => svc.close());

  it('yields every item in order and completes', async () => {
    const got: number[] = [];
    for await (const v of svc.client().iterate<number>('few', 5)) got.push(v);
    expect(got).toEqual([0, 1, 2, 3, 4]);
  });

  it('throws the handler error after the items before it', async () => {
    const got: number[] = [];
    await expect(
      within(
        (async () => {
          for await (const v of svc.client().iterate<number>('failAfter', 2)) got.push(v);
        })(),
      ),
    ).rejects.toEqual({ status: 'error', message: 'ran dry' });
    expect(got).toEqual([0, 1]);
  });

  it('the server runs at most one window ahead of a consumer that stops pulling', async () => {
    reset();
    const c = svc.client();
    const barrier = async (): Promise<void> => {
      // A round trip on the same socket: any CREDIT the client sent before it has been processed.
      expect(await first(c.send('ping', {}))).toBe('pong');
    };
    const it = c.iterate<{ i: number }>('endless', new WsMsgpackRecordBuilder(16).setWindow(8).build())[Symbol.asyncIterator]();
    const nextItem = async (): Promise<{ i: number }> => (await within(it.next())).value as { i: number };
    for (let k = 0; k < 3; k++) expect((await nextItem()).i).toBe(k);
    // The server pulls one item beyond the credit (held until credit comes) to learn early when the source ends.
    await until(() => produced.count === 9, undefined, 'first window produced');
    await barrier();
    expect(produced.count).toBe(9); // 3 consumed, 5 ahead + 1 held: no credit yet
    expect((await nextItem()).i).toBe(3); // 4 consumed: half the window -> top up to 4 + 8
    await until(() => produced.count === 13, undefined, 'top-up produced');
    await barrier();
    expect(produced.count).toBe(13);
    await it.return!();
    await until(() => produced.finalized === 1, undefined, 'generator finally');
    await barrier();
    expect(produced.count).toBe(13);
  });

  it('break in for-await cancels the call on the server', async () => {
    reset();
    let n = 0;
    for await (const item of svc.client().iterate<{ i: number }>('endless', 8)) {
      expect(item.i).toBe(n++);
      if (n === 20) break;
    }
    await until(() => produced.finalized === 1, undefined, 'generator finally');
  });

  it('slow consumer: 1 KiB items at one per millisecond for 10 s, memory stays bounded, nothing lost or reordered', async () => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!gc) throw new Error('run jest with NODE_OPTIONS=--expose-gc (npm test does)');
    reset();
    const c = svc.client();
    await c.connect();
    gc();
    const base = process.memoryUsage().heapUsed;
    let expected = 0;
    let disorder = 0;
    let maxAhead = 0;
    let peakGrowth = 0;
    const stopAt = Date.now() + 10_000;
    for await (const item of c.iterate<{ i: number; pad: Buffer }>('endless', 1024)) {
      if (item.i !== expected || item.pad.length !== 1024 || item.pad[0] !== expected % 256) disorder++;
      expected++;
      maxAhead = Math.max(maxAhead, produced.count - expected);
      if (expected % 1000 === 0) {
        gc();
        peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - base);
      }
      if (Date.now() >= stopAt) break;
      await new Promise((r) => setTimeout(r, 1)); // the consumer's pace: one item per millisecond
    }
    expect(expected).toBeGreaterThan(1000);
    expect(disorder).toBe(0);
    // Default window 256: the producer is never more than one window (+ the item in hand) ahead.
    expect(maxAhead).toBeLessThanOrEqual(257);
    expect(peakGrowth).toBeLessThan(20 * 1024 * 1024);
    await until(() => produced.finalized === 1, undefined, 'generator finally');
  }, 30_000);
});
