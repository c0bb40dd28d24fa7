/**
 * Callbacks waiting for a set of things (calls, pulls) to become empty: what a drain, and a
 * stream stopped while its generator runs, wait for. The owner says when it may have emptied.
 */
export class WhenEmpty {
  private waiters: (() => void)[] = [];

  /** Calls `callback` once `isEmpty` (at once if it is now). */
  wait(isEmpty: boolean, callback: () => void): void {
    if (isEmpty) callback();
    else this.waiters.push(callback);
  }

  /** {@link wait} as a promise. */
  promise(isEmpty: boolean): Promise<void> {
    return isEmpty ? Promise.resolve() : new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** The owner's set may have emptied: when it has, every waiter is called, once. */
  check(isEmpty: boolean): void {
    if (isEmpty && this.waiters.length > 0) for (const w of this.waiters.splice(0)) w();
  }
}
