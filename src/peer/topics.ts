import { Observable, Subject } from 'rxjs';

/**
 * Publish/subscribe over streams, in one line per handler: a topic exists while it has
 * subscribers, and goes away with the last one.
 *
 * ```ts
 * @Injectable() export class Prices { readonly topics = new WsMsgpackTopics<Price>(); }
 *
 * @WsMessagePattern('prices')
 * prices(@Payload() { symbol }: { symbol: string }) { return this.prices.topics.subscribe(symbol); }
 *
 * this.prices.topics.publish('ACME', { symbol: 'ACME', price: 101.5 });
 * // client: client.send('prices', new WsMsgpackRecordBuilder({ symbol: 'ACME' }).setOverflow('latest').build())
 * ```
 *
 * Each subscription is one remote call: unsubscribing on the client ends it here. A subscriber
 * slower than the publisher gets its call's overflow strategy (`'latest'` suits tickers) instead
 * of growing memory.
 */
export class WsMsgpackTopics<T = unknown> {
  private readonly subjects = new Map<string, { subject: Subject<T>; subscribers: number }>();

  /** Sends `value` to the current subscribers of `topic`; returns how many there are (0: nobody listens). */
  publish(topic: string, value: T): number {
    const entry = this.subjects.get(topic);
    if (!entry) return 0;
    entry.subject.next(value);
    return entry.subscribers;
  }

  /** What is published to `topic` from now on. Cold per subscriber; the topic lives while anyone subscribes. */
  subscribe(topic: string): Observable<T> {
    return new Observable<T>((subscriber) => {
      let entry = this.subjects.get(topic);
      if (!entry) {
        entry = { subject: new Subject<T>(), subscribers: 0 };
        this.subjects.set(topic, entry);
      }
      entry.subscribers++;
      const subscription = entry.subject.subscribe(subscriber);
      const mine = entry;
      return () => {
        subscription.unsubscribe();
        if (--mine.subscribers === 0 && this.subjects.get(topic) === mine) this.subjects.delete(topic);
      };
    });
  }

  /** Completes every subscription of `topic` (their calls end with COMPLETE) and forgets it. */
  end(topic: string): void {
    const entry = this.subjects.get(topic);
    this.subjects.delete(topic);
    entry?.subject.complete();
  }

  /** Subscribers of `topic` now. */
  subscribers(topic: string): number {
    return this.subjects.get(topic)?.subscribers ?? 0;
  }

  /** Topics that have subscribers. */
  get topics(): string[] {
    return [...this.subjects.keys()];
  }
}
