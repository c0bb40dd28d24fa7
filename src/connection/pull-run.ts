import type { IterationOutcome } from './iteration.js';
import { WhenEmpty } from './when-empty.js';

/** "No value" (an item slot that is empty), distinct from every value a source may produce. */
export const NONE: unique symbol = Symbol('none');

/** Items pulled from an iterator before the pull yields to the event loop. */
export const PULL_BATCH = 128;

/** Lets I/O and other streams run (a fast generator resolves on microtasks only). */
export const yieldToEventLoop: () => Promise<void> =
  typeof setImmediate === 'function' ? () => new Promise((resolve) => setImmediate(resolve)) : () => new Promise((resolve) => setTimeout(resolve, 0));

/** One iterator an outbound stream is pulling, or will pull. */
export interface PullRun {
  readonly iterator: AsyncIterator<unknown> | Iterator<unknown>;
  /** How the end of the pull is reported. */
  readonly settle: (outcome: IterationOutcome) => void;
  /** The item pulled ahead, waiting for credit (NONE: none). */
  pending: unknown;
  /** `running`: awaiting the iterator or sending; `parked`: waiting for credit or the socket. */
  state: 'running' | 'parked';
  /** The pending item waits encoded at the head of the stream's buffer (counted in its bounds). */
  buffered: boolean;
}

/** A new run of `iterator`, its end reported to `settle`. */
export function newRun(iterator: AsyncIterator<unknown> | Iterator<unknown>, settle: (outcome: IterationOutcome) => void): PullRun {
  return { iterator, settle, pending: NONE, state: 'running', buffered: false };
}

/**
 * Iterator calls (`next()`) being awaited. A stream stopped while its generator runs cannot
 * interrupt it: the generator's body goes on until its next `yield`, and only then does
 * `return()` run its `finally`. Who needs to know when that has happened waits here.
 */
export class PullsInFlight {
  private count = 0;
  private readonly emptied = new WhenEmpty();

  /** A `next()` call starts. */
  begin(): void {
    this.count++;
  }

  /** A `next()` call settled. */
  end(): void {
    this.emptied.check(--this.count === 0);
  }

  /** Calls `callback` once no `next()` call is awaited (at once if none is). */
  whenIdle(callback: () => void): void {
    this.emptied.wait(this.count === 0, callback);
  }
}
