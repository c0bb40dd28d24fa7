import { describeError } from '../connection/errors.js';
import { asError } from '../connection/frame-writer.js';
import { unavailable } from '../protocol/errors.js';
import type { ClusterLocalPeer } from './adapter.js';
import type { RemoteAnswerMessage } from './remote-messages.js';

/** What a served call needs of the calls it belongs to (`ServedCalls`). */
export interface ServedCallOwner {
  /** This replica's id. */
  readonly replica: string;
  /** Sends an answer to `to` (see `ServedCalls.answer`); `failed` runs if it cannot be sent. */
  answer(to: string, message: RemoteAnswerMessage, failed?: () => void): void;
  /** True while `to` may be sent more items. */
  hasRoom(to: string): boolean;
  /** `call` holds an item for `to` until it has room (then `flush()` is called). */
  wait(to: string, call: ServedCall): void;
  /** The call ended. */
  forget(from: string, id: number): void;
  /** Reports what no caller can be told. */
  report(error: Error): void;
}

/** How many microtask turns a held item waits for the step ahead before it goes alone. */
const AHEAD_TURNS = 8;
/** The microtask turns are promise reactions (cheaper than `queueMicrotask` under async hooks, which track each of those). */
const RESOLVED = Promise.resolve();

/** A step of the peer's response, or the error its `next()` failed with. */
type Pulled = { readonly step: IteratorResult<unknown> } | { readonly error: unknown };

/** The step pulled ahead of the item held, while it is awaited. */
interface Ahead {
  result: Pulled | undefined;
}

/** The `error` answer for `error`; `g` when the peer's connection is gone (the caller then knows it is). */
export function errorAnswer(i: number, error: unknown, peer: ClusterLocalPeer): RemoteAnswerMessage {
  return { t: 'error', i, ...wire(error), ...(peer.isConnected ? {} : { g: true }) };
}

/** An error as the `c`, `m`, `d` of an `error` answer: as a connection would put it in an ERROR frame. */
export function wire(error: unknown): { c: string; m: string; d?: unknown } {
  const { code, message, data } = describeError(error);
  return data === undefined ? { c: code, m: message } : { c: code, m: message, d: data };
}

/**
 * One call served for another replica: pulls the local peer's response only while the caller's
 * credit allows, forwards each item while the caller's replica has room for it (else holds it),
 * and `return()`s the iterator when cancelled (which cancels the call on the peer's connection).
 *
 * The last item goes with the end: while an item is held, the next step is pulled ahead (credit
 * allowing), and when it is the end within a few microtask turns, the item is sent as
 * `next` with `e` (one message for a unary answer, not `next` then `done`, and no `cancel` from a
 * caller that takes the first value). When the next step takes longer, the item goes without
 * waiting more, and the pull goes on as the next one.
 */
export class ServedCall {
  /**
   * `idle` (waiting for credit), `pulling` (a `next()` under way, nothing held), `holding` (an
   * item, until the step ahead settled or a few microtask turns passed, and the caller's replica has room), `ended`.
   */
  private phase: 'idle' | 'pulling' | 'holding' | 'ended' = 'idle';
  /** The item pulled, while `holding`. */
  private held: unknown;
  /** While `holding`: the call's last answer (its error), in place of an item: it waits for room as an item does (an error's data can be as large). */
  private last: RemoteAnswerMessage | undefined;
  /** While `holding`: the step pulled ahead, if any. */
  private ahead: Ahead | undefined;
  /** While `holding` with a step ahead: the turns to wait for it have passed (the item goes without it). */
  private waited = false;

  constructor(
    private readonly owner: ServedCallOwner,
    private readonly from: string,
    private readonly id: number,
    private readonly peer: ClusterLocalPeer,
    private readonly iterator: AsyncIterator<unknown>,
    /** Items the caller may still receive (Infinity: unlimited). */
    private credit: number,
  ) {}

  /** The caller granted `n` more items. */
  grant(n: number): void {
    if (this.phase === 'ended') return;
    this.credit += n;
    this.pump();
  }

  /** Stops the call and tells its caller UNAVAILABLE with `why` (now, or once the link is back). */
  abandon(why: string): void {
    if (this.phase === 'ended') return;
    this.cancel();
    this.owner.answer(this.from, { t: 'error', i: this.id, ...wire(unavailable(`cluster: ${why}`, { replica: this.owner.replica })) });
  }

  /** Stops the call (the caller cancelled, or is gone): no answer is sent. */
  cancel(): void {
    if (this.phase === 'ended') return;
    this.end();
    try {
      void Promise.resolve(this.iterator.return?.()).catch((e: unknown) => this.reportCleanup(e));
    } catch (e) {
      this.reportCleanup(e);
    }
  }

  /** Pulls while idle with credit; forwards items, the end, or the error. Never throws. */
  pump(): void {
    if (this.phase !== 'idle' || this.credit <= 0) return;
    this.phase = 'pulling';
    this.pull((result) => this.pulled(result));
  }

  /**
   * Sends the item held once it may go: the step ahead settled (or a turn passed), and the
   * caller's replica has room (else it waits for room, then this is called again).
   */
  flush(): void {
    if (this.phase !== 'holding') return;
    if (this.last) {
      if (!this.owner.hasRoom(this.from)) return this.owner.wait(this.from, this);
      const last = this.last;
      this.end();
      return this.owner.answer(this.from, last);
    }
    const ahead = this.ahead;
    if (ahead && !ahead.result && !this.waited) return; // called again when the step settles, or a turn passes
    if (!this.owner.hasRoom(this.from)) return this.owner.wait(this.from, this);
    const value = this.held;
    this.held = undefined;
    this.ahead = undefined;
    const result = ahead?.result;
    if (result && 'step' in result && result.step.done) {
      this.end();
      this.owner.answer(this.from, { t: 'next', i: this.id, v: value, e: true });
      return;
    }
    this.phase = ahead ? 'pulling' : 'idle'; // a step ahead still under way is the next pull
    this.owner.answer(this.from, { t: 'next', i: this.id, v: value }, () => this.cancel());
    if (result) this.pulled(result);
    else if (!ahead) this.pump();
  }

  /** A pull settled (phase `pulling`): hold its item, or end the call. */
  private pulled(result: Pulled): void {
    if (this.phase !== 'pulling') return; // cancelled meanwhile
    if ('error' in result) {
      this.phase = 'holding';
      this.last = errorAnswer(this.id, result.error, this.peer);
      return this.flush();
    }
    if (result.step.done) return this.finish({ t: 'done', i: this.id });
    this.credit--;
    this.phase = 'holding';
    this.held = result.step.value;
    this.ahead = undefined;
    if (this.credit > 0) {
      const ahead: Ahead = { result: undefined };
      this.ahead = ahead;
      this.waited = false;
      this.pull((r) => {
        if (this.ahead !== ahead) return this.pulled(r); // the item went already: this is the next pull
        ahead.result = r;
        this.flush();
      });
      // A few microtask turns, not a macrotask: an end already known (a unary answer) settles
      // in one or two, and an immediate or a timer per item would cost far more.
      let turns = 0;
      const wait = (): void => {
        if (this.ahead !== ahead || ahead.result) return;
        if (++turns < AHEAD_TURNS) return void RESOLVED.then(wait);
        this.waited = true;
        this.flush();
      };
      void RESOLVED.then(wait);
    }
    this.flush();
  }

  /** Calls the iterator's `next()`; `then` gets its step or its error (never throws, reports a bug). */
  private pull(then: (result: Pulled) => void): void {
    let pulled: Promise<IteratorResult<unknown>>;
    try {
      pulled = Promise.resolve(this.iterator.next());
    } catch (e) {
      pulled = Promise.reject(e);
    }
    pulled
      .then(
        (step) => then({ step }),
        (error: unknown) => then({ error }),
      )
      .catch((e: unknown) => this.owner.report(asError(e))); // a bug here must not become an unhandled rejection
  }

  private finish(message: RemoteAnswerMessage): void {
    this.end();
    this.owner.answer(this.from, message);
  }

  private end(): void {
    this.phase = 'ended';
    this.held = undefined;
    this.last = undefined;
    this.ahead = undefined;
    this.owner.forget(this.from, this.id);
  }

  private reportCleanup(e: unknown): void {
    this.owner.report(new Error(`cluster: cancelling call ${this.id} of replica ${this.from} failed: ${asError(e).message}`));
  }
}
