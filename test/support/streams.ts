import { RpcException } from '@nestjs/microservices';
import { Observable } from 'rxjs';
import { WsMsgpackError } from '../../src/index.js';

/**
 * What a server-side handler did during one call, recorded by the handler itself (tests and
 * server run in one process). Each call gets its own probe, named by a tag the test sends.
 */
export class Probe {
  /** The handler was entered. */
  started = 0;
  /** Items the producer made (counted in the producer, before they reach the transport). */
  produced = 0;
  /** `next()` calls on a pull source. */
  pulls = 0;
  /** `finalize` / generator `finally` / abort cleanup ran. */
  finalized = 0;
  /** The handler finished its work normally (e.g. a sleep that ran to the end). */
  completed = 0;
  /** The call's AbortSignal, once the handler saw it. */
  signal: AbortSignal | undefined;
  /** Reasons of the aborts observed through `signal` (in order). */
  readonly abortReasons: unknown[] = [];

  /** Records `signal` and every abort of it. */
  watch(signal: AbortSignal): this {
    this.signal = signal;
    if (signal.aborted) this.abortReasons.push(signal.reason);
    else signal.addEventListener('abort', () => this.abortReasons.push(signal.reason), { once: true });
    return this;
  }

  /** The code of the abort reason (a WsMsgpackError), if aborted. */
  get abortCode(): string | undefined {
    return codeOf(this.signal?.reason);
  }
}

/** Probes by tag; `get` creates on first use. */
export class Probes {
  private readonly map = new Map<string, Probe>();

  get(tag: string): Probe {
    let p = this.map.get(tag);
    if (!p) {
      p = new Probe();
      this.map.set(tag, p);
    }
    return p;
  }
}

/** `code` of a WsMsgpackError (or of any object with a string `code`). */
export function codeOf(e: unknown): string | undefined {
  if (e instanceof WsMsgpackError) return e.code;
  const c = (e as { code?: unknown } | null | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** A promise the test resolves by hand. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const promise = new Promise<void>((r) => {
    open = r;
  });
  return { promise, open };
}

/**
 * An endless push producer: a setInterval that counts every item it makes in `probe.produced`
 * (so the count only stops when the producer itself is torn down), and counts its teardown in
 * `probe.finalized`.
 */
export function ticker(probe: Probe, ms = 5): Observable<number> {
  return new Observable<number>((subscriber) => {
    let i = 0;
    const t = setInterval(() => {
      probe.produced++;
      subscriber.next(i++);
    }, ms);
    return () => {
      clearInterval(t);
      probe.finalized++;
    };
  });
}

/** Client-side counters of a request-stream source. */
export interface SourceStats {
  pulls: number;
  finalized: number;
}

/** An endless async generator 0, 1, 2, …, counting pulls and its `finally`. */
export async function* endless(stats: SourceStats): AsyncGenerator<number> {
  try {
    for (let i = 0; ; i++) {
      stats.pulls++;
      yield i;
    }
  } finally {
    stats.finalized++;
  }
}

/**
 * Resolves after `predicate()` held on `polls` consecutive polls one macrotask (≥ 2 ms) apart;
 * rejects as soon as it does not hold. Used to show that something *stops* (a counter stays put
 * while the event loop keeps turning), not to measure time.
 */
export async function holds(predicate: () => boolean, what = 'condition', polls = 30): Promise<void> {
  for (let i = 0; i < polls; i++) {
    if (!predicate()) throw new Error(`${what} stopped holding after ${i} polls`);
    await new Promise((r) => setTimeout(r, 2));
  }
  if (!predicate()) throw new Error(`${what} stopped holding after ${polls} polls`);
}

/**
 * A handler's own slow work (the scenario, not a test wait): resolves with `done` after `ms`
 * unless `signal` aborts first, which clears the timer and rejects (an RpcException, so Nest does
 * not log it). Counts `started`, `completed` or `finalized` on the probe.
 */
export function abortableDelay(p: Probe, ms: number, signal: AbortSignal, done: string): Promise<string> {
  p.watch(signal);
  p.started++;
  return new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      p.completed++;
      resolve(done);
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      p.finalized++;
      reject(new RpcException('aborted'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

let tagSeq = 0;
/** A tag unique within the test file, naming one call's probe. */
export const newTag = (name: string): string => `${name}-${++tagSeq}`;
