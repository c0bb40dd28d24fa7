import type { Connection } from '../connection/connection.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import { unavailable } from '../protocol/errors.js';

/** An event waiting to be sent. */
interface QueuedEvent {
  readonly pattern: unknown;
  readonly payload: unknown;
  readonly options: WsMsgpackCallOptions;
  /** Set once a connection is ready for it. */
  conn: Connection | undefined;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * A client's events, sent in the order they were emitted: at once while connected and none wait;
 * else queued (at most `max`) until a connection is ready for them. While some wait, a new event
 * waits behind them even when connected.
 */
export class EventQueue {
  /** Events waiting to go out, oldest first. */
  private readonly waiting: QueuedEvent[] = [];

  constructor(
    /** The most events that may wait (`maxPendingEvents`). */
    private readonly max: number,
    /** Waits for a connection on behalf of an event (its deadline, wait-for-ready). */
    private readonly whenReady: (options: WsMsgpackCallOptions) => Promise<{ conn: Connection }>,
  ) {}

  /** Sends an event on `open` now, or once connected; resolves once it was handed to a socket. */
  emit(open: Connection | undefined, pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): Promise<void> {
    if (open && this.waiting.length === 0) {
      try {
        open.emit(pattern, payload, options.headers);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.waiting.length >= this.max) {
      return Promise.reject(unavailable(`not connected, and ${this.max} events already wait for the connection (maxPendingEvents)`));
    }
    return new Promise<void>((resolve, reject) => {
      const entry: QueuedEvent = { pattern, payload, options, conn: undefined, resolve, reject };
      this.waiting.push(entry);
      this.whenReady(options).then(
        ({ conn }) => {
          entry.conn = conn;
          this.flush();
        },
        (error: unknown) => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(error);
          this.flush();
        },
      );
    });
  }

  /** Sends the waiting events that have a connection, oldest first, up to the first that has none yet. */
  private flush(): void {
    while (this.waiting.length > 0 && this.waiting[0]!.conn) {
      const e = this.waiting.shift()!;
      try {
        e.conn!.emit(e.pattern, e.payload, e.options.headers);
        e.resolve();
      } catch (err) {
        e.reject(err);
      }
    }
  }
}
