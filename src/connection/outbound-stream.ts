import { isObservable, type Observable, type Subscription } from 'rxjs';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { OutboundCredit } from './credit.js';
import { Queue } from './queue.js';

/** What an {@link OutboundStream} needs from its connection. */
export interface StreamSink {
  /** Sends NEXT (or COMPLETE with a final value). Throws when the value cannot be encoded or is too big. */
  sendItem(id: number, value: unknown, final: boolean): void;
  /** Sends COMPLETE without a value. */
  sendComplete(id: number): void;
  /** Sends ERROR for this stream. */
  sendError(id: number, error: unknown): void;
  /** True while the socket holds more unsent bytes than the connection allows. */
  congested(): boolean;
  /** Calls `resume` once the socket is no longer congested. */
  whenDrained(resume: () => void): void;
}

/** One value as a whole response (no Observable needed): sent as COMPLETE with the value. */
export class SingleValue {
  constructor(readonly value: unknown) {}
}

/** A source of outbound items: push (Observable), pull (async or sync iterable), or one value. */
export type OutboundSource = Observable<unknown> | AsyncIterable<unknown> | Iterable<unknown> | SingleValue;

const NONE: unique symbol = Symbol('none');

/** Items pulled from an iterator before the pump yields to the event loop. */
const PULL_BATCH = 128;

const yieldToEventLoop: () => Promise<void> =
  typeof setImmediate === 'function'
    ? () => new Promise((resolve) => setImmediate(resolve))
    : () => new Promise((resolve) => setTimeout(resolve, 0));

/** True for async iterables that are not Observables. */
export function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return v != null && typeof (v as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * True for sync iterables that stream item by item. Arrays, strings, typed arrays, Maps and Sets
 * are data, not streams.
 */
export function isStreamIterable(v: unknown): v is Iterable<unknown> {
  return (
    v != null &&
    typeof v === 'object' &&
    typeof (v as Record<symbol, unknown>)[Symbol.iterator] === 'function' &&
    !Array.isArray(v) &&
    !ArrayBuffer.isView(v) &&
    !(v instanceof Map) &&
    !(v instanceof Set)
  );
}

/**
 * Sends one stream of items under credit flow control.
 *
 * - Pull sources (async/sync iterables) are asked for the next item only when credit allows and
 *   the socket is not congested: true backpressure.
 * - Push sources (Observables) are subscribed once; items that cannot be sent yet wait in a
 *   queue of at most `highWaterMark` items. Past that the stream fails with RESOURCE_EXHAUSTED
 *   and the source is unsubscribed (documented overflow policy).
 * - A value emitted and followed by completion in the same tick goes out as one COMPLETE frame
 *   carrying the value (a unary answer is one frame).
 * - If an Observable emits an async iterable, its items are streamed in its place (pull).
 */
export class OutboundStream {
  private readonly credit: OutboundCredit;
  private readonly queue = new Queue<unknown>();
  private held: unknown = NONE;
  private heldScheduled = false;
  private subscription: Subscription | undefined;
  private iterator: AsyncIterator<unknown> | Iterator<unknown> | undefined;
  private pulling = false;
  private pullOnly = false;
  private sourceDone = false;
  private sourceError: unknown = NONE;
  private waitingDrain = false;
  private finished = false;

  constructor(
    private readonly sink: StreamSink,
    readonly id: number,
    credit: number,
    private readonly highWaterMark: number,
    private readonly onFinish: () => void,
    /** Maps errors thrown by a pulled iterator (the server applies Nest's default filter mapping). */
    private readonly mapPullError: (error: unknown) => unknown = (e) => e,
  ) {
    this.credit = new OutboundCredit(credit);
  }

  /** True once a terminal frame was sent or the stream was stopped. */
  get isFinished(): boolean {
    return this.finished;
  }

  /** Starts consuming `source`. */
  start(source: OutboundSource): void {
    if (source instanceof SingleValue) {
      this.startSingle(source.value);
    } else if (isObservable(source)) {
      this.subscription = source.subscribe({
        next: (v) => this.onPushValue(v),
        error: (e: unknown) => this.onSourceError(e),
        complete: () => this.onSourceComplete(),
      });
      if (this.finished) this.subscription.unsubscribe();
    } else if (isAsyncIterable(source)) {
      this.pullOnly = true;
      this.startPull(source[Symbol.asyncIterator]());
    } else {
      this.pullOnly = true;
      this.startPull(source[Symbol.iterator]());
    }
  }

  /** More credit from the receiver. */
  addCredit(n: number): void {
    if (this.finished) return;
    this.credit.add(n);
    this.pump();
  }

  /** Stops without sending anything (cancelled, or the peer already ended the call). */
  stop(): void {
    if (this.finished) return;
    this.finish();
  }

  /** Ends the stream with an error frame (deadline, overflow) and stops the source. */
  fail(error: unknown): void {
    if (this.finished) return;
    this.sink.sendError(this.id, error);
    this.finish();
  }

  private finish(): void {
    this.finished = true;
    this.queue.clear();
    this.held = NONE;
    const sub = this.subscription;
    this.subscription = undefined;
    sub?.unsubscribe();
    const it = this.iterator;
    this.iterator = undefined;
    if (it?.return) {
      // Runs the generator's `finally`; its own errors have nowhere to go.
      try {
        const r = it.return();
        if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, () => {});
      } catch {
        /* ignore */
      }
    }
    this.onFinish();
  }

  /**
   * One value as the whole answer. `undefined` (a void handler) completes without a value, as
   * Nest's TCP transport does; an async iterable is streamed; anything else goes out as one
   * COMPLETE frame carrying the value, right away when credit allows.
   */
  private startSingle(value: unknown): void {
    this.sourceDone = true;
    if (value === undefined) {
      this.sink.sendComplete(this.id);
      this.finish();
    } else if (isAsyncIterable(value)) {
      this.pullOnly = true;
      this.startPull(value[Symbol.asyncIterator]());
    } else if (this.canSend()) {
      this.credit.take();
      if (this.send(value, true)) this.finish();
    } else {
      this.held = value; // pump() sends it with COMPLETE once credit arrives
      this.waitIfCongested();
    }
  }

  // ---- push (Observable) ----

  private onPushValue(v: unknown): void {
    if (this.finished) return;
    if (isAsyncIterable(v)) {
      // An async generator returned through Nest's interceptor chain: stream it by pulling.
      this.releaseHeld();
      this.queue.push(new PullMarker(v));
      this.pump();
      return;
    }
    if (this.held !== NONE) this.enqueue(this.held);
    this.held = v;
    if (!this.heldScheduled) {
      this.heldScheduled = true;
      queueMicrotask(this.flushHeld);
    }
  }

  private readonly flushHeld = (): void => {
    this.heldScheduled = false;
    this.releaseHeld();
  };

  private releaseHeld(): void {
    if (this.held === NONE) return;
    const v = this.held;
    this.held = NONE;
    this.enqueue(v);
  }

  private enqueue(v: unknown): void {
    if (this.finished) return;
    this.queue.push(v);
    if (this.queue.length > this.highWaterMark) {
      this.fail(
        new WsMsgpackError(
          WsMsgpackErrorCode.RESOURCE_EXHAUSTED,
          `stream buffer overflow: more than ${this.highWaterMark} items waiting for credit (the consumer is slower than the Observable; use an async iterable for backpressure or raise highWaterMark)`,
        ),
      );
      return;
    }
    this.pump();
  }

  private onSourceComplete(): void {
    if (this.finished) return;
    this.sourceDone = true;
    this.subscription = undefined;
    this.pump();
  }

  private onSourceError(e: unknown): void {
    if (this.finished) return;
    this.releaseHeld();
    this.sourceError = e;
    this.subscription = undefined;
    this.pump();
  }

  // ---- pull (iterables) ----

  private startPull(it: AsyncIterator<unknown> | Iterator<unknown>): void {
    this.iterator = it;
    this.pump();
  }

  private async pullLoop(): Promise<void> {
    this.pulling = true;
    let sinceYield = 0;
    try {
      while (!this.finished && this.iterator && this.canSend()) {
        if (++sinceYield > PULL_BATCH) {
          // A fast generator resolves on microtasks only: let I/O and other streams run.
          sinceYield = 0;
          await yieldToEventLoop();
          if (this.finished || !this.iterator || !this.canSend()) break;
        }
        const it = this.iterator;
        let r: IteratorResult<unknown>;
        try {
          r = await it.next();
        } catch (e) {
          if (this.finished) return;
          this.iterator = undefined;
          this.sourceError = this.mapPullError(e);
          break;
        }
        if (this.finished || this.iterator !== it) return;
        if (r.done) {
          this.iterator = undefined;
          break;
        }
        this.credit.take();
        if (!this.send(r.value, false)) return;
      }
    } finally {
      this.pulling = false;
    }
    if (!this.finished && !this.iterator) {
      if (this.pullOnly) this.sourceDone = true;
      this.pump();
    } else if (!this.finished && this.iterator && !this.canSend()) {
      this.waitIfCongested();
    }
  }

  // ---- sending ----

  private canSend(): boolean {
    return this.credit.value > 0 && !this.sink.congested();
  }

  private send(value: unknown, final: boolean): boolean {
    try {
      this.sink.sendItem(this.id, value, final);
      return true;
    } catch (e) {
      this.fail(e);
      return false;
    }
  }

  /** Sends what credit and the socket allow, then the terminal frame when everything went out. */
  private pump(): void {
    if (this.finished || this.pulling) return;
    if (this.iterator) {
      if (this.canSend()) void this.pullLoop();
      else this.waitIfCongested();
      return;
    }
    while (this.queue.length > 0 && this.canSend()) {
      const v = this.queue.shift();
      if (v instanceof PullMarker) {
        this.startPull(v.source[Symbol.asyncIterator]());
        return;
      }
      const last = this.queue.length === 0 && this.held === NONE && this.sourceDone && this.sourceError === NONE;
      this.credit.take();
      if (!this.send(v, last)) return;
      if (last) {
        this.finish();
        return;
      }
    }
    if (this.queue.length > 0) {
      this.waitIfCongested();
      return;
    }
    if (this.held !== NONE) {
      if (!this.sourceDone) return; // flushHeld will come
      // Completed in the same tick as the last value: one COMPLETE frame with the value.
      if (!this.canSend()) {
        this.releaseHeld();
        return;
      }
      const v = this.held;
      this.held = NONE;
      this.credit.take();
      if (this.send(v, true)) this.finish();
      return;
    }
    if (this.sourceError !== NONE) {
      this.sink.sendError(this.id, this.sourceError);
      this.finish();
    } else if (this.sourceDone) {
      this.sink.sendComplete(this.id);
      this.finish();
    }
  }

  private waitIfCongested(): void {
    if (this.waitingDrain || this.credit.value <= 0) return; // credit wait resumes via addCredit
    this.waitingDrain = true;
    this.sink.whenDrained(() => {
      this.waitingDrain = false;
      this.pump();
    });
  }
}

class PullMarker {
  constructor(readonly source: AsyncIterable<unknown>) {}
}
