import { WsMsgpackError, cancelled } from '../protocol/errors.js';

/** The error of a call aborted by its signal (CANCELLED, naming the signal's reason). */
export function abortedError(signal: AbortSignal): WsMsgpackError {
  const reason: unknown = signal.reason;
  return cancelled(`the call was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`);
}

/**
 * `it`, cancelled by `signal`: aborting returns the iterator (which cancels its call) and the
 * pending or next `next()` rejects with CANCELLED. The abort listener lives from the first `next()`
 * until the iteration ends, however it ends (the web client's `iterate()` does the same).
 */
export function abortableIterator<T>(it: AsyncIterableIterator<T>, signal: AbortSignal): AsyncIterableIterator<T> {
  let listening = false;
  let finished = false;
  const onAbort = (): void => void it.return?.();
  const finish = (): void => {
    finished = true;
    if (listening) signal.removeEventListener('abort', onAbort);
    listening = false;
  };
  const wrapped: AsyncIterableIterator<T> = {
    next: async () => {
      if (finished) return { value: undefined, done: true };
      if (signal.aborted) {
        finish();
        await it.return?.();
        throw abortedError(signal);
      }
      if (!listening) {
        listening = true;
        signal.addEventListener('abort', onAbort, { once: true });
      }
      let r: IteratorResult<T>;
      try {
        r = await it.next();
      } catch (e) {
        finish();
        throw e;
      }
      if (r.done) {
        finish();
        if (signal.aborted) throw abortedError(signal);
      }
      return r;
    },
    return: async () => {
      finish();
      return (await it.return?.()) ?? { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}
