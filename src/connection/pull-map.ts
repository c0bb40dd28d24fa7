import { from, mergeMap, Observable, Subject, takeUntil, type ObservableInput, type OperatorFunction } from 'rxjs';
import { inboundStreamOf } from './inbound-stream.js';

/**
 * `concatMap` that paces the sender: on a request stream ({@link WsRequestStream}) it takes the
 * next item only once `project`'s result for the previous one has completed, so the caller sends
 * no faster than the handler works (credit follows, as with `for await`). Use it as the first
 * operator on the request stream: after another operator the source is a plain Observable, and it
 * behaves as `concatMap` (items buffer inside rxjs).
 *
 * ```ts
 * @WsMessagePattern('import')
 * importRows(@Payload() rows: WsRequestStream<Row>) {
 *   return rows.pipe(wsConcatMap((row) => this.repo.insert(row)), count());
 * }
 * ```
 */
export function wsConcatMap<T, R>(project: (item: T, index: number) => ObservableInput<R>): OperatorFunction<T, R> {
  return wsMergeMap(project, 1);
}

/**
 * `mergeMap` with at most `concurrency` results of `project` running at once, that paces the
 * sender: on a request stream ({@link WsRequestStream}) it takes an item only while fewer than
 * `concurrency` are running, so the caller is at most a credit window ahead of the handler. On any
 * other Observable (for example after another operator) it is `mergeMap(project, concurrency)`.
 * Unsubscribing stops the request stream (the caller is refused further items).
 */
export function wsMergeMap<T, R>(project: (item: T, index: number) => ObservableInput<R>, concurrency: number): OperatorFunction<T, R> {
  if (!(concurrency >= 1)) throw new RangeError(`nestjs-ws-msgpack: wsMergeMap concurrency must be a number >= 1, got ${String(concurrency)}`);
  return (source) => (inboundStreamOf(source) ? pulled(source as Observable<T> & AsyncIterable<T>, project, concurrency) : source.pipe(mergeMap(project, concurrency)));
}

/** `source` pulled with up to `concurrency` of `project`'s results running at once. */
function pulled<T, R>(source: AsyncIterable<T>, project: (item: T, index: number) => ObservableInput<R>, concurrency: number): Observable<R> {
  return new Observable<R>((subscriber) => {
    const items = source[Symbol.asyncIterator]();
    /** Emits once the output is unsubscribed: the results still running stop. */
    const stopped = new Subject<void>();
    /** `pulling`: a next() is under way; `idle`: waiting for a result to complete; `ended`: the source has no more. */
    let phase: 'idle' | 'pulling' | 'ended' = 'idle';
    let index = 0;
    let active = 0;

    const finishIfDone = (): void => {
      if (phase === 'ended' && active === 0 && !subscriber.closed) subscriber.complete();
    };

    const run = (item: T): void => {
      active++;
      // takeUntil(stopped) subscribes its own subscriber before the result's source runs, so an
      // unsubscribe during a synchronous emission (take(1) after a range) stops that source at once.
      from(project(item, index++))
        .pipe(takeUntil(stopped))
        .subscribe({
          next: (value) => subscriber.next(value),
          error: (error: unknown) => subscriber.error(error),
          complete: () => {
            active--;
            finishIfDone();
            void pull();
          },
        });
    };

    const pull = async (): Promise<void> => {
      if (phase !== 'idle') return;
      phase = 'pulling';
      try {
        while (!subscriber.closed && active < concurrency) {
          const result = await items.next();
          if (subscriber.closed) return;
          if (result.done) {
            phase = 'ended';
            return finishIfDone();
          }
          run(result.value);
        }
      } catch (error) {
        subscriber.error(error);
      } finally {
        if (phase === 'pulling') phase = 'idle';
      }
    };

    void pull();
    return () => {
      stopped.next();
      stopped.complete();
      if (phase !== 'ended') void items.return?.();
    };
  });
}
