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

/** What {@link pullLoop} sees of the stream it pulls for. */
export interface PullHost {
  /** The run being pulled now (another one, or none: this loop stops). */
  current(): PullRun | undefined;
  readonly inFlight: PullsInFlight;
  /** Whether an item may go out now (credit, and a socket that is not congested). */
  canSend(): boolean;
  /** No capacity: the run parks with its pending item (pump() resumes it). */
  park(run: PullRun): void;
  /** Sends a pulled item (taking its credit); false when the stream failed. */
  sendPulled(value: unknown): boolean;
  /** The iterator ended (undefined) or threw. */
  endPull(run: PullRun, outcome: IterationOutcome): void;
}

/**
 * Pulls `run` while it is the stream's current run: an item at a time, sent while capacity
 * lasts, then parked; yields to the event loop every {@link PULL_BATCH} items (a fast generator
 * resolves on microtasks only).
 */
export async function pullLoop(run: PullRun, host: PullHost): Promise<void> {
  let sinceYield = 0;
  while (host.current() === run) {
    if (run.pending === NONE) {
      if (++sinceYield > PULL_BATCH) {
        sinceYield = 0;
        await yieldToEventLoop();
        if (host.current() !== run) return;
      }
      let r: IteratorResult<unknown>;
      host.inFlight.begin();
      try {
        r = await run.iterator.next();
      } catch (error) {
        if (host.current() === run) host.endPull(run, { error });
        return;
      } finally {
        host.inFlight.end();
      }
      if (host.current() !== run) return; // stopped meanwhile; the stream closed the iterator
      if (r.done) {
        host.endPull(run, undefined);
        return;
      }
      run.pending = r.value;
    }
    if (!host.canSend()) {
      host.park(run);
      return;
    }
    const v = run.pending;
    run.pending = NONE;
    if (!host.sendPulled(v)) return;
  }
}
