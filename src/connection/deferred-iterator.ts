/** How an iteration opened by {@link deferredIterator} ended: ran to its end, threw, or was closed early (`return()`, `throw()`). */
export type DeferredEnd = { readonly kind: 'done' } | { readonly kind: 'error'; readonly error: unknown } | { readonly kind: 'returned' };

const DONE: IteratorResult<never> = Object.freeze({ value: undefined, done: true }) as IteratorResult<never>;

/**
 * An async iterator whose source is opened on the first `next()`, not before: a call that starts
 * when the loop starts. `open` gives the source, or a promise of it (a connection to wait for).
 *
 * - `return()` (a `break` out of `for await`) closes the source, and settles at once a `next()`
 *   still waiting for `open`'s promise; a source that arrives after it is closed unused. Before the
 *   first `next()`, it means the source is never opened.
 * - `throw(error)` is `return()`, then rejects with `error`.
 * - When `open`'s promise rejects, that `next()` rejects with its error and later ones are done.
 * - `ended`, if given, is called once when an opened iteration ends, with how it ended.
 *
 * Once open, each `next()` is the source's own (no promise raced per item), so an iteration of
 * millions of items costs nothing per item here.
 */
export function deferredIterator<T>(open: () => AsyncIterator<T> | PromiseLike<AsyncIterator<T>>, ended?: (end: DeferredEnd) => void): AsyncIterableIterator<T> {
  /** `idle`: not opened; `opening`: waiting for `open`'s promise; `open`; `done`: ended, however. */
  let phase: 'idle' | 'opening' | 'open' | 'done' = 'idle';
  let source: AsyncIterator<T> | undefined;
  let opening: Promise<AsyncIterator<T> | undefined> | undefined;
  let settleOpening: (() => void) | undefined;
  const current = (): typeof phase => phase; // read after an await (TypeScript keeps the narrowed type)

  const end = (how: DeferredEnd): void => {
    if (phase === 'done') return;
    const opened = phase !== 'idle';
    phase = 'done';
    if (opened) ended?.(how);
  };

  const pull = async (it: AsyncIterator<T>): Promise<IteratorResult<T>> => {
    let result: IteratorResult<T>;
    try {
      result = await it.next();
    } catch (error) {
      end({ kind: 'error', error });
      throw error;
    }
    if (result.done) end({ kind: 'done' });
    return result;
  };

  const start = (): void => {
    phase = 'opening';
    let opened: AsyncIterator<T> | PromiseLike<AsyncIterator<T>>;
    try {
      opened = open();
    } catch (error) {
      opening = Promise.reject(error);
      return;
    }
    if (!isPromiseLike(opened)) {
      source = opened;
      phase = 'open';
      return;
    }
    const closedFirst = new Promise<undefined>((resolve) => (settleOpening = () => resolve(undefined)));
    const arrived = Promise.resolve(opened).then((it) => {
      if (current() !== 'opening') {
        void it.return?.(); // return() came first: the source is closed unused
        return undefined;
      }
      source = it;
      phase = 'open';
      return it;
    });
    opening = Promise.race([arrived, closedFirst]);
  };

  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (phase === 'idle') start();
      if (phase === 'open') return pull(source!);
      if (phase === 'done') return DONE;
      let it: AsyncIterator<T> | undefined;
      try {
        it = await opening;
      } catch (error) {
        if (current() === 'done') return DONE; // return() came first, or an earlier next() reported it
        end({ kind: 'error', error });
        throw error;
      }
      return it && current() === 'open' ? pull(it) : DONE;
    },
    return: async () => {
      end({ kind: 'returned' });
      settleOpening?.();
      await source?.return?.();
      return DONE;
    },
    throw: async (error: unknown) => {
      await iterator.return!();
      throw error;
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

function isPromiseLike<T>(value: AsyncIterator<T> | PromiseLike<AsyncIterator<T>>): value is PromiseLike<AsyncIterator<T>> {
  return typeof (value as Partial<PromiseLike<unknown>>).then === 'function';
}
