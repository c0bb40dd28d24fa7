/** Longest delay `setTimeout` honours (~24.8 days; larger ones fire after 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A cancellable timer. */
export interface Timer {
  /** Stops the timer; idempotent. */
  cancel(): void;
}

/**
 * `setTimeout` for any finite delay: delays beyond ~24.8 days are chained in steps instead of
 * firing at once, as Node and browsers do with a too-large delay. `keepsProcessAlive: false`
 * unrefs it (Node), so it alone does not keep the process running.
 */
export function startTimer(ms: number, fn: () => void, keepsProcessAlive = true): Timer {
  let handle: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    handle = setTimeout(() => (left > MAX_TIMER_MS ? arm(left - MAX_TIMER_MS) : fn()), Math.min(left, MAX_TIMER_MS));
    if (!keepsProcessAlive) (handle as { unref?: () => void }).unref?.();
  };
  arm(ms);
  return { cancel: () => clearTimeout(handle) };
}
