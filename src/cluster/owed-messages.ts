import type { RemoteMessage } from './remote-messages.js';

/** The most messages kept owed; past it the oldest replica's oldest is dropped (that replica is then left to time out). */
export const MAX_OWED = 10_000;

/**
 * Messages that must reach another replica but could not be sent because this replica's link to
 * the engine was down: a `cancel` for a call this side gave up on (so the holder stops serving
 * it), an `error` for a call this side stopped serving (so the caller does not wait for ever).
 * They go out when the link is back ({@link flush}); those to a replica declared gone are dropped.
 * Kept by replica, so forgetting one replica costs nothing for the others (a flood of messages
 * from made-up replica ids must not make each one a scan).
 */
export class OwedMessages {
  private readonly owed = new Map<string, RemoteMessage[]>();
  private count = 0;

  /** How many wait. */
  get size(): number {
    return this.count;
  }

  /** Keeps `message` for `to` until the link is back. */
  owe(to: string, message: RemoteMessage): void {
    if (this.count >= MAX_OWED) this.dropOldest();
    const list = this.owed.get(to);
    if (list) list.push(message);
    else this.owed.set(to, [message]);
    this.count++;
  }

  /** `replica` is gone: nothing owed to it is sent. */
  forget(replica: string): void {
    const list = this.owed.get(replica);
    if (!list) return;
    this.count -= list.length;
    this.owed.delete(replica);
  }

  /** The link is back: hands each owed message to `send` once, in order per replica, and forgets them. */
  flush(send: (to: string, message: RemoteMessage) => void): void {
    const owed = [...this.owed];
    this.owed.clear();
    this.count = 0;
    for (const [to, messages] of owed) for (const message of messages) send(to, message);
  }

  private dropOldest(): void {
    const [replica, list] = this.owed.entries().next().value as [string, RemoteMessage[]];
    list.shift();
    this.count--;
    if (list.length === 0) this.owed.delete(replica);
  }
}
