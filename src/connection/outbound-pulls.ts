import { isAsyncIterable, type IterationHandle } from './iteration.js';
import { newRun, NONE, pullLoop, PullsInFlight, type PullHost, type PullRun } from './pull-run.js';
import { Queue } from './queue.js';

/** What {@link OutboundPulls} needs of the {@link OutboundStream} it pulls for. */
export interface PullsHost {
  /** Whether an item may go out now (credit, and a socket that is not congested). */
  canSend(): boolean;
  /** Sends a pulled item, taking its credit; false when the stream failed. */
  sendPulled(value: unknown): boolean;
  /** Items waiting encoded in the stream's buffer. */
  bufferedItems(): number;
  /** Encodes an item pulled ahead into the stream's buffer (no strategy drops it); false when it did not fit and the stream failed. */
  bufferPending(value: unknown): boolean;
  /** Sends the oldest buffered item (a parked run's pending one), taking its credit; false when the stream failed. */
  sendHead(): boolean;
  /** Resumes the stream once it may send again (the socket drained; new credit resumes it anyway). */
  waitForCapacity(): void;
  /** Sends what follows a run that ended (buffered items, waiting runs, the terminal frame). */
  pump(): void;
  /** The source ended: completion (NONE) or the error to send. */
  endSource(error: unknown): void;
  /** Maps what a pulled iterator throws before it is sent. */
  mapPullError(error: unknown): unknown;
  /** Closes an iterator that will not be pulled further. */
  dispose(source: unknown): void;
}

/**
 * The iterators one outbound stream pulls: the run being pulled now, and the iterables an
 * Observable emitted that wait for their place in the stream (behind the items buffered before
 * them). One run is pulled at a time, by {@link pullLoop}; it parks when credit or the socket runs
 * out, and {@link OutboundPulls.resume} goes on with it.
 */
export class OutboundPulls {
  /** The run being pulled (or parked). */
  private run: PullRun | undefined;
  /** Iterables emitted by the Observable, each with the number of frames buffered before it. */
  private readonly waiting = new Queue<{ at: number; run: PullRun }>();
  private readonly inFlight = new PullsInFlight();
  /** The source is an iterable (no Observable pushes items between the pulled ones). */
  private pullOnly = false;

  constructor(private readonly host: PullsHost) {}

  /** The run being pulled now (or parked), if any. */
  get current(): PullRun | undefined {
    return this.run;
  }

  /** Whether a run is being pulled, or waits for its place. */
  get busy(): boolean {
    return this.run !== undefined || this.waiting.length > 0;
  }

  /** Whether a run waits for its place. */
  get hasWaiting(): boolean {
    return this.waiting.length > 0;
  }

  /** Calls `callback` once no iterator call is in flight (at once if none is). */
  whenIdle(callback: () => void): void {
    this.inFlight.whenIdle(callback);
  }

  /** Pulls the whole source (an iterable): its end is the stream's end. */
  pullSource(iterator: AsyncIterator<unknown> | Iterator<unknown>): void {
    this.pullOnly = true;
    this.start(newRun(iterator, (outcome) => this.host.endSource(outcome ? this.host.mapPullError(outcome.error) : NONE)));
  }

  /** An iterable an Observable emitted in a handle: its end reaches the Observable's operators. */
  ofHandle(handle: IterationHandle): PullRun {
    const { source } = handle;
    const iterator = isAsyncIterable(source) ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    return newRun(iterator, handle.settle);
  }

  /** An async iterable an Observable emitted without a handle: its error ends the stream. */
  nested(source: AsyncIterable<unknown>): PullRun {
    return newRun(source[Symbol.asyncIterator](), (outcome) => {
      if (outcome) this.host.endSource(this.host.mapPullError(outcome.error));
    });
  }

  /** Pulls `run` now. */
  start(run: PullRun): void {
    this.run = run;
    run.state = 'running';
    void pullLoop(run, this.loop);
  }

  /** `run` waits for its place: pulled once the first `at` items buffered have gone (see {@link OutboundPulls.startDue}). */
  queue(run: PullRun, at: number): void {
    this.waiting.push({ at, run });
  }

  /** Starts the first waiting run if its place has come (`removed`: items taken from the buffer so far); true when it did. */
  startDue(removed: number): boolean {
    const next = this.waiting.length > 0 ? this.waiting.peek()! : undefined;
    if (!next || removed < next.at) return false;
    this.waiting.shift();
    this.start(next.run);
    return true;
  }

  /** A run parked for credit or the socket: its pending item goes first, then the pull resumes. */
  resume(run: PullRun): void {
    if (run.state !== 'parked') return;
    if (run.buffered && this.host.canSend()) {
      run.buffered = false;
      if (!this.host.sendHead()) return;
    }
    if (!run.buffered && this.host.canSend()) this.start(run);
    else this.host.waitForCapacity();
  }

  /** Closes the iterator being pulled and those waiting. */
  stop(): void {
    const runs = this.run ? [this.run] : [];
    this.run = undefined;
    while (this.waiting.length > 0) runs.push(this.waiting.shift()!.run);
    for (const run of runs) this.host.dispose(run.iterator);
  }

  /** What the pull loop of the current run sees of the stream. */
  private readonly loop: PullHost = {
    current: () => this.run,
    inFlight: this.inFlight,
    canSend: () => this.host.canSend(),
    park: (run) => {
      run.state = 'parked'; // resume() resumes it
      if (this.parkPending(run)) this.host.waitForCapacity();
    },
    sendPulled: (v) => this.host.sendPulled(v),
    endPull: (run, outcome) => {
      this.run = undefined;
      run.settle(outcome);
      this.host.pump();
    },
  };

  /**
   * The item pulled ahead waits (for credit or the socket): encoded into the stream's buffer,
   * where the bounds count it, when the source is an iterable alone (an Observable that emits
   * iterables pushes items around the pulled ones: there the item waits as it is, one per stream).
   * False when it did not fit and the stream failed.
   */
  private parkPending(run: PullRun): boolean {
    if (run.pending === NONE || !this.pullOnly || this.host.bufferedItems() > 0) return true;
    const v = run.pending;
    run.pending = NONE;
    run.buffered = this.host.bufferPending(v);
    return run.buffered;
  }
}
