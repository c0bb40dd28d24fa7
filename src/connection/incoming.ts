import { ProtocolViolation, WsMsgpackError, WsMsgpackErrorCode, cancelled, deadlineExceeded, resourceExhausted, unimplemented } from '../protocol/errors.js';
import { FrameType, MAX_CALL_ID, type CompleteFrame, type ErrorFrame, type WsMsgpackCallHeaders, type NextFrame, type RequestFrame } from '../protocol/frames.js';
import { errorFromFrame, fromRequestStream } from './errors.js';
import type { BufferBudget } from './frame-queue.js';
import type { FrameWriter } from './frame-writer.js';
import { InboundStream } from './inbound-stream.js';
import { LazyAbort } from './lazy-abort.js';
import type { ResolvedLimits } from './options.js';
import { OutboundStream } from './outbound-stream.js';
import type { OutboundSource, StreamSink } from './outbound-types.js';
import { startTimer, type Timer } from './timers.js';
import { WhenEmpty } from './when-empty.js';

/** A call the peer started, as given to the request handler. */
export interface IncomingCall {
  /** The call id (peer's id space). */
  readonly id: number;
  /** The pattern as sent. */
  readonly pattern: unknown;
  /** The request data; an Observable of the items for a request stream. */
  readonly payload: unknown;
  /** True when `payload` is a request stream. */
  readonly isStream: boolean;
  /** Headers sent with the call (empty object when none). */
  readonly headers: WsMsgpackCallHeaders;
  /** Aborted when the call is cancelled, passes its deadline, breaks the protocol, or the connection closes. */
  readonly signal: AbortSignal;
  /** Absolute deadline (ms since epoch), when the caller set one. */
  readonly deadline: number | undefined;
  /**
   * Runs `callback` once when the call ends on this side: answered, failed, cancelled, past its
   * deadline, or cut off by the connection closing (at once if it already has).
   */
  onEnd(callback: () => void): void;
  /** Reports an error that no caller can be told about (the connection's error listeners). */
  report(error: unknown): void;
}

/** Produces the response of an incoming call: a value source or a promise of one. */
export type RequestHandler = (call: IncomingCall) => OutboundSource | Promise<OutboundSource>;

/** What the incoming calls need from their connection. */
export interface IncomingHost {
  readonly writer: FrameWriter;
  readonly sink: StreamSink;
  readonly limits: ResolvedLimits;
  readonly budget: BufferBudget;
  /** What the peer's frames hold here (maxInboundBytes). */
  readonly inbound: BufferBudget;
  /** Maps what a pulled iterator throws (the server applies Nest's default exception filter). */
  readonly mapStreamError: ((error: unknown) => unknown) | undefined;
  /** Runs a user callback so that what it throws is reported, never blamed on the peer. */
  guard(callback: () => void): void;
  /** Reports an error that no caller can be told about. */
  report(error: unknown): void;
}

interface IncomingState {
  readonly id: number;
  readonly abort: LazyAbort;
  readonly response: OutboundStream;
  readonly input: InboundStream | undefined;
  readonly deadline: number | undefined;
  readonly timer: Timer | undefined;
  /** The REQUEST's estimated decoded size, charged to `inbound` until the call ends and its handler has stopped. */
  readonly cost: number;
  /** A handler still running after its call ended has returned. */
  lingered?: () => void;
  /** Run once when the call ends on this side, however it ends. */
  readonly onEnd: (() => void)[];
  /**
   * The handler: `running` (being called), `pending` (its promise has not settled), `lingering`
   * (still pending after the call ended: counted against maxConcurrentCalls), `returned`.
   */
  handler: 'running' | 'pending' | 'lingering' | 'returned';
}

const EMPTY_HEADERS: WsMsgpackCallHeaders = Object.freeze({}) as WsMsgpackCallHeaders;

/**
 * The calls the peer started: accepting them (id rules, the concurrency limit), the handler's
 * response stream, the request stream, cancellation and the deadline.
 */
export class IncomingCalls {
  private readonly calls = new Map<number, IncomingState>();
  private lastPeerId = 0;
  /**
   * Slots still held by calls that ended (cancelled, past their deadline): one while the
   * handler's promise is pending, one while a generator it returned is still running.
   */
  private lingering = 0;

  constructor(private readonly host: IncomingHost) {}

  /** Set while draining: new REQUESTs are answered with this error. */
  private refusing: WsMsgpackError | undefined;

  /** From now on, new REQUESTs are answered with `error` (a draining server); running calls go on. */
  refuseNew(error: WsMsgpackError): void {
    this.refusing = error;
  }

  /** Calls still running here. */
  get size(): number {
    return this.calls.size;
  }

  /** Resolves once no call of the peer is running here (at once if none is). */
  whenNone(): Promise<void> {
    return this.emptied.promise(this.calls.size === 0);
  }

  private readonly emptied = new WhenEmpty();

  /** What `maxConcurrentCalls` counts: running calls, and ended ones whose handler has not returned yet. */
  get busy(): number {
    return this.calls.size + this.lingering;
  }

  /** A REQUEST from the peer (its id already checked to be in the peer's space). */
  /**
   * Answers a keep-alive call (`wsmp:ping`) at once with COMPLETE, also while refusing calls:
   * it is not a call of the application's, only proof that this side is alive.
   * `overtaking`: the peer's earlier calls are still held (the connected hook runs).
   */
  answerPing(frame: RequestFrame, overtaking = false): void {
    if (frame.id <= this.lastPeerId) throw new ProtocolViolation(`REQUEST id ${frame.id} was already used (ids must increase)`, frame.id, frame.type);
    // Answered ahead of held calls with lower ids (`overtaking`), it must not make those look reused.
    if (!overtaking) this.lastPeerId = frame.id;
    this.host.writer.sendControl({ type: FrameType.COMPLETE, id: frame.id, hasValue: false });
  }

  /** `cost`: the frame's estimated decoded size, held against `maxInboundBytes` while the call runs. */
  accept(frame: RequestFrame, handler: RequestHandler | undefined, cost = 0): void {
    if (!this.admit(frame)) return;
    const st = this.open(frame, cost);
    this.run(st, this.callOf(frame, st), handler);
  }

  /** Checks a REQUEST's id, then whether a new call may start (refusing, concurrency limit): refused ones are answered here. */
  private admit(frame: RequestFrame): boolean {
    const { id } = frame;
    const { writer, limits } = this.host;
    if (id <= this.lastPeerId) throw new ProtocolViolation(`REQUEST id ${id} was already used (ids must increase)`, id, frame.type);
    this.lastPeerId = id;
    if (this.refusing) {
      writer.sendError(id, this.refusing);
      return false;
    }
    if (this.busy >= limits.maxConcurrentCalls) {
      writer.sendError(id, resourceExhausted(`too many concurrent calls on this connection (limit ${limits.maxConcurrentCalls})`));
      return false;
    }
    return true;
  }

  /** The state of a new call: its abort, response stream, request stream, deadline; tracked and charged from here. */
  private open(frame: RequestFrame, cost: number): IncomingState {
    const { id } = frame;
    const { writer, limits } = this.host;
    const abort = new LazyAbort();
    const input = frame.stream
      ? new InboundStream(limits.window, (credit) => writer.sendControl({ type: FrameType.CREDIT, id, credit }), {
          budget: this.host.inbound,
          maxBytes: limits.maxStreamBufferBytes,
        })
      : undefined;
    const response = new OutboundStream(this.host.sink, id, {
      credit: frame.credit ?? Infinity,
      overflow: frame.overflow ?? limits.overflow,
      maxBytes: limits.maxStreamBufferBytes,
      budget: this.host.budget,
      onEnd: () => this.end(id),
      mapPullError: this.host.mapStreamError,
      // The response failed here (the socket went away, overflow, an unsendable item): the
      // handler's signal says so, as for a cancel or a deadline.
      beforeFail: (error) => abort.abort(error),
    });
    const deadline = frame.timeout === undefined ? undefined : Date.now() + frame.timeout;
    const timer =
      frame.timeout === undefined
        ? undefined
        : startTimer(frame.timeout, () => {
            const err = deadlineExceeded(`deadline of ${frame.timeout} ms exceeded`);
            abort.abort(err);
            response.fail(err);
          });
    const st: IncomingState = { id, abort, response, input, deadline, timer, cost, onEnd: [], handler: 'running' };
    this.calls.set(id, st);
    this.host.inbound.charge(cost);
    // The requester sends no stream item before the first CREDIT; window 0 (unlimited) grants all at once.
    if (input) writer.sendControl({ type: FrameType.CREDIT, id, credit: input.window > 0 ? input.window : MAX_CALL_ID });
    return st;
  }

  /** The call as the request handler sees it. */
  private callOf(frame: RequestFrame, st: IncomingState): IncomingCall {
    const { abort, response } = st;
    return {
      id: st.id,
      pattern: frame.pattern,
      payload: st.input ? st.input.observable : frame.payload,
      isStream: frame.stream,
      headers: frame.headers ?? EMPTY_HEADERS,
      get signal() {
        return abort.signal;
      },
      deadline: st.deadline,
      onEnd: (callback) => {
        if (response.isFinished) this.host.guard(callback);
        else st.onEnd.push(callback);
      },
      report: this.host.report,
    };
  }

  /** Runs the handler; its result (or the promise of one) becomes the response. */
  private run(st: IncomingState, call: IncomingCall, handler: RequestHandler | undefined): void {
    const { response } = st;
    let result: OutboundSource | Promise<OutboundSource>;
    try {
      if (!handler) throw unimplemented('this peer does not answer calls');
      result = handler(call);
    } catch (e) {
      response.fail(e);
      return;
    }
    if (!(result instanceof Promise)) {
      st.handler = 'returned';
      response.start(result);
      return;
    }
    // A result that arrives after the call ended is disposed of by start().
    st.handler = 'pending';
    result.then(
      (source) => {
        this.handlerReturned(st);
        response.start(source);
      },
      (e: unknown) => {
        this.handlerReturned(st);
        response.fail(e);
      },
    );
  }

  /** A request-stream item; `cost`: its estimated decoded size. */
  onNext(frame: NextFrame, cost = 0): void {
    const st = this.calls.get(frame.id);
    if (!st?.input) return;
    if (!st.input.push(frame.value, cost)) {
      throw new ProtocolViolation(`request-stream NEXT beyond granted credit (window ${st.input.window})`, frame.id, frame.type);
    }
  }

  /** The request stream ended. */
  onComplete(frame: CompleteFrame, cost = 0): void {
    const input = this.calls.get(frame.id)?.input;
    if (!input) return;
    if (frame.hasValue && !input.push(frame.value, cost)) {
      throw new ProtocolViolation(`request-stream COMPLETE value beyond granted credit (window ${input.window})`, frame.id, frame.type);
    }
    input.complete();
  }

  /** The requester failed its request stream: the handler's input errors; the call goes on. */
  onError(frame: ErrorFrame, cost = 0): void {
    this.calls.get(frame.id)?.input?.error(fromRequestStream(errorFromFrame(frame)), cost);
  }

  /** Credit for the response of call `id`. */
  onCredit(id: number, n: number): void {
    this.calls.get(id)?.response.addCredit(n);
  }

  /**
   * The requester cancelled: the handler is aborted and its output stopped; nothing is sent. The
   * reason is the one the CANCEL carries (DEADLINE_EXCEEDED when the requester's deadline timer
   * fired, which can beat ours); without one, DEADLINE_EXCEEDED only if the deadline has passed here too.
   */
  onCancel(id: number, reason?: typeof WsMsgpackErrorCode.DEADLINE_EXCEEDED): void {
    const st = this.calls.get(id);
    if (!st) return; // cancel for an unknown or finished call: ignored
    const expired = reason === WsMsgpackErrorCode.DEADLINE_EXCEEDED || (st.deadline !== undefined && Date.now() >= st.deadline);
    st.abort.abort(expired ? deadlineExceeded('the call passed its deadline') : cancelled('the caller cancelled the call'));
    st.response.stop();
  }

  /**
   * The peer broke the protocol on call `id`: the call fails with `error` (sent to the peer).
   * `isRequest`: the frame was a REQUEST in the peer's id space; refused, it still uses its id.
   */
  onViolation(id: number, error: WsMsgpackError, isRequest: boolean): void {
    if (isRequest && id > this.lastPeerId) this.lastPeerId = id;
    const st = this.calls.get(id);
    if (st) {
      st.abort.abort(error);
      st.response.fail(error);
    } else {
      this.host.writer.sendError(id, error);
    }
  }

  /** The connection ended: every handler is aborted with `error`. */
  abortAll(error: WsMsgpackError): void {
    for (const st of [...this.calls.values()]) {
      st.abort.abort(error);
      st.response.stop();
    }
  }

  private handlerReturned(st: IncomingState): void {
    if (st.handler === 'lingering') {
      this.lingering--;
      st.lingered?.();
    }
    st.handler = 'returned';
  }

  private end(id: number): void {
    const st = this.calls.get(id);
    if (!st) return;
    this.calls.delete(id);
    this.emptied.check(this.calls.size === 0);
    // The request stays charged until nothing of the handler runs any more: it still holds it.
    let running = 1;
    const stopped = (): void => {
      if (--running > 0) return;
      this.host.inbound.charge(-st.cost);
      st.input?.detach();
    };
    if (st.handler === 'pending') {
      st.handler = 'lingering'; // a handler that ignores its abort signal still holds a slot
      this.lingering++;
      running++;
      st.lingered = stopped;
    }
    // So does a generator stopped while it runs: it goes on until its next yield.
    this.lingering++;
    st.response.whenIdle(() => {
      this.lingering--;
      stopped();
    });
    st.timer?.cancel();
    st.input?.close(st.abort.reason ?? cancelled('the call ended before its request stream did'));
    for (const callback of st.onEnd) this.host.guard(callback);
  }
}
