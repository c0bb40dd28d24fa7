import { WsMsgpackError, resourceExhausted } from '../protocol/errors.js';
import type { OverflowStrategy } from '../protocol/frames.js';
import { FRAME_OVERHEAD_BYTES, FrameQueue, type BufferBudget } from './frame-queue.js';

/**
 * The encoded items a push stream could not send yet, bounded in bytes (per stream, and per
 * connection through the shared {@link BufferBudget}), with the stream's overflow strategy
 * applied when an item does not fit.
 */
export class PushBuffer {
  private readonly frames: FrameQueue;
  private added = 0;
  private removed = 0;
  private droppedItems = 0;

  constructor(
    private readonly budget: BufferBudget,
    private readonly maxBytes: number,
    private readonly overflow: OverflowStrategy,
  ) {
    this.frames = new FrameQueue(budget);
  }

  /** Items buffered. */
  get length(): number {
    return this.frames.length;
  }

  /** Bytes buffered (encoded size plus bookkeeping). */
  get bytes(): number {
    return this.frames.bytes;
  }

  /** Items ever added (buffered), for ordering other work after them. */
  get addedCount(): number {
    return this.added;
  }

  /** Items ever taken out, sent or dropped. */
  get removedCount(): number {
    return this.removed;
  }

  /** Items the strategy dropped. */
  get dropped(): number {
    return this.droppedItems;
  }

  /**
   * Buffers one encoded frame (copied), or drops frames as the strategy says. Returns the error the
   * stream must fail with under the `error` strategy when the frame does not fit, else undefined.
   * `keep`: an item no strategy may drop (a unary answer, an item pulled from an iterator): one
   * that does not fit fails the stream whatever the strategy.
   */
  add(frame: Uint8Array, keep = false): WsMsgpackError | undefined {
    const cost = frame.byteLength + FRAME_OVERHEAD_BYTES;
    if (keep) {
      if (!this.fits(cost)) return this.overflowError(cost);
    } else if (this.overflow === 'latest') {
      this.drop(this.frames.length); // only the newest item waits, whatever its size
    } else if (!this.fits(cost)) {
      if (this.overflow === 'error') return this.overflowError(cost);
      if (this.overflow === 'drop-oldest') {
        while (this.frames.length > 0 && !this.fits(cost)) this.drop(1);
      }
      if (!this.fits(cost)) {
        this.droppedItems++; // drop-newest, or an item that does not fit even alone
        return undefined;
      }
    }
    this.frames.push(frame);
    this.added++;
    return undefined;
  }

  /** Takes the oldest frame out (a view, valid while nothing else is added). */
  shift(): Uint8Array | undefined {
    const frame = this.frames.shift();
    if (frame) this.removed++;
    return frame;
  }

  /** Drops everything (the stream ended). */
  clear(): void {
    this.frames.clear();
  }

  private fits(cost: number): boolean {
    return this.frames.bytes + cost <= this.maxBytes && this.budget.fits(cost);
  }

  private drop(n: number): void {
    for (let i = 0; i < n; i++) this.frames.shift();
    this.removed += n;
    this.droppedItems += n;
  }

  private overflowError(cost: number): WsMsgpackError {
    const what =
      this.frames.bytes + cost > this.maxBytes
        ? `this stream's buffer is full (maxStreamBufferBytes ${this.maxBytes})`
        : `the connection's stream buffers are full (maxConnectionBufferBytes ${this.budget.limit})`;
    return resourceExhausted(
      `stream buffer overflow: ${what}; the consumer is slower than the Observable (use an async iterable for backpressure, another overflow strategy, or a larger buffer)`,
      { bufferedBytes: this.frames.bytes, bufferedItems: this.frames.length },
    );
  }
}
