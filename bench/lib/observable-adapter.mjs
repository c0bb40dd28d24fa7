// The row adapter for clients whose calls are Observables (Nest's ClientProxy API): unary calls
// through firstValueFrom, streams counted in a subscriber, cancellation by unsubscribing.
import { concatMap, firstValueFrom, map, timer } from 'rxjs';
import { now } from './clock.mjs';

/**
 * The adapter for a client whose calls are Observables without backpressure (TCP, gRPC): the
 * slow consumer is `concatMap` over a 1 ms timer, as an rxjs user would write it.
 */
export function observableAdapter(calls) {
  const countItems = (items$) =>
    new Promise((resolve, reject) => {
      let received = 0;
      items$.subscribe({ next: () => received++, error: reject, complete: () => resolve(received) });
    });
  return {
    echo: (obj) => firstValueFrom(calls.echo(obj)),
    bin: (bytes) => firstValueFrom(calls.bin(bytes)),
    stream: (count) => countItems(calls.stream(count)),
    streamSync: (count) => countItems(calls.streamSync(count)),
    ticks: (tag, after) =>
      new Promise((resolve, reject) => {
        let received = 0;
        const sub = calls.ticks(tag).subscribe({
          next: () => {
            if (++received === after) {
              const tUnsub = now();
              sub.unsubscribe();
              resolve({ tUnsub, received });
            }
          },
          error: reject,
          complete: () => reject(new Error('endless stream completed')),
        });
      }),
    slow: (tag, limit, durationMs) =>
      new Promise((resolve, reject) => {
        const end = performance.now() + durationMs;
        let consumed = 0;
        const sub = calls
          .slow(tag, limit)
          .pipe(concatMap((it) => timer(1).pipe(map(() => it)))) // the consumer's work: ~1 item/ms
          .subscribe({
            next: () => {
              consumed++;
              if (performance.now() >= end) {
                sub.unsubscribe();
                resolve({ consumed });
              }
            },
            error: reject,
            complete: () => resolve({ consumed }),
          });
      }),
    close: () => calls.close(),
  };
}
