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
  private readonly subjects = new Map<string, { subject: Subject<T>; subscribers: number; leaveBus: (() => void) | undefined }>();
  private readonly bus: WsMsgpackTopicBus | undefined;
  private readonly name: string;
  private readonly onError: (error: Error) => void;

  /**
   * Without options, the topics of this process. With `cluster` (the server's `cluster` option,
   * `redisCluster(...)`), the topics of every replica: a value published on one replica reaches
   * the subscribers of all, in publish order per publisher; `name` tells this set of topics from
   * the other sets sharing the cluster.
   */
  constructor(options: WsMsgpackTopicsOptions = {}) {
    this.bus = options.cluster;
    if (this.bus && (typeof options.name !== 'string' || options.name === '')) {
      throw new TypeError('nestjs-ws-msgpack: WsMsgpackTopics with a cluster needs a `name` (the same on every replica), e.g. new WsMsgpackTopics({ cluster, name: "prices" })');
    }
    this.name = options.name ?? '';
    this.onError = options.onError ?? ((error) => console.error(`nestjs-ws-msgpack: WsMsgpackTopics "${this.name}": ${error.message}`));
  }

  /**
   * Sends `value` to the current subscribers of `topic` on this replica, now, and returns how many
   * there are (0: nobody here listens). With a cluster it is also published to the other
   * replicas' subscribers (not counted here: they are not known here); a failure to publish (the
   * engine unreachable) goes to `onError`.
   */
  publish(topic: string, value: T): number {
    if (this.bus) this.bus.publishTopic(this.channel(topic), value).catch((e: unknown) => this.onError(e instanceof Error ? e : new Error(String(e))));
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
        const subject = new Subject<T>();
        const leaveBus = this.bus?.subscribeTopic(this.channel(topic), (value) => subject.next(value as T));
        entry = { subject, subscribers: 0, leaveBus };
        this.subjects.set(topic, entry);
      }
      entry.subscribers++;
      const subscription = entry.subject.subscribe(subscriber);
      const mine = entry;
      return () => {
        subscription.unsubscribe();
        if (--mine.subscribers === 0 && this.subjects.get(topic) === mine) {
          this.subjects.delete(topic);
          mine.leaveBus?.();
        }
      };
    });
  }

  /** Completes every subscription of `topic` (their calls end with COMPLETE) and forgets it. */
  end(topic: string): void {
    const entry = this.subjects.get(topic);
    this.subjects.delete(topic);
    entry?.leaveBus?.();
    entry?.subject.complete();
  }

  /** The bus channel of `topic`: the name's length first, so no name and topic pair reads as another (`a` + `b:c` vs `a:b` + `c`). */
  private channel(topic: string): string {
    return `${this.name.length}:${this.name}:${topic}`;
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

/**
 * What carries topics between replicas: a cluster adapter (`redisCluster(...)`) is one. Values
 * published on `channel` by another replica are delivered, in publish order per publisher, to
 * `deliver` until the function `subscribeTopic` returned is called.
 */
export interface WsMsgpackTopicBus {
  /** Publishes to the other replicas' subscribers of `channel`. */
  publishTopic(channel: string, value: unknown): Promise<void>;
  /** Delivers what other replicas publish on `channel`; the returned function stops it. */
  subscribeTopic(channel: string, deliver: (value: unknown) => void): () => void;
}

/** Options of {@link WsMsgpackTopics}. */
export interface WsMsgpackTopicsOptions {
  /** The replicas to publish across (the server's `cluster` option). Defaults to none: this process only. */
  cluster?: WsMsgpackTopicBus;
  /** Tells this set of topics from others sharing the cluster; required with `cluster`, the same on every replica. */
  name?: string;
  /** A value that could not be published to the other replicas. Defaults to `console.error`. */
  onError?: (error: Error) => void;
}
