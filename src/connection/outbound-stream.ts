import { isObservable, Observable, type Subscription } from 'rxjs';
import type { WsMsgpackError } from '../protocol/errors.js';
import { nextToCompleteInPlace } from '../protocol/codec.js';
import { OutboundCredit } from './credit.js';
import { disposeStream, isAsyncIterable, IterationHandle } from './iteration.js';
import { OutboundPulls } from './outbound-pulls.js';
import { NONE } from './pull-run.js';
import { PushBuffer } from './push-buffer.js';
import { SingleValue, type OutboundSource, type OutboundStreamOptions, type StreamSink } from './outbound-types.js';

/**
 * - `idle`: waiting for the source (the handler has not answered yet);
 * - `open`: the source is producing;
 * - `draining`: the source has ended; what is buffered goes out, then the terminal frame;
 * - `ended`: the terminal frame was sent, or the stream was stopped.
 */
type Phase = 'idle' | 'open' | 'draining' | 'ended';

/**
 * Sends one stream of items under credit flow control.
 *
 * - Pull sources (async/sync iterables, also when an Observable emits one) are pulled one item
 *   ahead of the credit: the item waits until credit arrives, and the end of the source is known
 *   (and COMPLETE sent) as soon as it happens. True backpressure. {@link OutboundPulls} runs them.
 * - Push sources (Observables) are subscribed once. Items that cannot go out yet are encoded at
 *   once and buffered as bytes, bounded per stream and per connection; past the bound the
 *   overflow strategy decides.
 * - A value emitted and followed by completion in the same tick goes out as one COMPLETE frame
 *   carrying the value (a unary answer is one frame).
 */
export class OutboundStream {
  private phase: Phase = 'idle';
  private readonly credit: OutboundCredit;
  private readonly frames: PushBuffer;
  /** The last pushed value, held until the end of the microtask (or sent with COMPLETE). */
  private held: unknown = NONE;
  /** How the source ended (`draining`): NONE for completion, else the error to send. */
  private endError: unknown = NONE;
  private subscription: Subscription | undefined;
  /** The source is one value (a unary answer): no overflow strategy may drop it. */
  private single = false;
  /** Values the Observable emitted (its only one is an answer too: `of(x)`, an interceptor's `map`). */
  private pushed = 0;
  /** The iterables being pulled, or waiting to be. */
  private readonly pulls = new OutboundPulls({
    canSend: () => this.canSend(),
    sendPulled: (v) => {
      this.credit.take();
      return this.send(v, false);
    },
    bufferedItems: () => this.frames.length,
    bufferPending: (v) => this.buffer(v, true),
    sendHead: () => {
      this.credit.take();
      return this.sendEncoded(this.frames.shift()!);
    },
    waitForCapacity: () => this.waitForCapacity(),
    pump: () => this.pump(),
    endSource: (error) => this.endSource(error),
    mapPullError: (error) => (this.options.mapPullError ? this.options.mapPullError(error) : error),
    dispose: (source) => this.dispose(source),
  });

  constructor(
    private readonly sink: StreamSink,
    readonly id: number,
    private readonly options: OutboundStreamOptions,
  ) {
    this.credit = new OutboundCredit(options.credit);
    this.frames = new PushBuffer(options.budget, options.maxBytes, options.overflow);
  }

  /** True once a terminal frame was sent or the stream was stopped. */
  get isFinished(): boolean {
    return this.phase === 'ended';
  }

  /** Items dropped by the `drop-newest`, `drop-oldest` or `latest` strategy. */
  get dropped(): number {
    return this.frames.dropped;
  }

  /** Bytes buffered now. */
  get bufferedBytes(): number {
    return this.frames.bytes;
  }

  /**
   * Calls `callback` once no iterator call is in flight (at once if none is). A stream stopped
   * while its generator runs cannot interrupt it: the generator's body goes on until its next
   * `yield`, and only then does `return()` run its `finally`.
   */
  whenIdle(callback: () => void): void {
    this.pulls.whenIdle(callback);
  }

  /** Starts consuming `source`. A source that arrives after the stream ended is disposed of. */
  start(source: OutboundSource): void {
    if (this.phase !== 'idle') {
      if (this.phase === 'ended') this.dispose(source instanceof SingleValue ? source.value : source);
      return;
    }
    if (source instanceof SingleValue) {
      const { value } = source;
      if (value === undefined) {
        this.sink.sendComplete(this.id);
        this.finish();
      } else if (isAsyncIterable(value)) {
        this.phase = 'open';
        this.pulls.pullSource(value[Symbol.asyncIterator]());
      } else {
        this.held = value; // pump() sends it with COMPLETE when credit allows
        this.single = true;
        this.phase = 'draining';
        this.pump();
      }
    } else if (isObservable(source)) {
      this.phase = 'open';
      // The subscriber is kept before the source runs: a synchronous source (range, from(array))
      // runs entirely inside subscribe(), and the stream may end mid-burst (overflow, an item that
      // cannot be sent); unsubscribing this subscriber is what stops such a source there.
      new Observable<unknown>((subscriber) => {
        this.subscription = subscriber;
        return source.subscribe(subscriber);
      }).subscribe({
        next: (v) => this.onPushValue(v),
        error: (e: unknown) => this.endSource(e),
        complete: () => this.endSource(NONE),
      });
    } else {
      this.phase = 'open';
      const iterator = isAsyncIterable(source) ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
      this.pulls.pullSource(iterator);
    }
  }

  /** More credit from the receiver. */
  addCredit(n: number): void {
    if (this.phase === 'ended') return;
    this.credit.add(n);
    this.pump();
  }

  /** Stops without sending anything (cancelled, or the peer already ended the call). */
  stop(): void {
    if (this.phase !== 'ended') this.finish();
  }

  /**
   * Ends the stream with an error on this side (deadline, overflow, an item that cannot be sent)
   * and stops the source: ERROR is sent, or `onFail` is told.
   */
  fail(error: unknown): void {
    if (this.phase === 'ended') return;
    const { onFail, beforeFail } = this.options;
    beforeFail?.(error);
    if (!onFail) this.sink.sendError(this.id, error);
    this.finish();
    onFail?.(error);
  }

  // ---- push (Observable)

  private onPushValue(v: unknown): void {
    const iterable = v instanceof IterationHandle || isAsyncIterable(v);
    if (this.phase === 'open' && iterable) this.releaseHeld();
    if (this.phase !== 'open') {
      if (iterable) this.dispose(v instanceof IterationHandle ? v.source : v); // never pulled: close it
      return;
    }
    if (iterable) {
      const run = v instanceof IterationHandle ? this.pulls.ofHandle(v) : this.pulls.nested(v);
      if (this.somethingWaits()) this.pulls.queue(run, this.frames.addedCount);
      else this.pulls.start(run);
      return;
    }
    this.pushed++;
    if (this.held === NONE) queueMicrotask(this.flushHeld);
    else this.offer(this.held);
    if (this.phase === 'open') this.held = v; // unless that failed the stream
  }

  private readonly flushHeld = (): void => {
    if (this.phase === 'open') this.releaseHeld();
  };

  private releaseHeld(): void {
    if (this.held === NONE) return;
    const v = this.held;
    this.held = NONE;
    this.offer(v);
  }

  /** One pushed item: sent now when nothing waits before it and credit allows, else buffered. */
  private offer(v: unknown): void {
    if (this.phase === 'ended') return;
    if (!this.somethingWaits() && this.canSend()) {
      this.credit.take();
      this.send(v, false);
      return;
    }
    this.enqueue(v);
  }

  private enqueue(v: unknown): void {
    if (this.buffer(v, false)) this.pump();
  }

  /**
   * Encodes `v` into the buffer (no strategy drops it when `keep`). False when the stream failed:
   * the value cannot be encoded or is too big, or it overflowed under the `error` strategy.
   */
  private buffer(v: unknown, keep: boolean): boolean {
    let overflow: WsMsgpackError | undefined;
    try {
      overflow = this.frames.add(this.sink.encodeItem(this.id, v), keep);
    } catch (e) {
      this.fail(e); // cannot be encoded, or too big
      return false;
    }
    if (overflow) this.fail(overflow);
    return !overflow;
  }

  /**
   * The source ended: completion (NONE) or an error, which also stops what the source still had
   * to give (iterables waiting to be pulled). What is buffered goes out first.
   */
  private endSource(error: unknown): void {
    if (this.phase !== 'open') return;
    const subscription = this.subscription;
    this.subscription = undefined;
    subscription?.unsubscribe();
    if (error !== NONE) this.pulls.stop();
    // The last value goes out inside COMPLETE only if nothing waits before it.
    if (error !== NONE || this.somethingWaits()) this.releaseHeld();
    if (this.phase !== 'open') return; // that last value failed the stream
    this.endError = error;
    this.phase = 'draining';
    this.pump();
  }

  /** Whether anything waits to go out before a new item: a pull under way or waiting, or buffered items. */
  private somethingWaits(): boolean {
    return this.pulls.busy || this.frames.length > 0;
  }

  // ---- sending

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

  /** Sends what credit and the socket allow, then the terminal frame once everything went out. */
  private readonly pump = (): void => {
    if (this.phase === 'ended' || this.phase === 'idle') return;
    const run = this.pulls.current;
    if (run) return this.pulls.resume(run);
    if (this.sendBuffered() && this.phase === 'draining') this.sendEnd();
  };

  /**
   * Sends the buffered frames in order, starting each waiting pull when its place comes. True when
   * the buffer is empty and nothing else is under way (the end may follow); false when it stopped:
   * out of capacity, a pull started, the stream finished, or failed.
   */
  private sendBuffered(): boolean {
    for (;;) {
      if (this.pulls.startDue(this.frames.removedCount)) return false;
      if (this.frames.length === 0) return true;
      if (!this.canSend()) {
        this.waitForCapacity();
        return false;
      }
      const bytes = this.frames.shift()!;
      this.credit.take();
      // The source is done and nothing follows this item: it goes out as COMPLETE with the value.
      const last = this.nothingFollows() && nextToCompleteInPlace(bytes);
      if (!this.sendEncoded(bytes)) return false;
      if (last) {
        this.finish();
        return false;
      }
    }
  }

  /** Whether the frame just taken from the buffer is the stream's last (the source is done and nothing else waits). */
  private nothingFollows(): boolean {
    return this.frames.length === 0 && !this.pulls.hasWaiting && this.phase === 'draining' && this.held === NONE && this.endError === NONE;
  }

  /** The source is done and everything buffered went out: its last value (with COMPLETE), COMPLETE, or ERROR. */
  private sendEnd(): void {
    if (this.held !== NONE) {
      if (!this.canSend()) {
        this.bufferHeld();
        return;
      }
      const v = this.held;
      this.held = NONE;
      this.credit.take();
      if (this.send(v, true)) this.finish();
      return;
    }
    if (this.endError === NONE) this.sink.sendComplete(this.id);
    else this.sink.sendError(this.id, this.endError);
    this.finish();
  }

  /** Writes encoded bytes; false (the stream failed) when the sink refused them. */
  private sendEncoded(bytes: Uint8Array): boolean {
    try {
      this.sink.sendEncoded(bytes);
      return true;
    } catch (e) {
      this.fail(e);
      return false;
    }
  }

  /**
   * The last value cannot go out now (no credit, or a congested socket): it waits encoded in the
   * buffer, counted against its bounds like any waiting item (a unary answer could otherwise wait
   * uncounted, maxConcurrentCalls times over). No strategy drops a stream's only value (a unary
   * answer, also as `of(x)`): one that does not fit fails the call.
   */
  private bufferHeld(): void {
    const v = this.held;
    this.held = NONE;
    if (this.buffer(v, this.single || this.pushed === 1)) this.pump();
  }

  private waitForCapacity(): void {
    if (this.credit.value > 0) this.sink.whenDrained(this.pump); // else addCredit() resumes
  }

  private finish(): void {
    this.phase = 'ended';
    this.frames.clear();
    this.held = NONE;
    const subscription = this.subscription;
    this.subscription = undefined;
    subscription?.unsubscribe();
    this.pulls.stop();
    this.options.onEnd();
  }

  /** Closes a source that will not be consumed; what its clean-up throws is reported. */
  private dispose(source: unknown): void {
    disposeStream(source).catch((e: unknown) => this.sink.report(e));
  }
}
