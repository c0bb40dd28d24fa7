import type { CallObserver, StartedCall } from './outgoing.js';
import { Queue } from './queue.js';

interface Waiter {
  resolve(result: IteratorResult<unknown>): void;
  reject(error: unknown): void;
}

/**
 * A call's response as an async iterator that pulls: the call starts on the first `next()`,
 * each item is reported consumed when `next()` hands it out (so credit follows the loop, not the
 * network), `return()` cancels. Concurrent `next()` calls are answered in order.
 */
export function callIterator(start: (observer: CallObserver) => StartedCall | undefined): AsyncIterableIterator<unknown> {
  const items = new Queue<unknown>();
  /** The estimated decoded size of each waiting item (released as it is handed out). */
  const costs = new Queue<number>();
  const waiters = new Queue<Waiter>();
  /** `pending`: not started; `running`; `failed`: the error is still to be thrown once; `done`. */
  let phase: 'pending' | 'running' | 'failed' | 'done' = 'pending';
  let failure: unknown;
  let call: StartedCall | undefined;

  const observer: CallObserver = {
    next: (value, cost = 0) => {
      if (phase !== 'running') return;
      const waiter = waiters.shift();
      if (!waiter) {
        // Waits for next(): charged to the connection until handed out. When it does not fit,
        // the call has failed (RESOURCE_EXHAUSTED) and observer.error follows.
        if (call && !call.hold(cost)) return;
        items.push(value);
        costs.push(cost);
        return;
      }
      call?.consumed();
      waiter.resolve({ value, done: false });
    },
    error: (error) => {
      if (phase !== 'running') return;
      const waiter = waiters.shift();
      if (waiter) {
        phase = 'done';
        waiter.reject(error);
        settleWaiters();
      } else {
        phase = 'failed';
        failure = error;
      }
    },
    complete: () => {
      if (phase !== 'running') return;
      phase = 'done';
      settleWaiters();
    },
  };

  function settleWaiters(): void {
    for (let w = waiters.shift(); w; w = waiters.shift()) w.resolve({ value: undefined, done: true });
  }

  const iterator: AsyncIterableIterator<unknown> = {
    next: (): Promise<IteratorResult<unknown>> => {
      if (phase === 'pending') {
        phase = 'running';
        call = start(observer);
      }
      if (items.length > 0) {
        const value = items.shift();
        call?.consumed(costs.shift());
        return Promise.resolve({ value, done: false });
      }
      if (phase === 'failed') {
        phase = 'done';
        return Promise.reject(failure);
      }
      if (phase === 'done') return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
    return: (): Promise<IteratorResult<unknown>> => {
      // Not started: a later next() must not start it either.
      if (phase === 'running') call?.cancel();
      phase = 'done';
      items.clear();
      costs.clear();
      settleWaiters();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
