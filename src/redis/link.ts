/**
 * The two connections to Redis (commands; pub/sub) and whether they are up. Commands fail fast
 * while Redis is unreachable: the adapter's own connections have no offline queue and give up
 * a command at once when their connection drops, and every operation checks {@link RedisLink.up}
 * first (so connections the user passed in, whatever their settings, fail fast too). A Redis that
 * stops answering without closing the connection (frozen) is noticed by `commandTimeout`
 * ({@link RedisLink.timed}): the link is down (stalled) until a PING on each connection is
 * answered.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { unavailable, WsMsgpackError } from '../protocol/errors.js';
import type { ResolvedRedisClusterOptions } from './options.js';

/** What the link tells the adapter. */
export interface RedisLinkEvents {
  /** The command connection is ready (the first time, or again): the presence records need writing. */
  clientReady(): void;
  /** The pub/sub connection is ready (the first time, or again): its channels need subscribing. */
  subscriberReady(): void;
  /** A connection closed (each failed reconnect attempt closes it again). */
  down(error: Error): void;
}

/**
 * How the adapter's own connections behave: no offline queue (a command while not connected
 * fails at once), commands under way when the connection drops fail at once (no resend after
 * the reconnect), reconnect attempts every 100 ms growing to 2 s, and the adapter resubscribes
 * its channels itself.
 */
const OWN_CONNECTION: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  autoResubscribe: false,
  retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000),
};

/** Resolves when `redis` is ready; rejects with the error of its first failed attempt. */
function whenReady(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      redis.off('ready', onReady);
      redis.off('error', onError);
      redis.off('end', onEnd);
      if (error) reject(error);
      else resolve();
    };
    const onReady = () => done();
    const onError = (e: Error) => done(e);
    const onEnd = () => done(new Error('the connection was closed'));
    redis.on('ready', onReady);
    redis.on('error', onError);
    redis.on('end', onEnd);
    if (redis.status === 'wait')
      redis.connect().catch(() => {}); // lazyConnect: the 'error' listener has the failure
    else if (redis.status === 'end') done(new Error('the connection was closed'));
  });
}

export class RedisLink {
  readonly client: Redis;
  readonly subscriber: Redis;
  /** The last error either connection reported (the reason given while down). */
  private lastError: Error | undefined;
  private closed = false;
  /** When a timed command last settled (ms): a command is taken for lost only when Redis has answered nothing for `commandTimeout`. */
  private lastAnswer = 0;
  /** Set when a command went unanswered for `commandTimeout`, until a probe is answered. */
  private stall: Error | undefined;
  private probing = false;
  private readonly commandTimeout: number;
  private readonly ownClient: boolean;
  private readonly ownSubscriber: boolean;
  private readonly detach: (() => void)[] = [];

  constructor(
    options: ResolvedRedisClusterOptions,
    private readonly events: RedisLinkEvents,
  ) {
    this.commandTimeout = options.commandTimeout;
    this.ownClient = options.client === undefined;
    this.client = options.client ?? new Redis(options.url, OWN_CONNECTION);
    this.ownSubscriber = options.subscriber === undefined;
    this.subscriber = options.subscriber ?? (options.client ? options.client.duplicate(OWN_CONNECTION) : new Redis(options.url, OWN_CONNECTION));
    this.listen(this.client, () => this.events.clientReady());
    this.listen(this.subscriber, () => this.events.subscriberReady());
  }

  /** True while both connections are ready and Redis answers. */
  get up(): boolean {
    return this.clientUp && this.subscriber.status === 'ready';
  }

  /** True while the command connection is ready and Redis answers. */
  get clientUp(): boolean {
    return !this.closed && this.stall === undefined && this.client.status === 'ready';
  }

  /** True while the pub/sub connection is ready and Redis answers. */
  get subscriberUp(): boolean {
    return !this.closed && this.stall === undefined && this.subscriber.status === 'ready';
  }

  /** True while Redis has not answered a command within `commandTimeout` (and no probe since). */
  get stalled(): boolean {
    return this.stall !== undefined;
  }

  /**
   * `command`, or a rejection once Redis has answered nothing for `commandTimeout` while it waits:
   * Redis is taken for frozen, the link is down (`events.down`) and probed ({@link probe}). A
   * command queued behind others (a large write in chunks) waits as long as Redis goes on
   * answering them. The command itself cannot be taken back (the connection answers in order): a
   * late answer is dropped. The verdict waits for the I/O of one more turn of the event loop, so
   * that when this process was the one paused (a long GC, a stopped container), an answer already
   * in the socket still counts.
   */
  timed<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout>;
      const started = Date.now();
      const arm = (ms: number) => {
        timer = setTimeout(() => {
          setImmediate(() => {
            if (settled) return;
            const quiet = Date.now() - Math.max(this.lastAnswer, started);
            if (quiet < this.commandTimeout) return arm(this.commandTimeout - quiet); // Redis answered meanwhile: it is busy, not frozen
            settled = true;
            const e = new Error(`Redis did not answer within ${this.commandTimeout} ms (commandTimeout)`);
            this.markStalled(e);
            reject(e);
          }).unref?.();
        }, ms);
        timer.unref?.();
      };
      arm(this.commandTimeout);
      const settle = (done: () => void) => {
        clearTimeout(timer);
        this.lastAnswer = Date.now();
        if (settled) return;
        settled = true;
        done();
      };
      command.then(
        (value) => settle(() => resolve(value)),
        (e: unknown) => settle(() => reject(e instanceof Error ? e : new Error(String(e)))),
      );
    });
  }

  /**
   * While stalled, sends one PING on each connection (one probe at a time); once both are
   * answered, the link is up again and the adapter is told both connections are ready (it writes
   * its presence and subscribes its channels again, as after a reconnect). A probe that fails
   * (a connection dropped) is retried by the next call, or by that connection's ready event.
   */
  probe(): void {
    if (!this.stall || this.probing || this.closed || this.client.status !== 'ready' || this.subscriber.status !== 'ready') return;
    this.probing = true;
    Promise.all([this.client.ping(), this.subscriber.ping()]).then(
      () => {
        this.probing = false;
        if (!this.stall || this.closed) return;
        this.stall = undefined;
        this.lastError = undefined;
        this.events.clientReady();
        this.events.subscriberReady();
      },
      () => {
        this.probing = false;
      },
    );
  }

  /** The error operations fail with while the link is not up. */
  unavailable(): WsMsgpackError {
    const why = this.closed
      ? 'the cluster adapter is closed'
      : ((this.stall ?? this.lastError)?.message ?? `the connection is ${this.client.status === 'ready' ? this.subscriber.status : this.client.status}`);
    return unavailable(`the cluster engine (Redis) is unreachable: ${why}`, this.stall ?? this.lastError);
  }

  /** Throws {@link unavailable} unless the link is up. */
  check(): void {
    if (!this.up) throw this.unavailable();
  }

  /**
   * A failure of a Redis command as the caller hears it: a connection's failure (dropped, not
   * connected) is UNAVAILABLE; a command Redis refused is the error itself.
   */
  failure(e: unknown): Error {
    if (e instanceof Error && e.name === 'ReplyError') return e;
    if (e instanceof WsMsgpackError) return e; // already typed (a value that cannot be encoded: INTERNAL); the link is fine
    if (e instanceof Error) this.lastError ??= e; // the socket's own error (ECONNREFUSED) says more, when there is one
    return this.unavailable();
  }

  /**
   * Connects both connections. Resolves once both are ready; rejects with UNAVAILABLE when the
   * first attempt fails (the connections go on trying: the ready events come when they succeed).
   */
  async start(): Promise<void> {
    try {
      await Promise.all([whenReady(this.client), whenReady(this.subscriber)]);
    } catch (e) {
      if (e instanceof Error) this.lastError = e;
      throw this.unavailable();
    }
  }

  /** Stops listening; closes the connections the adapter opened (not the ones it was given). */
  async close(): Promise<void> {
    if (this.closed) return;
    const stalled = this.stall !== undefined;
    this.closed = true;
    for (const off of this.detach.splice(0)) off();
    // QUIT waits for Redis's answer: not from a frozen Redis (nor longer than commandTimeout).
    const quit = (redis: Redis) => (redis.status === 'ready' && !stalled ? this.timed(redis.quit()).then(() => {}) : Promise.resolve(redis.disconnect()));
    await Promise.all([
      this.ownClient ? quit(this.client).catch(() => this.client.disconnect()) : undefined,
      this.ownSubscriber ? quit(this.subscriber).catch(() => this.subscriber.disconnect()) : undefined,
    ]);
  }

  /** A command went unanswered: the link is down until a probe is answered. */
  private markStalled(error: Error): void {
    if (this.stall || this.closed) return;
    this.stall = error;
    this.lastError = error;
    this.events.down(error);
    this.probe();
  }

  private listen(redis: Redis, ready: () => void): void {
    const onReady = () => {
      if (this.closed) return;
      if (this.stall) return this.probe(); // the probe tells the adapter both are ready, once Redis answers
      this.lastError = undefined;
      ready();
    };
    const onError = (e: Error) => {
      this.lastError = e; // reconnect attempts fail again and again: the adapter reports a drop once
    };
    const onClose = () => {
      if (!this.closed) this.events.down(this.lastError ?? new Error(`the connection to ${describe(redis)} closed`));
    };
    redis.on('ready', onReady);
    redis.on('error', onError);
    redis.on('close', onClose);
    this.detach.push(() => {
      redis.off('ready', onReady);
      redis.off('error', onError);
      redis.off('close', onClose);
    });
  }
}

function describe(redis: Redis): string {
  const { host, port } = redis.options;
  return `${host ?? '?'}:${port ?? '?'}`;
}
