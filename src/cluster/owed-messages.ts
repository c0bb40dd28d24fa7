import type { RemoteMessage } from './remote-messages.js';

/** The most messages kept owed; past it the oldest is dropped (its replica is then left to time out). */
export const MAX_OWED = 10_000;

/**
 * Messages that must reach another replica but could not be sent because this replica's link to
 * the engine was down: a `cancel` for a call this side gave up on (so the holder stops serving
 * it), an `error` for a call this side stopped serving (so the caller does not wait for ever).
 * They go out when the link is back ({@link flush}); those to a replica declared gone are dropped.
 */
export class OwedMessages {
  private owed: { readonly to: string; readonly message: RemoteMessage }[] = [];

  /** How many wait. */
  get size(): number {
    return this.owed.length;
  }

  /** Keeps `message` for `to` until the link is back. */
  owe(to: string, message: RemoteMessage): void {
    if (this.owed.length >= MAX_OWED) this.owed.shift();
    this.owed.push({ to, message });
  }

  /** `replica` is gone: nothing owed to it is sent. */
  forget(replica: string): void {
    this.owed = this.owed.filter((o) => o.to !== replica);
  }

  /** The link is back: hands each owed message to `send` once, oldest first, and forgets them. */
  flush(send: (to: string, message: RemoteMessage) => void): void {
    const owed = this.owed;
    this.owed = [];
    for (const { to, message } of owed) send(to, message);
  }
}
