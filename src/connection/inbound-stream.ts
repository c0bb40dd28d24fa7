import { Observable, type Subscriber } from 'rxjs';
import { byteCap, InboundCredit } from './credit.js';
import type { BufferBudget } from './frame-queue.js';
import { Queue } from './queue.js';

/**
 * - `receiving`: items may still arrive;
 * - `ended`: the peer ended the stream (COMPLETE or ERROR); buffered items still go out first;
 * - `closed`: nothing more is delivered: everything was, the consumer left, or the call is over.
 */
type Phase = 'receiving' | 'ended' | 'closed';

/** How the items of an inbound stream are bounded while they wait for their consumer. */
export interface InboundStreamBounds {
  /** What the peer's frames hold on this connection (`maxInboundBytes`); waiting items are charged to it. */
  readonly budget: BufferBudget;
  /**
   * Bytes (estimated decoded size) this stream's waiting items, and those its credit may still
   * bring, should stay within: credit is held back past it.
   */
  readonly maxBytes: number;
}

/**
 * A request stream as a handler receives it (`@Payload() items: WsRequestStream<Item>`): an
 * Observable of the items the caller sends, which can also be pulled with `for await`. Pulled,
 * credit follows the loop and the caller waits for it (true backpressure); subscribed, items are
 * delivered as they arrive. Either way, only once.
 */
export type WsRequestStream<T = unknown> = Observable<T> & AsyncIterable<T>;

type PullableObservable = WsRequestStream;

/** Each request stream handed out, to its InboundStream. */
const STREAMS = new WeakMap<object, InboundStream>();

/** The InboundStream behind a request stream a handler was given, if `value` is one. */
export function inboundStreamOf(value: unknown): InboundStream | undefined {
  return typeof value === 'object' && value !== null ? STREAMS.get(value) : undefined;
}

/**
 * A stream of items arriving from the peer, for exactly one consumer, who either subscribes
 * (the Observable) or pulls (`for await`, `Symbol.asyncIterator`).
 *
 * - Subscribed: items are delivered as they arrive, and credit is granted as they are delivered.
 *   What the subscriber's operators do with them afterwards (a `concatMap` that waits) is out of
 *   the transport's sight.
 * - Pulled: an item is handed out only when the loop asks for the next one, and credit follows
 *   the loop: the peer is never more than one window ahead of it. True backpressure.
 *
 * Items that wait (before anyone subscribed, or for the next pull) are counted in bytes, by their
 * estimated decoded size, against the connection's inbound budget; and credit is held back while
 * the stream's waiting bytes, plus what its outstanding credit may bring (at the average item
 * size), would exceed `maxBytes`: a peer sending large items is given fewer at a time.
 *
 * A stream the call outlives never looks complete: when the call ends first (cancel, deadline,
 * connection loss, protocol error, or the handler answering early), the consumer gets an error
 * with the call's reason, so truncated input is never mistaken for the whole of it.
 */
export class InboundStream {
  private readonly credit: InboundCredit;
  private readonly values = new Queue<unknown>();
  private readonly costs = new Queue<number>();
  private heldBytes = 0;
  private phase: Phase = 'receiving';
  /** How the stream ended (`ended`), or why it was cut off (`closed` by the call's end). */
  private outcome: { error: unknown } | 'complete' | undefined;
  private subscriber: Subscriber<unknown> | undefined;
  /** A pull waiting for the next item. */
  private waiting: { resolve(r: IteratorResult<unknown>): void; reject(e: unknown): void } | undefined;
  /** Who consumes: nobody yet, an Observable subscriber, or an async iterator. */
  private consumer: 'none' | 'subscriber' | 'iterator' = 'none';
  /** Items received and their bytes, for the average item size (byte-aware credit). */
  private receivedItems = 0;
  private receivedBytes = 0;

  /** The items, for exactly one consumer (subscribe, or iterate with `for await`). */
  readonly observable: PullableObservable;

  /** Where waiting items are charged: the connection's inbound budget, until the handler has stopped. */
  private budget: BufferBudget | undefined;
  /** What the peer's ERROR frame takes, charged while it waits for the consumer. */
  private outcomeCost = 0;

  constructor(
    window: number,
    private readonly grant: (credit: number) => void,
    private readonly bounds?: InboundStreamBounds,
  ) {
    this.credit = new InboundCredit(window);
    this.budget = bounds?.budget;
    const observable = new Observable<unknown>((subscriber) => {
      if (!this.take('subscriber')) {
        subscriber.error(new Error('a request stream can be subscribed to (or iterated) only once'));
        return;
      }
      if (this.phase === 'closed') {
        this.settle(subscriber);
        return;
      }
      this.subscriber = subscriber;
      while (this.values.length > 0 && !subscriber.closed) this.deliver(this.shift());
      if (this.phase === 'ended' && !subscriber.closed) this.finish();
      return () => {
        if (this.subscriber !== subscriber) return;
        // The handler stopped reading: grant no more credit, drop what still arrives.
        this.subscriber = undefined;
        this.close(undefined);
      };
    }) as PullableObservable;
    observable[Symbol.asyncIterator] = () => this.iterator();
    this.observable = observable;
    STREAMS.set(observable, this);
  }

  /** Whether a consumer (a subscriber or an iterator) has taken the items. */
  get taken(): boolean {
    return this.consumer !== 'none';
  }

  /** The credit window granted up front (0 = unlimited). */
  get window(): number {
    return this.credit.window;
  }

  /** Bytes (estimated decoded size) of the items waiting for the consumer. */
  get bufferedBytes(): number {
    return this.heldBytes;
  }

  /**
   * One item from the peer, `cost` its estimated decoded size. Returns false when the peer
   * exceeded its credit (the item is not delivered).
   */
  push(value: unknown, cost = 0): boolean {
    if (this.phase !== 'receiving') return true;
    if (!this.credit.receive()) return false;
    this.receivedItems++;
    this.receivedBytes += cost;
    if (this.subscriber) {
      this.deliver(value);
    } else if (this.waiting) {
      const w = this.waiting;
      this.waiting = undefined;
      this.consumed();
      w.resolve({ value, done: false });
    } else {
      this.enqueue(value, cost);
    }
    return true;
  }

  /** The peer ended the stream. */
  complete(): void {
    this.end('complete');
  }

  /** The peer failed the stream; `cost`: what its ERROR frame takes, charged while the error waits for the consumer. */
  error(error: unknown, cost = 0): void {
    if (this.phase !== 'receiving') return;
    if (!(this.subscriber && this.values.length === 0) && cost > 0 && this.budget) {
      this.outcomeCost = cost;
      this.budget.charge(cost);
    }
    this.end({ error });
  }

  /**
   * The handler that took this stream has stopped (its call ended and nothing of it runs): what
   * still waits here is no longer the connection's to count.
   */
  detach(): void {
    this.budget?.charge(-(this.heldBytes + this.outcomeCost));
    this.budget = undefined;
  }

  /**
   * The call is over. If the peer had not ended the stream, the consumer, now or later, gets
   * `reason` as an error. (A stream the peer did end is whole: a consumer still gets all of it.)
   */
  close(reason: unknown): void {
    if (this.phase === 'ended' && reason !== undefined) return; // whole: a late consumer still gets it (charged until detach())
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (reason !== undefined) this.outcome = { error: reason };
    this.clear();
    const s = this.subscriber;
    this.subscriber = undefined;
    if (s) this.settle(s);
    this.settleWaiting();
  }

  // ---------------------------------------------------------------- waiting items

  /**
   * An item waits for the consumer, charged to the connection. It is within the credit the peer
   * was given, and its frame fitted the connection's budget when it was decoded; what keeps the
   * stream's waiting bytes near `maxBytes` is that credit is held back while they are over it.
   */
  private enqueue(value: unknown, cost: number): void {
    this.values.push(value);
    this.costs.push(cost);
    this.heldBytes += cost;
    this.budget?.charge(cost);
  }

  /** Takes the oldest waiting item out (releasing its bytes). */
  private shift(): unknown {
    const cost = this.costs.shift() ?? 0;
    this.heldBytes -= cost;
    this.budget?.charge(-cost);
    return this.values.shift();
  }

  private releaseOutcome(): void {
    this.budget?.charge(-this.outcomeCost);
    this.outcomeCost = 0;
  }

  private clear(): void {
    this.budget?.charge(-this.heldBytes);
    this.heldBytes = 0;
    this.values.clear();
    this.costs.clear();
  }

  // ---------------------------------------------------------------- consumers

  /** Marks the stream taken by `kind`; false when someone already consumes it. */
  private take(kind: 'subscriber' | 'iterator'): boolean {
    if (this.consumer !== 'none') return false;
    this.consumer = kind;
    return true;
  }

  private iterator(): AsyncIterableIterator<unknown> {
    if (!this.take('iterator')) {
      const error = new Error('a request stream can be subscribed to (or iterated) only once');
      return {
        next: () => Promise.reject(error),
        return: () => Promise.resolve({ value: undefined, done: true }),
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    }
    const it: AsyncIterableIterator<unknown> = {
      next: () => {
        if (this.values.length > 0) {
          const value = this.shift();
          this.consumed();
          return Promise.resolve({ value, done: false });
        }
        if (this.phase !== 'receiving') {
          this.phase = 'closed';
          return this.outcomeAsResult();
        }
        if (this.waiting) return Promise.reject(new Error('next() called before the previous next() settled'));
        return new Promise<IteratorResult<unknown>>((resolve, reject) => (this.waiting = { resolve, reject }));
      },
      return: () => {
        // The loop stopped early (break, throw): no more credit; what still arrives is dropped.
        if (this.phase !== 'closed') this.close(undefined);
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }

  private outcomeAsResult(): Promise<IteratorResult<unknown>> {
    this.releaseOutcome();
    const outcome = this.outcome;
    this.outcome = 'complete'; // an error is thrown once; later pulls see the end
    if (outcome && outcome !== 'complete') return Promise.reject(outcome.error);
    return Promise.resolve({ value: undefined, done: true });
  }

  /** A pull waiting while the stream ended: it gets the end (or the error). */
  private settleWaiting(): void {
    const w = this.waiting;
    if (!w) return;
    this.waiting = undefined;
    this.outcomeAsResult().then(w.resolve, w.reject);
  }

  private end(outcome: { error: unknown } | 'complete'): void {
    if (this.phase !== 'receiving') return;
    this.phase = 'ended';
    this.outcome = outcome;
    if (this.subscriber && this.values.length === 0) this.finish();
    else if (this.waiting) {
      this.phase = 'closed';
      this.settleWaiting();
    }
  }

  private deliver(value: unknown): void {
    this.subscriber?.next(value);
    if (this.phase === 'closed') return;
    this.consumed();
  }

  /**
   * One item was taken: tops the peer's credit up when due, no further than keeps the stream's
   * waiting bytes, and those its credit may still bring, within `maxBytes`.
   */
  private consumed(): void {
    const b = this.bounds;
    const cap = b ? byteCap(b.maxBytes, this.heldBytes, this.credit.outstanding, this.receivedBytes / this.receivedItems) : Infinity;
    const n = this.credit.consumed(cap);
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
    this.releaseOutcome();
    const outcome = this.outcome;
    if (outcome === 'complete') s.complete();
    else if (outcome) s.error(outcome.error);
    else s.complete();
  }
}
