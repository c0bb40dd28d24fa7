import type { Connection } from '../connection/connection.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';

/**
 * An async iterator over a call that needs a connection first: it connects on the first `next()`
 * (through `connect`, which may wait and gives the options with what is left of the deadline),
 * then pulls the call's response. `return()` settles a `next()` still waiting and cancels the call
 * at once; after a failed connect, later `next()` calls are done.
 */
export function callIteratorWhenReady<T>(
  connect: () => Promise<{ conn: Connection; options: WsMsgpackCallOptions }>,
  pattern: unknown,
  payload: unknown,
): AsyncIterableIterator<T> {
  let inner: AsyncIterableIterator<unknown> | undefined;
  let starting: Promise<AsyncIterableIterator<unknown>> | undefined;
  /** `open` until `return()`, or until connecting failed. */
  let phase: 'open' | 'done' = 'open';
  let onReturn!: () => void;
  const returned = new Promise<undefined>((resolve) => (onReturn = () => resolve(undefined)));
  const done: IteratorResult<T> = { value: undefined, done: true };
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (phase === 'done') return done;
      // Connected: pull directly (racing `returned` on every item would pile reactions on it; the
      // call's own iterator already settles a pending next() on return()).
      if (inner) return (await inner.next()) as IteratorResult<T>;
      starting ??= connect().then(({ conn, options }) => (inner = conn.iterate(pattern, payload, options)));
      let it: AsyncIterableIterator<unknown> | undefined;
      try {
        it = await Promise.race([starting, returned]); // return() settles a next() still connecting
      } catch (e) {
        if ((phase as string) === 'done') return done; // return() came first
        phase = 'done';
        throw e;
      }
      if ((phase as string) === 'done' || !it) return done; // return() came while connecting: the call never starts
      return (await it.next()) as IteratorResult<T>;
    },
    // Not queued behind a pending next(): it settles that next() and cancels the call at once.
    return: async () => {
      phase = 'done';
      onReturn();
      await inner?.return?.();
      return done;
    },
    throw: async (error: unknown) => {
      await iterator.return!();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
