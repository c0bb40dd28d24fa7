import { unavailable } from '../protocol/errors.js';
import { withCause } from './errors.js';

/**
 * One WebSocket opening handshake, for both the Node client's `ws` socket and the browser's
 * standard one: `opened` settles exactly once, whichever way the handshake ends; the listeners
 * the opener added are removed (`cleanup`) before it settles, and a socket that is not adopted is
 * given up (`abandon`).
 */
export class Opening<T> {
  /** Resolves with what `adopt` made of the open socket; rejects with UNAVAILABLE naming why it did not open. */
  readonly opened: Promise<T>;
  private settled = false;
  private resolve!: (value: T) => void;
  private reject!: (error: unknown) => void;

  constructor(
    private readonly url: string,
    private readonly socket: { cleanup(): void; abandon(): void },
  ) {
    this.opened = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  /** Whether `opened` has settled. */
  get isSettled(): boolean {
    return this.settled;
  }

  /** The handshake failed (or was called off): UNAVAILABLE `cannot connect to <url>: <reason>`, with `cause` when a socket error says why. */
  fail(reason: string, details?: Record<string, unknown>, cause?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.socket.cleanup();
    this.socket.abandon();
    const error = unavailable(`cannot connect to ${this.url}: ${reason}`, details);
    this.reject(cause ? withCause(error, cause) : error);
  }

  /** The socket opened: `adopt` binds to it synchronously (before any message is delivered); a throw gives it up. */
  open(adopt: () => T): void {
    if (this.settled) return;
    this.settled = true;
    this.socket.cleanup();
    let adopted: T;
    try {
      adopted = adopt();
    } catch (e) {
      this.socket.abandon();
      this.reject(e);
      return;
    }
    this.resolve(adopted);
  }
}
