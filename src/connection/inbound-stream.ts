import { Observable, type Subscriber } from 'rxjs';
import { InboundCredit } from './credit.js';
import { Queue } from './queue.js';

/**
 * A stream of items arriving from the peer, exposed as a single-subscriber Observable.
 * Items that arrive before anyone subscribed wait in a buffer; credit is granted only as items are
 * delivered, so that buffer never holds more than one credit window.
 */
export class InboundStream {
  private readonly credit: InboundCredit;
  private readonly buffer = new Queue<unknown>();
  private subscriber: Subscriber<unknown> | undefined;
  private subscribed = false;
  private ended: { error: unknown } | 'complete' | undefined;
  private closed = false;

  /** The items, for exactly one subscriber. */
  readonly observable: Observable<unknown>;

  constructor(
    window: number,
    private readonly grant: (credit: number) => void,
  ) {
    this.credit = new InboundCredit(window);
    this.observable = new Observable<unknown>((subscriber) => {
      if (this.subscribed) {
        subscriber.error(new Error('a request stream can be subscribed to only once'));
        return;
      }
      this.subscribed = true;
      this.subscriber = subscriber;
      while (this.buffer.length > 0 && !subscriber.closed) this.deliver(this.buffer.shift());
      if (this.ended !== undefined && !subscriber.closed) this.settle();
      return () => {
        // The handler stopped reading: grant no more credit, drop what still arrives.
        this.subscriber = undefined;
        this.closed = true;
      };
    });
  }

  /** The credit window granted up front (0 = unlimited). */
  get window(): number {
    return this.credit.window;
  }

  /** One item from the peer. Returns false when the peer exceeded its credit. */
  push(value: unknown): boolean {
    if (this.closed || this.ended !== undefined) return true;
    if (!this.credit.receive()) return false;
    if (this.subscriber) this.deliver(value);
    else this.buffer.push(value);
    return true;
  }

  /** The peer ended the stream. */
  complete(): void {
    if (this.closed || this.ended !== undefined) return;
    this.ended = 'complete';
    if (this.subscriber && this.buffer.length === 0) this.settle();
  }

  /** The peer failed the stream. */
  error(error: unknown): void {
    if (this.closed || this.ended !== undefined) return;
    this.ended = { error };
    if (this.subscriber && this.buffer.length === 0) this.settle();
  }

  /** Stop delivering (the call is over); the subscriber, if any, completes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.clear();
    const s = this.subscriber;
    this.subscriber = undefined;
    s?.complete();
  }

  private deliver(value: unknown): void {
    this.subscriber?.next(value);
    if (this.closed) return;
    const n = this.credit.consumed();
    if (n > 0) this.grant(n);
  }

  private settle(): void {
    const s = this.subscriber;
    if (!s) return;
    this.closed = true;
    this.subscriber = undefined;
    if (this.ended === 'complete') s.complete();
    else if (this.ended) s.error(this.ended.error);
  }
}
