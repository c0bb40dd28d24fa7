import { encode } from '@msgpack/msgpack';
import { from, Observable, of, range, Subject, throwError } from 'rxjs';
import { BufferBudget } from '../../src/connection/frame-queue.js';
import { iterateThrough, type IterationOutcome } from '../../src/connection/iteration.js';
import { SingleValue, type OutboundStreamOptions } from '../../src/connection/outbound-types.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';
import { recordedStream } from '../support/recording-sink.js';

/** Lets microtasks and immediates run. */
async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

const stream = (options: Partial<OutboundStreamOptions> = {}): ReturnType<typeof recordedStream> => recordedStream(options);

const completeNoValue: Frame = { type: FrameType.COMPLETE, id: 1, hasValue: false };

describe('OutboundStream: one value', () => {
  it('a value is one COMPLETE frame carrying it', () => {
    const { s, sink, ended } = stream();
    s.start(new SingleValue(6));
    expect(sink.frames).toEqual([{ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 6 }]);
    expect(s.isFinished).toBe(true);
    expect(ended()).toBe(1);
  });

  it('undefined completes without a value', () => {
    const { s, sink } = stream();
    s.start(new SingleValue(undefined));
    expect(sink.frames).toEqual([completeNoValue]);
  });

  it('with no credit the value waits, then goes with COMPLETE when credit comes', () => {
    const { s, sink } = stream({ credit: 0 });
    s.start(new SingleValue('x'));
    expect(sink.frames).toEqual([]);
    s.addCredit(1);
    expect(sink.frames).toEqual([{ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 'x' }]);
  });
});

describe('OutboundStream: push sources (Observables)', () => {
  it('of(x) is one COMPLETE frame with the value (held to the end of the microtask)', async () => {
    const { s, sink } = stream();
    s.start(of(42));
    await settle(1);
    expect(sink.frames).toEqual([{ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 42 }]);
  });

  it('a synchronous burst beyond credit is buffered in bytes, drained on credit, the last item inside COMPLETE', async () => {
    const { s, sink, budget } = stream({ credit: 3 });
    s.start(range(0, 10));
    expect(sink.values()).toEqual([0, 1, 2]);
    expect(s.bufferedBytes).toBe(7 * (encode([3, 1, 9]).byteLength + 8));
    expect(budget.used).toBe(s.bufferedBytes);
    s.addCredit(4);
    expect(sink.values()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    s.addCredit(100);
    expect(sink.values()).toEqual(Array.from({ length: 10 }, (_, i) => i));
    expect(sink.last()).toEqual({ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 9 });
    expect(budget.used).toBe(0);
    expect(s.isFinished).toBe(true);
  });

  it('an error after items: the buffered items first, then ERROR', () => {
    const { s, sink } = stream({ credit: 1 });
    const subject = new Subject<number>();
    s.start(subject);
    subject.next(1);
    subject.next(2);
    subject.next(3);
    subject.error(new WsMsgpackError('X', 'boom'));
    expect(sink.values()).toEqual([1]);
    s.addCredit(10);
    expect(sink.values()).toEqual([1, 2, 3]);
    expect(sink.last()).toEqual({ type: FrameType.ERROR, id: 1, code: 'X', message: 'boom' });
  });

  it("overflow 'error': RESOURCE_EXHAUSTED, the source unsubscribed, the bytes released", () => {
    const cost = encode([3, 1, 0]).byteLength + 8;
    const budget = new BufferBudget(1 << 20);
    const { s, sink } = stream({ credit: 0, maxBytes: cost * 3, budget });
    let unsubscribed = false;
    const subject = new Subject<number>();
    s.start(
      new Observable<number>((sub) => {
        const inner = subject.subscribe(sub);
        return () => {
          unsubscribed = true;
          inner.unsubscribe();
        };
      }),
    );
    for (let i = 0; i < 5; i++) subject.next(i);
    expect(sink.frames).toHaveLength(1);
    expect(sink.frames[0]).toMatchObject({ type: FrameType.ERROR, code: 'RESOURCE_EXHAUSTED' });
    expect(unsubscribed).toBe(true);
    expect(budget.used).toBe(0);
  });

  it.each([
    ['drop-newest', [1, 2, 3]],
    ['drop-oldest', [7, 8, 9]],
    ['latest', [9]],
  ] as const)("overflow '%s' keeps %j of 1..9", (overflow, kept) => {
    const cost = encode([3, 1, 0]).byteLength + 8;
    const { s, sink } = stream({ credit: 1, maxBytes: cost * 3, overflow });
    s.start(range(0, 10));
    expect(sink.values()).toEqual([0]);
    expect(s.bufferedBytes).toBe(kept.length * cost);
    s.addCredit(100);
    expect(sink.values()).toEqual([0, ...kept]);
    expect(s.dropped).toBe(9 - kept.length);
    expect(sink.last()).toMatchObject({ type: FrameType.COMPLETE });
  });

  it('the connection budget bounds streams together', () => {
    const cost = encode([3, 1, 0]).byteLength + 8;
    const budget = new BufferBudget(cost * 4);
    const a = stream({ credit: 0, budget, overflow: 'drop-newest' });
    const b = stream({ credit: 0, budget, overflow: 'drop-newest' });
    a.s.start(range(0, 3));
    b.s.start(range(0, 3));
    expect(a.s.bufferedBytes).toBe(3 * cost);
    expect(b.s.bufferedBytes).toBe(1 * cost);
    expect(budget.used).toBe(4 * cost);
    a.s.stop();
    expect(budget.used).toBe(cost);
  });

  it('an item that cannot be encoded fails the stream (INTERNAL from the sink); onFail replaces ERROR', () => {
    const failures: unknown[] = [];
    const { s, sink } = stream({ credit: 0, onFail: (e) => failures.push(e) });
    s.start(of(1, () => {}));
    expect(failures).toHaveLength(1);
    expect(sink.frames).toEqual([]);
    expect(s.isFinished).toBe(true);
  });

  it('waits while the socket is congested, and resumes when it drains', () => {
    const { s, sink } = stream();
    sink.congestedNow = true;
    s.start(range(0, 5));
    expect(sink.frames).toEqual([]);
    sink.drain();
    expect(sink.values()).toEqual([0, 1, 2, 3, 4]);
  });

  it('an async iterable emitted by the Observable is pulled in its place, items after it wait behind it', async () => {
    async function* two(): AsyncGenerator<string> {
      yield 'a';
      yield 'b';
    }
    const { s, sink } = stream();
    s.start(from([1, two(), 2]));
    await settle();
    expect(sink.values()).toEqual([1, 'a', 'b', 2]);
    expect(sink.last()?.type).toBe(FrameType.COMPLETE);
  });
});

describe('OutboundStream: pull sources', () => {
  it('pulls one item ahead of the credit, so COMPLETE follows the last item at once', async () => {
    let pulled = 0;
    function* numbers(): Generator<number> {
      for (let i = 0; i < 3; i++) {
        pulled++;
        yield i;
      }
    }
    const { s, sink } = stream({ credit: 3 });
    s.start(numbers());
    await settle();
    expect(sink.frames).toEqual([...[0, 1, 2].map((value): Frame => ({ type: FrameType.NEXT, id: 1, value })), completeNoValue]);
    expect(pulled).toBe(3);
  });

  it('with no credit the item pulled ahead waits; stop() closes the iterator', async () => {
    let finallyRan = false;
    async function* endless(): AsyncGenerator<number> {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        finallyRan = true;
      }
    }
    const { s, sink } = stream({ credit: 0 });
    s.start(endless());
    await settle();
    expect(sink.frames).toEqual([]);
    s.addCredit(2);
    await settle();
    expect(sink.values()).toEqual([0, 1]);
    s.stop();
    await settle();
    expect(finallyRan).toBe(true);
  });

  it('an iterator error becomes ERROR, through mapPullError', async () => {
    async function* failing(): AsyncGenerator<number> {
      yield 1;
      throw new Error('dry');
    }
    const { s, sink } = stream({ mapPullError: (e) => new WsMsgpackError('MAPPED', (e as Error).message) });
    s.start(failing());
    await settle();
    expect(sink.values()).toEqual([1]);
    expect(sink.last()).toEqual({ type: FrameType.ERROR, id: 1, code: 'MAPPED', message: 'dry' });
  });

  it('an IterationHandle reports the iteration error to its Observable, whose error is what is sent', async () => {
    async function* failing(): AsyncGenerator<number> {
      yield 1;
      throw new Error('dry');
    }
    const outcomes: IterationOutcome[] = [];
    const observable = iterateThrough(failing());
    const { s, sink } = stream();
    s.start(
      new Observable((sub) =>
        observable.subscribe({
          next: (h) => sub.next(h),
          error: (e: unknown) => {
            outcomes.push({ error: e });
            sub.error(new WsMsgpackError('FILTERED', 'by the filter'));
          },
          complete: () => sub.complete(),
        }),
      ),
    );
    await settle();
    expect(outcomes).toEqual([{ error: new Error('dry') }]);
    expect(sink.values()).toEqual([1]);
    expect(sink.last()).toEqual({ type: FrameType.ERROR, id: 1, code: 'FILTERED', message: 'by the filter' });
  });

  it('a source that arrives after the stream was stopped is disposed of (return() runs)', async () => {
    let returned = 0;
    const iterator: AsyncIterableIterator<number> = {
      next: async () => ({ value: 1, done: false }),
      return: async () => {
        returned++;
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    const { s } = stream();
    s.stop();
    s.start(new SingleValue(iterator));
    await settle();
    expect(returned).toBe(1);
  });

  it("what a late source's clean-up throws is reported, not lost", async () => {
    const iterator = {
      next: async () => ({ value: 1, done: false }),
      return: async () => {
        throw new Error('cannot close');
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    const { s, sink } = stream();
    s.stop();
    s.start(iterator as AsyncIterable<number>);
    await settle();
    expect(sink.reports).toEqual([new Error('cannot close')]);
  });

  it('an Observable that errors at once sends ERROR and nothing else', () => {
    const { s, sink } = stream();
    s.start(throwError(() => new WsMsgpackError('E', 'now')));
    expect(sink.frames).toEqual([{ type: FrameType.ERROR, id: 1, code: 'E', message: 'now' }]);
  });
});
