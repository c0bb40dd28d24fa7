const NOT_ABORTED: unique symbol = Symbol('not aborted');

/**
 * An abort that creates its `AbortController` only when someone asks for the signal: creating one
 * costs more than the rest of a small call, and most handlers never look at it.
 */
export class LazyAbort {
  private controller: AbortController | undefined;
  private abortReason: unknown = NOT_ABORTED;

  /** The signal; already aborted (with the reason) if the abort came first. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason !== NOT_ABORTED) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  /** Why it was aborted (undefined before). */
  get reason(): unknown {
    return this.abortReason === NOT_ABORTED ? undefined : this.abortReason;
  }

  /** Aborts once; later calls are ignored. */
  abort(reason: unknown): void {
    if (this.abortReason !== NOT_ABORTED) return;
    this.abortReason = reason;
    this.controller?.abort(reason);
  }
}
