import { isObservable } from 'rxjs';
import { ProtocolViolation, WsMsgpackError, WsMsgpackErrorCode, deadlineExceeded, resourceExhausted } from '../protocol/errors.js';
import { FrameType, type CompleteFrame, type ErrorFrame, type NextFrame, type RequestFrame } from '../protocol/frames.js';
import { byteCap, InboundCredit } from './credit.js';
import { errorFromFrame } from './errors.js';
import type { BufferBudget } from './frame-queue.js';
import type { FrameWriter } from './frame-writer.js';
import { isAsyncIterable, isStreamIterable } from './iteration.js';
import type { ResolvedLimits, WsMsgpackCallOptions } from './options.js';
import { OutboundStream } from './outbound-stream.js';
import type { OutboundSource, StreamSink } from './outbound-types.js';
import { startTimer, type Timer } from './timers.js';
import { WhenEmpty } from './when-empty.js';

/** Where a call's response goes (an rxjs Subscriber, or an iterator's buffer). */
export interface CallObserver {
  /** A response item; `cost` is its estimated decoded size (what holding it costs, see {@link StartedCall.hold}). */
  next(value: unknown, cost?: number): void;
  error(error: unknown): void;
  complete(): void;
}

/** A call this side started, as its starter holds it. */
export interface StartedCall {
  /**
   * A response item of estimated decoded size `cost` waits for the consumer: charged to the
   * connection's `maxInboundBytes` until {@link consumed} (or the end of the call). False when it
   * does not fit: the call has then failed with RESOURCE_EXHAUSTED and been cancelled.
   */
  hold(cost: number): boolean;
  /** One response item reached the consumer (`cost`: what {@link hold} charged for it): tops the credit up when due. */
  consumed(cost?: number): void;
  /** Gives up on the call (CANCEL); nothing more reaches the observer. */
  cancel(): void;
}

/** What the outgoing calls need from their connection. */
export interface OutgoingHost {
  readonly writer: FrameWriter;
  readonly sink: StreamSink;
  readonly limits: ResolvedLimits;
  readonly budget: BufferBudget;
  /** What the peer's frames hold here (maxInboundBytes). */
  readonly inbound: BufferBudget;
  /** The error calls fail with once the connection has closed; undefined while it is open. */
  closedError(keepAlive: boolean): WsMsgpackError | undefined;
}

interface OutgoingCall {
  readonly id: number;
  readonly observer: CallObserver;
  readonly credit: InboundCredit;
  /** Grant credit as items reach the observer (an Observable), not as the starter consumes them (an iterator). */
  readonly autoCredit: boolean;
  request: OutboundStream | undefined;
  timer: Timer | undefined;
  /** Bytes of response items waiting for the consumer, charged to `inbound`. */
  held: number;
  /** Response items received and their bytes (the average item size, for byte-aware credit). */
  receivedItems: number;
  receivedBytes: number;
  /** `running` until a terminal frame, a cancel, the deadline or the end of the connection. */
  phase: 'running' | 'ended';
}

/**
 * The calls this side started: their ids (this side's parity), the REQUEST frame, the response
 * items and their credit, the request stream if any, the deadline, and giving up (CANCEL).
 */
export class OutgoingCalls {
  private readonly calls = new Map<number, OutgoingCall>();

  constructor(
    private readonly host: OutgoingHost,
    /** The first id: 1 for the client, 2 for the server; each next one is 2 more. */
    private nextId: number,
  ) {}

  /** Calls waiting on the peer. */
  get size(): number {
    return this.calls.size;
  }

  /** Resolves once none of this side's calls is waiting on the peer (at once if none is). */
  whenNone(): Promise<void> {
    return this.emptied.promise(this.calls.size === 0);
  }

  private readonly emptied = new WhenEmpty();

  /**
   * Sends REQUEST and tracks the call; `undefined` when it could not start (the observer has
   * then been told why). `autoCredit`: grant credit as items reach the observer (an Observable)
   * instead of when the starter reports them consumed (an iterator).
   */
  start(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions, observer: CallObserver, autoCredit: boolean): StartedCall | undefined {
    const closed = this.host.closedError(options.keepAlive === true);
    if (closed) {
      observer.error(closed);
      return undefined;
    }
    const { limits } = this.host;
    const id = this.nextId;
    this.nextId += 2;
    const window = options.window ?? limits.window;
    const isStream = isStreamSource(payload);
    const frame: RequestFrame = { type: FrameType.REQUEST, id, pattern, payload: isStream ? undefined : payload, stream: isStream };
    if (options.headers !== undefined) frame.headers = options.headers;
    if (window > 0) frame.credit = window;
    // A non-finite timeout (Infinity) means no deadline.
    if (options.timeout !== undefined && options.timeout > 0 && Number.isFinite(options.timeout)) frame.timeout = Math.ceil(options.timeout);
    if (options.overflow !== undefined) frame.overflow = options.overflow;
    try {
      if (options.keepAlive !== true) this.host.writer.assertRoom();
      this.host.writer.send(frame);
    } catch (e) {
      observer.error(e);
      return undefined;
    }
    const call: OutgoingCall = {
      id,
      observer,
      credit: new InboundCredit(window),
      autoCredit,
      request: undefined,
      timer: undefined,
      held: 0,
      receivedItems: 0,
      receivedBytes: 0,
      phase: 'running',
    };
    this.calls.set(id, call);
    if (frame.timeout !== undefined) {
      const ms = frame.timeout;
      const declared = options.declaredTimeout ?? ms;
      call.timer = startTimer(ms, () => this.abandon(call, deadlineExceeded(`deadline of ${declared} ms exceeded`)));
    }
    if (isStream) {
      // The request stream starts with no credit: the responder's first CREDIT opens it.
      call.request = new OutboundStream(this.host.sink, id, {
        credit: 0,
        overflow: options.overflow ?? limits.overflow,
        maxBytes: limits.maxStreamBufferBytes,
        budget: this.host.budget,
        onEnd: () => {},
        // Overflow or an unsendable item on this side: the caller hears it, and the call is off.
        onFail: (error) => this.abandon(call, error),
      });
      call.request.start(payload as OutboundSource);
    }
    return {
      hold: (cost) => this.hold(call, cost),
      consumed: (cost = 0) => {
        if (call.phase === 'running' && cost > 0) this.release(call, cost);
        this.consumed(call);
      },
      cancel: () => {
        if (call.phase === 'ended') return;
        this.abandon(call);
        this.host.writer.flush(); // a cancel should not wait for the batch: every item made meanwhile is waste
      },
    };
  }

  /** A response item (NEXT); `cost`: its estimated decoded size. */
  onNext(frame: NextFrame, cost = 0): void {
    const call = this.calls.get(frame.id);
    if (!call) return; // late frame for a finished call
    if (!call.credit.receive()) {
      throw new ProtocolViolation(`NEXT beyond granted credit (window ${call.credit.window})`, frame.id, frame.type);
    }
    call.receivedItems++;
    call.receivedBytes += cost;
    call.observer.next(frame.value, cost);
    if (call.autoCredit) this.consumed(call);
  }

  /** The response ended (COMPLETE, maybe with a last item). */
  onComplete(frame: CompleteFrame, cost = 0): void {
    const call = this.calls.get(frame.id);
    if (!call) return;
    if (frame.hasValue && !call.credit.receive()) {
      throw new ProtocolViolation(`COMPLETE value beyond granted credit (window ${call.credit.window})`, frame.id, frame.type);
    }
    this.end(call);
    if (frame.hasValue) call.observer.next(frame.value, cost);
    call.observer.complete();
  }

  /** The call failed (ERROR). */
  onError(frame: ErrorFrame): void {
    const call = this.calls.get(frame.id);
    if (!call) return;
    this.end(call);
    call.observer.error(errorFromFrame(frame));
  }

  /** Credit for the request stream of call `id`. */
  onCredit(id: number, n: number): void {
    this.calls.get(id)?.request?.addCredit(n);
  }

  /** The peer broke the protocol on call `id`: fail it here with `error` and send CANCEL. */
  onViolation(id: number, error: WsMsgpackError): void {
    const call = this.calls.get(id);
    if (call) this.abandon(call, error);
  }

  /** The connection ended: every call fails with `error`. */
  failAll(error: WsMsgpackError): void {
    for (const call of [...this.calls.values()]) {
      this.end(call);
      call.observer.error(error);
    }
  }

  private hold(call: OutgoingCall, cost: number): boolean {
    if (call.phase === 'ended' || cost === 0) return true;
    const { inbound } = this.host;
    if (!inbound.fits(cost)) {
      this.abandon(
        call,
        resourceExhausted(`response items waiting for the consumer exceed maxInboundBytes (${inbound.limit}): consume them faster, or lower the call's window`, {
          bufferedBytes: call.held,
        }),
      );
      return false;
    }
    inbound.charge(cost);
    call.held += cost;
    return true;
  }

  private release(call: OutgoingCall, cost: number): void {
    const n = Math.min(cost, call.held);
    call.held -= n;
    this.host.inbound.charge(-n);
  }

  /**
   * One response item reached the consumer: tops the credit up when due, no further than keeps
   * the items waiting for the consumer, and those the credit may still bring, within
   * `maxStreamBufferBytes` (large items: fewer at a time).
   */
  private consumed(call: OutgoingCall): void {
    if (call.phase === 'ended') return;
    const cap = byteCap(this.host.limits.maxStreamBufferBytes, call.held, call.credit.outstanding, call.receivedBytes / call.receivedItems);
    const n = call.credit.consumed(cap);
    if (n > 0) this.host.writer.sendControl({ type: FrameType.CREDIT, id: call.id, credit: n });
  }

  /** This side gives up on its own call: end it here, tell the peer (CANCEL), fail it with `error`. */
  private abandon(call: OutgoingCall, error?: unknown): void {
    if (call.phase === 'ended') return;
    this.end(call);
    // The peer's handler is told why: its signal reads DEADLINE_EXCEEDED, not CANCELLED.
    const deadline = error instanceof WsMsgpackError && error.code === WsMsgpackErrorCode.DEADLINE_EXCEEDED;
    this.host.writer.sendControl(deadline ? { type: FrameType.CANCEL, id: call.id, reason: WsMsgpackErrorCode.DEADLINE_EXCEEDED } : { type: FrameType.CANCEL, id: call.id });
    if (error !== undefined) call.observer.error(error);
  }

  private end(call: OutgoingCall): void {
    call.phase = 'ended';
    // Items still waiting for the consumer are the consumer's now: the connection stops counting them.
    this.release(call, call.held);
    this.calls.delete(call.id);
    this.emptied.check(this.calls.size === 0);
    call.timer?.cancel();
    call.request?.stop();
  }
}

/** True when `payload` should be sent as a request stream rather than as one value. */
export function isStreamSource(payload: unknown): boolean {
  return payload != null && typeof payload === 'object' && (isObservable(payload) || isAsyncIterable(payload) || isStreamIterable(payload));
}
