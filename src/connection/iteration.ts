import { Observable } from 'rxjs';

/** How a pulled iteration ended: `undefined` when it ran to its end, else the error it threw. */
export type IterationOutcome = { error: unknown } | undefined;

/**
 * An iterable handed to the transport as an Observable item. The transport pulls it on credit
 * (true backpressure) and reports how the pull ended through `settle`, so the Observable it came
 * from can end the same way: an iteration error then travels down that Observable's operators
 * (for a Nest handler: its exception filters), like any Observable error.
 */
export class IterationHandle {
  constructor(
    /** What to pull. */
    readonly source: AsyncIterable<unknown> | Iterable<unknown>,
    /** Called once by the transport when the pull ended (not when it was stopped). */
    readonly settle: (outcome: IterationOutcome) => void,
  ) {}
}

/** True for async iterables that are not Observables. */
export function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return v != null && typeof (v as Record<symbol, unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * True for sync iterables that stream item by item. Arrays, strings, typed arrays, Maps and Sets
 * are data, not streams.
 */
export function isStreamIterable(v: unknown): v is Iterable<unknown> {
  return (
    v != null &&
    typeof v === 'object' &&
    typeof (v as Record<symbol, unknown>)[Symbol.iterator] === 'function' &&
    !Array.isArray(v) &&
    !ArrayBuffer.isView(v) &&
    !(v instanceof Map) &&
    !(v instanceof Set)
  );
}

/**
 * An Observable of one {@link IterationHandle} for `source` that completes when the transport has
 * pulled `source` to its end, or errors with what the iteration threw. `whenUnused`, if given,
 * receives a function that disposes of `source` unless somebody subscribed (for the end of the
 * call: a result the call ended before using); it rejects with what the clean-up threw.
 */
export function iterateThrough(source: AsyncIterable<unknown> | Iterable<unknown>, whenUnused?: (disposeIfUnused: () => Promise<void>) => void): Observable<IterationHandle> {
  let subscribed = false;
  whenUnused?.(() => (subscribed ? Promise.resolve() : disposeStream(source)));
  return new Observable<IterationHandle>((subscriber) => {
    subscribed = true;
    subscriber.next(new IterationHandle(source, (outcome) => (outcome ? subscriber.error(outcome.error) : subscriber.complete())));
  });
}

/**
 * `source` with every async iterable it emits replaced by an {@link IterationHandle}, and its
 * completion held back until those have been pulled to their end; an iteration error becomes the
 * Observable's error. Other values pass through unchanged.
 */
export function expandIterables(source: Observable<unknown>): Observable<unknown> {
  return new Observable<unknown>((subscriber) => {
    let open = 0;
    let completed = false;
    // The inner subscriber joins `subscriber` before the source runs, so that unsubscribing
    // mid-burst stops a synchronous source at once.
    return new Observable<unknown>((inner) => {
      subscriber.add(inner);
      return source.subscribe(inner);
    }).subscribe({
      next: (value) => {
        if (!isAsyncIterable(value)) return subscriber.next(value);
        open++;
        subscriber.next(
          new IterationHandle(value, (outcome) => {
            open--;
            if (outcome) subscriber.error(outcome.error);
            else if (completed && open === 0) subscriber.complete();
          }),
        );
      },
      error: (error: unknown) => subscriber.error(error),
      complete: () => {
        completed = true;
        if (open === 0) subscriber.complete();
      },
    });
  });
}

/**
 * Releases a stream-like value that will never be consumed (a handler's result that arrived after
 * its call ended): `destroy()` (Node streams), `return()` (iterators, generators), `close()`
 * (database cursors), or the `return()` of its async iterator. Plain values are left alone.
 * Resolves when the release finished; rejects with what it threw.
 */
export async function disposeStream(value: unknown): Promise<void> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
  const v = value as { destroy?: unknown; return?: unknown; close?: unknown; next?: unknown };
  const streamLike = isAsyncIterable(value) || (typeof v.next === 'function' && typeof v.return === 'function');
  if (!streamLike) return;
  if (typeof v.destroy === 'function') await (v.destroy as () => unknown).call(value);
  else if (typeof v.return === 'function') await (v.return as () => unknown).call(value);
  else if (typeof v.close === 'function') await (v.close as () => unknown).call(value);
  else await (value as AsyncIterable<unknown>)[Symbol.asyncIterator]().return?.();
}
