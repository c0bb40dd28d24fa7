// Data and sources shared by every row, so each row moves exactly the same values.
import { Observable } from 'rxjs';

/** The small object of the unary scenarios (the .proto mirrors it as `Small`). */
export const SMALL = Object.freeze({ id: 42, name: 'echo', ok: true, tags: [1, 2, 3] });

/** One stream item: `{ i, name }`. */
export const item = (i) => ({ i, name: 'bench-item' });

/** One slow-consumer item: `{ i, data }` with a fresh 1 KiB string (fresh so that buffered items cost memory). */
export const slowItem = (i) => ({ i, data: Buffer.alloc(1024, 97 + (i % 26)).toString('latin1') });

/** A deterministic binary payload (not all zeros, so a mangled copy shows). */
export function makeBinary(size) {
  const buf = Buffer.allocUnsafe(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Items a push source emits per event-loop turn (the transport under test pulls generators 128 at a time too). */
export const BATCH = 128;

/**
 * A fast asynchronous push source, as a database cursor or a file reader behind an Observable
 * would be: `count` items made by `make(i)`, BATCH per event-loop turn, stopping as soon as it
 * is unsubscribed. `onStart`/`onItem`/`onStop` are the probe hooks of the memory and cancel
 * scenarios (onStop runs on completion and on unsubscribe alike).
 */
export function chunkedSource(count, make, hooks = {}) {
  return new Observable((subscriber) => {
    let i = 0;
    let timer;
    hooks.onStart?.();
    const pump = () => {
      timer = undefined;
      for (let k = 0; k < BATCH && i < count && !subscriber.closed; k++) {
        hooks.onItem?.();
        subscriber.next(make(i++));
      }
      if (subscriber.closed) return;
      if (i >= count) subscriber.complete();
      else timer = setImmediate(pump);
    };
    timer = setImmediate(pump);
    return () => {
      if (timer) clearImmediate(timer);
      hooks.onStop?.();
    };
  });
}
