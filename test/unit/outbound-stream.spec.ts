import { encode } from '@msgpack/msgpack';
import { from, Observable, of, range, Subject, Subscriber, throwError } from 'rxjs';
import { BufferBudget } from '../../src/connection/frame-queue.js';
import { expandIterables, IterationHandle, iterateThrough, type IterationOutcome } from '../../src/connection/iteration.js';
import { OutboundStream } from '../../src/connection/outbound-stream.js';
import { SingleValue, type OutboundStreamOptions } from '../../src/connection/outbound-types.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';
import { RecordingSink, recordedStream } from '../support/recording-sink.js';

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

describe('OutboundStream: a synchronous Observable is stopped when its stream ends during subscribe()', () => {
  /** A synchronous source that honours unsubscription (from(iterable), range, a loop checking subscriber.closed), bounded so that a test that fails still ends. */
  function syncSource(counter: { emitted: number }): Observable<number> {
    return new Observable<number>((sub) => {
      while (!sub.closed && counter.emitted < 1_000_000) sub.next(counter.emitted++);
      sub.complete();
    });
  }

  it("overflow 'error' during a synchronous burst stops the source (an endless one would hang)", () => {
    const { s, sink } = stream({ credit: 0, maxBytes: 100 });
    const counter = { emitted: 0 };
    s.start(syncSource(counter));
    expect(sink.frames[0]).toMatchObject({ type: FrameType.ERROR, code: 'RESOURCE_EXHAUSTED' });
    expect(s.isFinished).toBe(true);
    // The overflow happened after ~10 items; the source should have been stopped there.
    expect(counter.emitted).toBeLessThan(100);
  });

  it('a send that throws (socket gone) during a synchronous burst stops it too', () => {
    const { s, sink } = stream();
    sink.failSends = true;
    const counter = { emitted: 0 };
    s.start(syncSource(counter));
    expect(s.isFinished).toBe(true);
    expect(counter.emitted).toBeLessThan(100);
  });

  it('expandIterables (the filter bridge wraps every handler Observable in it) passes the stop on', () => {
    const counter = { emitted: 0 };
    // A consumer that stops after 10 items, the way an rxjs operator chain would (take(10)).
    const consumer: Subscriber<unknown> = new Subscriber<unknown>({
      next: () => {
        if (counter.emitted >= 10) consumer.unsubscribe();
      },
    } as never);
    expandIterables(syncSource(counter)).subscribe(consumer);
    expect(consumer.closed).toBe(true);
    expect(counter.emitted).toBeLessThan(100);
  });
});

describe('iterateThrough: a failing clean-up of an unused iterable is reported, never an unhandled rejection', () => {
  it('hands the rejection of return() to its caller', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      // A cursor-like async iterator whose release fails (e.g. its DB connection is gone).
      const cursor: AsyncIterableIterator<number> = {
        next: async () => ({ value: 1, done: false }),
        return: async () => {
          throw new Error('cannot close cursor');
        },
        [Symbol.asyncIterator]: () => cursor,
      };
      let runDispose: (() => Promise<void>) | undefined;
      iterateThrough(cursor as AsyncIterable<unknown>, (dispose) => (runDispose = dispose));
      // The call ended before anyone subscribed: the clean-up's failure reaches the caller.
      await expect(runDispose!()).rejects.toThrow('cannot close cursor');
      await settle(5);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    // Expected: the failure is reported (as OutboundStream.dispose does: .catch(report)), never unhandled.
    expect(unhandled).toEqual([]);
  });
});

describe('OutboundStream: an async iterable emitted right after a value that fails the stream', () => {
  it('nothing follows the terminal frame, and the iterable is released without being pulled', async () => {
    let released = 0;
    let i = 0;
    const rows: AsyncIterableIterator<number> = {
      next: async () => (i < 10 ? { value: i++, done: false as const } : { value: undefined, done: true as const }),
      return: async () => {
        released++;
        return { value: undefined, done: true as const };
      },
      [Symbol.asyncIterator]: () => rows,
    };
    const { s, sink, ended } = stream({ credit: 3 });
    // The function cannot be encoded (INTERNAL); any failing held value does the same (too big for
    // maxPayload, or overflow of a full buffer).
    s.start(from([() => 1, rows]));
    await settle();
    expect(sink.frames[0]).toMatchObject({ type: FrameType.ERROR });
    expect(ended()).toBe(1);
    // Before the fix: NEXT 0 and NEXT 1 (the credit left) followed the ERROR, and the iterator,
    // parked for credit that would never come, was never released (return() never called).
    expect({ frames: sink.frames.length, released }).toEqual({ frames: 1, released: 1 });
  });
});

describe('OutboundStream: randomized invariants (credit, congestion, order, budget, one end, nothing after it, iterators closed)', () => {
  function rng(seed: number): () => number {
    return () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
  }

  /** Checks at every send: never beyond the credit granted, never while congested. */
  class CheckingSink extends RecordingSink {
    granted = 0;
    sentItems = 0;
    readonly violations: string[] = [];
    private count(): void {
      if (++this.sentItems > this.granted) this.violations.push(`item ${this.sentItems} sent with ${this.granted} granted`);
      if (this.congestedNow) this.violations.push('sent while congested');
    }
    override sendItem(id: number, value: unknown, final: boolean): void {
      this.count();
      super.sendItem(id, value, final);
    }
    override sendEncoded(frame: Uint8Array): void {
      this.count();
      super.sendEncoded(frame);
    }
  }

  async function run(seed: number, overflow: 'error' | 'drop-newest' | 'drop-oldest' | 'latest'): Promise<string[]> {
    const rand = rng(seed);
    const sink = new CheckingSink();
    const budget = new BufferBudget(1 << 30);
    let ends = 0;
    sink.granted = Math.floor(rand() * 4);
    const s = new OutboundStream(sink, 1, { credit: sink.granted, overflow, maxBytes: 40 + (seed % 5) * 20, budget, onEnd: () => ends++ });
    const useHandles = seed % 2 === 0;
    let emit!: (v: unknown) => void;
    let fail!: (e: unknown) => void;
    let done!: () => void;
    let open = 0;
    let completed = false;
    s.start(
      new Observable<unknown>((sub) => {
        emit = (v) => sub.next(v);
        fail = (e) => sub.error(e);
        done = () => {
          completed = true;
          if (open === 0) sub.complete();
        };
      }),
    );
    let running = 0;
    let n = 0;
    const killAt = seed % 3 === 0 ? -1 : Math.floor(rand() * 50);
    for (let i = 0; i < 20 + Math.floor(rand() * 40); i++) {
      const r = rand();
      if (r < 0.35) emit(n++);
      else if (r < 0.5) {
        const items = Array.from({ length: Math.floor(rand() * 4) }, () => n++);
        const delays = items.map(() => rand() < 0.5);
        const gen = async function* (): AsyncGenerator<number> {
          running++;
          try {
            for (let j = 0; j < items.length; j++) {
              if (delays[j]) await new Promise((r2) => setImmediate(r2));
              yield items[j]!;
            }
          } finally {
            running--;
          }
        };
        if (useHandles) {
          open++;
          emit(
            new IterationHandle(gen(), (outcome) => {
              open--;
              if (outcome) fail(outcome.error);
              else if (completed && open === 0) done();
            }),
          );
        } else emit(gen());
      } else if (r < 0.7) {
        const k = 1 + Math.floor(rand() * 3);
        sink.granted += k;
        s.addCredit(k);
      } else if (r < 0.8) sink.congestedNow = true;
      else if (r < 0.9) sink.drain();
      else await new Promise((r2) => setImmediate(r2));
      if (rand() < 0.3) await new Promise<void>((r2) => queueMicrotask(r2));
      if (i === killAt) {
        if (rand() < 0.5) s.stop();
        else s.fail(new Error('killed'));
      }
    }
    done();
    for (let i = 0; i < 200 && !s.isFinished; i++) {
      sink.granted += 5;
      s.addCredit(5);
      sink.drain();
      await new Promise((r2) => setImmediate(r2));
    }
    await settle();
    const problems = [...sink.violations];
    if (!s.isFinished) problems.push('not finished');
    if (budget.used !== 0) problems.push(`budget ${budget.used}`);
    if (ends !== 1) problems.push(`onEnd ran ${ends} times`);
    if (running !== 0) problems.push(`${running} generator(s) never closed`);
    const t = sink.frames.findIndex((f) => f.type === FrameType.COMPLETE || f.type === FrameType.ERROR);
    if (t >= 0 && t !== sink.frames.length - 1) problems.push(`${sink.frames.length - 1 - t} frame(s) after the terminal frame`);
    const values = sink.frames.flatMap((f) => (f.type === FrameType.NEXT || (f.type === FrameType.COMPLETE && f.hasValue) ? [f.value as number] : []));
    for (let i = 1; i < values.length; i++) if (!(values[i]! > values[i - 1]!)) problems.push(`out of order: ${JSON.stringify(values)}`);
    return problems;
  }

  it.each(['error', 'drop-newest', 'drop-oldest', 'latest'] as const)('overflow %s: 600 random runs', async (overflow) => {
    const failures: string[] = [];
    for (let seed = 1; seed <= 600; seed++) {
      const problems = await run(seed, overflow);
      if (problems.length) failures.push(`seed ${seed}: ${problems.join('; ')}`);
    }
    expect(failures.slice(0, 5)).toEqual([]);
  });
});
