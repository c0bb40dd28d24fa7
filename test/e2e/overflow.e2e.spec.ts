import { encode } from '@msgpack/msgpack';
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { map, type Observable, range, Subject, toArray } from 'rxjs';
import { WsMsgpackError, WsMsgpackErrorCode, WsMsgpackRecordBuilder, type OverflowStrategy } from '../../src/index.js';
import { OVERFLOW_STRATEGIES } from '../../src/protocol.js';
import { errorOf, first, until, startService, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

/**
 * Overflow strategies of push streams, end to end. A synchronous Observable emits 100 items at
 * once to a peer that granted 1 credit; the other 99 wait in the stream's buffer, bounded in
 * bytes, and the strategy decides which survive. Then the consumer grants credit and receives
 * exactly what the strategy promises, in order, none duplicated.
 */

const PAD = 'x'.repeat(90);
const item = (i: number): { i: number; pad: string } => ({ i, pad: PAD });
/** What one buffered item costs: its encoded NEXT frame plus 8 bytes of bookkeeping. */
const COST = encode([3, 1, item(99)]).byteLength + 8;
/** Room for exactly 10 items. */
const BOUND = COST * 10 + COST / 2;
const FIT = 10;

/** Subjects the tests feed by hand, by tag. */
const feeds = new Map<string, Subject<number>>();

@Controller()
class OverflowController {
  @MessagePattern('burst')
  burst(@Payload() count: number): Observable<{ i: number; pad: string }> {
    return range(0, count).pipe(map(item));
  }

  @MessagePattern('feed')
  feed(@Payload() tag: string): Observable<number> {
    const s = new Subject<number>();
    feeds.set(tag, s);
    return s;
  }

  @MessagePattern('collect')
  collect(@Payload() input$: Observable<number>): Observable<number[]> {
    return input$.pipe(toArray());
  }
}

const ids = (frames: unknown[][], id: number): number[] => frames.filter((f) => (f[0] === 3 || f[0] === 4) && f[1] === id && f.length === 3).map((f) => (f[2] as { i: number }).i);

/** Sends `burst` with one credit, checks what waits, grants the rest, returns the item numbers received. */
async function burst(svc: TestService, meta: Record<string, unknown>): Promise<{ received: number[]; waitingBytes: number; end: unknown[] }> {
  const peer = await RawPeer.open(svc.url);
  try {
    peer.send([1, 1, 'burst', 100, { n: 1, ...meta }]);
    await peer.next((f) => f[0] === 3 && f[1] === 1, 'first item');
    // A round trip: the whole synchronous burst has been buffered by now.
    peer.send([1, 3, 'burst', 1]);
    await peer.next((f) => f[1] === 3 && f[0] === 4, 'barrier');
    const waitingBytes = svc.server.bufferedBytes;
    peer.send([7, 1, 1000]);
    const end = await peer.next((f) => (f[0] === 4 || f[0] === 5) && f[1] === 1, 'end of call 1');
    return { received: ids([...peer.frames, end, [3, 1, { i: 0 }]], 1).sort((a, b) => a - b), waitingBytes, end };
  } finally {
    peer.close();
  }
}

describe('overflow strategies (server option, per-call meta o)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [OverflowController] }, { maxStreamBufferBytes: BOUND });
  });
  afterAll(() => svc.close());

  it("'error' (default): RESOURCE_EXHAUSTED when the 11th item does not fit; nothing after it", async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'burst', 100, { n: 1 }]);
      const err = await peer.next((f) => f[0] === 5 && f[1] === 1, 'ERROR');
      expect(err.slice(0, 3)).toEqual([5, 1, WsMsgpackErrorCode.RESOURCE_EXHAUSTED]);
      expect(err[3]).toContain(`maxStreamBufferBytes ${BOUND}`);
      expect(err[4]).toEqual({ bufferedBytes: FIT * COST, bufferedItems: FIT });
      expect(ids(peer.frames, 1)).toEqual([0]);
      expect(svc.server.bufferedBytes).toBe(0);
    } finally {
      peer.close();
    }
  });

  it("'drop-newest': the first 10 waiting items survive, then COMPLETE", async () => {
    const { received, waitingBytes, end } = await burst(svc, { o: 'drop-newest' });
    expect(waitingBytes).toBe(FIT * COST);
    expect(received).toEqual([0, ...Array.from({ length: FIT }, (_, k) => 1 + k)]);
    expect(end[0]).toBe(4);
  });

  it("'drop-oldest': the last 10 items survive, then COMPLETE", async () => {
    const { received, waitingBytes } = await burst(svc, { o: 'drop-oldest' });
    expect(waitingBytes).toBe(FIT * COST);
    expect(received).toEqual([0, ...Array.from({ length: FIT }, (_, k) => 90 + k)]);
  });

  it("'latest': only the newest item waits", async () => {
    const { received, waitingBytes } = await burst(svc, { o: 'latest' });
    expect(waitingBytes).toBe(COST);
    expect(received).toEqual([0, 99]);
  });

  it('items arrive in order and none twice (frame order on the wire)', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'burst', 100, { n: 1, o: 'drop-oldest' }]);
      await peer.next((f) => f[0] === 3 && f[1] === 1, 'first item');
      peer.send([7, 1, 1000]);
      await peer.next((f) => f[0] === 4 && f[1] === 1, 'COMPLETE');
      const order = ids(peer.frames, 1);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      expect(new Set(order).size).toBe(order.length);
    } finally {
      peer.close();
    }
  });

  it('an unknown meta o is a PROTOCOL_ERROR for that call', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'burst', 1, { o: 'sometimes' }]);
      const err = await peer.next((f) => f[1] === 1, 'answer');
      expect(err.slice(0, 3)).toEqual([5, 1, 'PROTOCOL_ERROR']);
      expect(err[3]).toMatch(/^REQUEST: meta\.o \(overflow\) must be one of "error", "drop-newest", "drop-oldest", "latest"/);
    } finally {
      peer.close();
    }
  });
});

describe('overflow: the server-wide option, and the connection-wide bound', () => {
  it("server option overflow: 'latest' applies when the call does not ask otherwise; the call's own o wins", async () => {
    const svc = await startService({ controllers: [OverflowController] }, { maxStreamBufferBytes: BOUND, overflow: 'latest' });
    try {
      expect((await burst(svc, {})).received).toEqual([0, 99]);
      expect((await burst(svc, { o: 'drop-newest' })).received).toEqual([0, ...Array.from({ length: FIT }, (_, k) => 1 + k)]);
    } finally {
      await svc.close();
    }
  });

  it('streams of one connection share maxConnectionBufferBytes: the second one overflows on it', async () => {
    const svc = await startService({ controllers: [OverflowController] }, { maxConnectionBufferBytes: BOUND });
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'burst', 8, { n: 1 }]); // 7 items wait: fits
      await peer.next((f) => f[0] === 3 && f[1] === 1, 'first item of call 1');
      peer.send([1, 3, 'burst', 100, { n: 1 }]); // 3 more fit, the 4th does not
      const err = await peer.next((f) => f[0] === 5 && f[1] === 3, 'ERROR for call 3');
      expect(err[3]).toContain(`maxConnectionBufferBytes ${BOUND}`);
      peer.send([7, 1, 100]);
      expect(await peer.next((f) => f[0] === 4 && f[1] === 1, 'call 1 completes')).toEqual([4, 1, item(7)]);
      expect(svc.server.bufferedBytes).toBe(0);
    } finally {
      peer.close();
      await svc.close();
    }
  });
});

describe('overflow from WsMsgpackClient', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [OverflowController] }, { maxStreamBufferBytes: BOUND, window: 4 });
  });
  afterAll(() => svc.close());

  it("record setOverflow('latest') with a slow iterate() consumer: each pull gets the newest value", async () => {
    const client = svc.client();
    const tag = `feed-${Math.random()}`;
    const it = client.iterate<number>('feed', new WsMsgpackRecordBuilder(tag).setWindow(1).setOverflow('latest').build())[Symbol.asyncIterator]();
    const firstItem = it.next();
    const barrier = async (): Promise<void> => {
      expect(await first(client.send('burst', 1))).toEqual(item(0));
    };
    await barrier();
    const feed = feeds.get(tag)!;
    feed.next(0); // credit 1: sent at once
    expect(await within(firstItem)).toEqual({ value: 0, done: false });
    await barrier(); // the CREDIT that taking item 0 granted has reached the server
    feed.next(1); // sent at once on that credit
    for (let v = 2; v <= 50; v++) feed.next(v); // no credit: only the newest waits
    expect(await within(it.next())).toEqual({ value: 1, done: false });
    expect(await within(it.next())).toEqual({ value: 50, done: false });
    feed.complete();
    expect(await within(it.next())).toEqual({ value: undefined, done: true });
  });

  it('every strategy is accepted by the record builder and the client option', async () => {
    for (const strategy of OVERFLOW_STRATEGIES) {
      const record = new WsMsgpackRecordBuilder(3).setOverflow(strategy).build();
      expect(record.options.overflow).toBe(strategy);
      expect((await first(svc.client({ overflow: strategy }).send('burst', 1))) as unknown).toEqual(item(0));
    }
    expect(() => svc.client({ overflow: 'sometimes' as OverflowStrategy })).toThrow(/overflow must be one of 'error', 'drop-newest', 'drop-oldest', 'latest'/);
  });

  it("client option overflow: 'drop-oldest' bounds a request stream the server has not given credit for yet", async () => {
    // The whole range is emitted before the server's first CREDIT (window 4): only the newest fit.
    const client = svc.client({ overflow: 'drop-oldest', maxStreamBufferBytes: 10 * 16 });
    const got = (await first(client.send('collect', range(0, 1000)))) as number[];
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(20);
    expect(got).toEqual(Array.from({ length: got.length }, (_, k) => 1000 - got.length + k));
  });

  it("client default 'error': a request stream that overflows fails the call locally with RESOURCE_EXHAUSTED", async () => {
    const client = svc.client({ maxStreamBufferBytes: 10 * 16 });
    const err = await errorOf(client.send('collect', range(0, 1000)));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect((err as WsMsgpackError).code).toBe(WsMsgpackErrorCode.RESOURCE_EXHAUSTED);
    const conn = await client.connect();
    // Nothing stays buffered (the socket's own bytes, counted too, leave at the end of the tick).
    await until(() => conn.bufferedBytes === 0, undefined, 'nothing buffered');
    expect(await first(client.send('burst', 1))).toEqual(item(0)); // the connection is fine
  });
});
