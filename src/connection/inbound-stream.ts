import { Observable, type Subscriber } from 'rxjs';
import { InboundCredit } from './credit.js';
import { Queue } from './queue.js';

/**
 * - `receiving`: items may still arrive;
 * - `ended`: the peer ended the stream (COMPLETE or ERROR); buffered items still go out first;
 * - `closed`: nothing more is delivered: everything was, the subscriber left, or the call is over.
 */
type Phase = 'receiving' | 'ended' | 'closed';

/**
 * A stream of items arriving from the peer, exposed as a single-subscriber Observable.
 * Items that arrive before anyone subscribed wait in a buffer; credit is granted only as items are
 * delivered, so that buffer never holds more than one credit window.
 *
 * A stream the call outlives never looks complete: when the call ends first (cancel, deadline,
 * connection loss, protocol error, or the handler answering early), a subscriber gets an error
 * with the call's reason, so truncated input is never mistaken for the whole of it.
 */
export class InboundStream {
  private readonly credit: InboundCredit;
  private readonly buffer = new Queue<unknown>();
  private phase: Phase = 'receiving';
  /** How the stream ended (`ended`), or why it was cut off (`closed` by the call's end). */
  private outcome: { error: unknown } | 'complete' | undefined;
  private subscriber: Subscriber<unknown> | undefined;
  private taken = false;

  /** The items, for exactly one subscriber. */
  readonly observable: Observable<unknown>;

  constructor(
    window: number,
    private readonly grant: (credit: number) => void,
  ) {
    this.credit = new InboundCredit(window);
    this.observable = new Observable<unknown>((subscriber) => {
      if (this.taken) {
        subscriber.error(new Error('a request stream can be subscribed to only once'));
        return;
      }
      this.taken = true;
      if (this.phase === 'closed') {
        this.settle(subscriber);
        return;
      }
      this.subscriber = subscriber;
      while (this.buffer.length > 0 && !subscriber.closed) this.deliver(this.buffer.shift());
      if (this.phase === 'ended' && !subscriber.closed) this.finish();
      return () => {
        if (this.subscriber !== subscriber) return;
        // The handler stopped reading: grant no more credit, drop what still arrives.
        this.subscriber = undefined;
        this.phase = 'closed';
        this.buffer.clear();
      };
    });
  }

  /** The credit window granted up front (0 = unlimited). */
  get window(): number {
    return this.credit.window;
  }

  /** One item from the peer. Returns false when the peer exceeded its credit. */
  push(value: unknown): boolean {
    if (this.phase !== 'receiving') return true;
    if (!this.credit.receive()) return false;
    if (this.subscriber) this.deliver(value);
    else this.buffer.push(value);
    return true;
  }

  /** The peer ended the stream. */
  complete(): void {
    this.end('complete');
  }

  /** The peer failed the stream. */
  error(error: unknown): void {
    this.end({ error });
  }

  /**
   * The call is over. If the peer had not ended the stream, the subscriber, now or later, gets
   * `reason` as an error. (A stream the peer did end is whole: a subscriber still gets all of it.)
   */
  close(reason: unknown): void {
    if (this.phase !== 'receiving') return;
    this.phase = 'closed';
    this.outcome = { error: reason };
    this.buffer.clear();
    const s = this.subscriber;
    this.subscriber = undefined;
    if (s) this.settle(s);
  }

  private end(outcome: { error: unknown } | 'complete'): void {
    if (this.phase !== 'receiving') return;
    this.phase = 'ended';
    this.outcome = outcome;
    if (this.subscriber && this.buffer.length === 0) this.finish();
  }

  private deliver(value: unknown): void {
    this.subscriber?.next(value);
    if (this.phase === 'closed') return;
    const n = this.credit.consumed();
    if (n > 0) this.grant(n);
  }

  /** Everything was delivered: the subscriber gets the peer's end. */
  private finish(): void {
    const s = this.subscriber;
    this.subscriber = undefined;
    this.phase = 'closed';
    if (s) this.settle(s);
  }

  private settle(s: Subscriber<unknown>): void {
    const outcome = this.outcome;
    if (outcome === 'complete') s.complete();
    else if (outcome) s.error(outcome.error);
    else s.complete();
  }
}
