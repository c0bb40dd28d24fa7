import { isObservable, Observable } from 'rxjs';
import { FrameCodec, type FrameCodecOptions } from '../protocol/codec.js';
import { ProtocolViolation, WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import {
  FrameType,
  type CompleteFrame,
  type ErrorFrame,
  type Frame,
  type Headers,
  type NextFrame,
  type RequestFrame,
  MAX_CALL_ID,
} from '../protocol/frames.js';
import { InboundCredit } from './credit.js';
import { describeError, errorFromFrame } from './errors.js';
import { InboundStream } from './inbound-stream.js';
import { LazyAbort } from './lazy-abort.js';
import { startTimer, type Timer } from './timers.js';
import { Queue } from './queue.js';
import { isAsyncIterable, isStreamIterable, OutboundStream, type OutboundSource, type StreamSink } from './outbound-stream.js';
import { bindSocket, type WebSocketLike } from './socket.js';

/** Tunables shared by server and client connections. */
export interface ConnectionLimits extends FrameCodecOptions {
  /**
   * Credit window this side grants the peer for each inbound stream (response items of its own
   * calls, request-stream items of the peer's calls). 0 = unlimited. Default 256.
   */
  window?: number;
  /**
   * Most items an outbound push stream (an Observable) may hold while it waits for credit or for
   * the socket to drain; past that the stream fails with RESOURCE_EXHAUSTED. Default 10,000.
   */
  highWaterMark?: number;
  /** Socket `bufferedAmount` above which stream items wait. Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Most calls the peer may have running on this side at once; more are refused. Default 1,000. */
  maxConcurrentCalls?: number;
  /** Largest frame this side sends or accepts, in bytes. Default 16 MiB. */
  maxPayload?: number;
}

/** Hooks of the layer above (the Nest server maps errors the way Nest's filters would). */
export interface ConnectionHooks {
  /** Maps an error thrown while pulling an async iterable that a request handler returned. */
  mapStreamError?: (error: unknown) => unknown;
}

/** Options of a {@link Connection}. */
export interface ConnectionOptions extends ConnectionLimits, ConnectionHooks {
  /** 'client' starts odd call ids, 'server' even ones. */
  role: 'client' | 'server';
}

/** Per-call options of {@link Connection.call}. */
export interface CallOptions {
  /** Headers delivered to the handler's context. */
  headers?: Headers;
  /** Deadline in milliseconds; the call fails with DEADLINE_EXCEEDED after it. */
  timeout?: number;
  /** Credit window for this call's response stream (0 = unlimited). */
  window?: number;
}

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
  readonly headers: Headers;
  /** Aborted when the call is cancelled, passes its deadline, breaks the protocol, or the connection closes. */
  readonly signal: AbortSignal;
  /** Absolute deadline (ms since epoch), when the caller set one. */
  readonly deadline: number | undefined;
  /**
   * Runs `callback` once when the call ends on this side: answered, failed, cancelled, past its
   * deadline, or cut off by the connection closing (at once if it already has).
   */
  onEnd(callback: () => void): void;
}

/** An event the peer emitted. */
export interface IncomingEvent {
  /** The pattern as sent. */
  readonly pattern: unknown;
  /** The event data. */
  readonly payload: unknown;
  /** Headers sent with the event (empty object when none). */
  readonly headers: Headers;
}

/** Produces the response of an incoming call: a value source or a promise of one. */
export type RequestHandler = (call: IncomingCall) => OutboundSource | Promise<OutboundSource>;

/** How a connection ended. */
export interface CloseInfo {
  /** WebSocket close code. */
  code: number;
  /** Close reason text. */
  reason: string;
}

/** Where a call's response goes (an rxjs Subscriber, or the iterator's buffer). */
interface CallObserver {
  next(value: unknown): void;
  error(error: unknown): void;
  complete(): void;
}

interface OutgoingCall {
  readonly id: number;
  readonly observer: CallObserver;
  readonly credit: InboundCredit;
  /** Grant credit as items are delivered (Observables) rather than as they are pulled (iterate). */
  readonly autoCredit: boolean;
  request: OutboundStream | undefined;
  timer: Timer | undefined;
  done: boolean;
}

interface IncomingState {
  readonly id: number;
  readonly abort: LazyAbort;
  readonly response: OutboundStream;
  readonly input: InboundStream | undefined;
  deadline: number | undefined;
  timer: Timer | undefined;
  /** Run once when the call ends on this side, however it ends. */
  onEnd: (() => void)[];
}

/** Default of {@link ConnectionLimits.maxPayload}, also used for `ws`'s own limit. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

const DEFAULTS = {
  window: 256,
  highWaterMark: 10_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  maxConcurrentCalls: 1000,
  maxPayload: DEFAULT_MAX_PAYLOAD,
};

const EMPTY_HEADERS: Headers = Object.freeze({}) as Headers;

/** Most frames written together in one corked batch. */
const MAX_BATCH_FRAMES = 32;

/** Binary values at least this big are sent without a copy (Node `ws` only). */
const ZERO_COPY_BYTES = 64 * 1024;

/** `ws`'s send with fragmentation options. */
interface FragmentingSocket {
  send(data: Uint8Array, options: { binary: boolean; fin: boolean }): void;
}

interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** Runs `fn` once the current tick's synchronous work and promise jobs are done. */
const scheduleFlush: (fn: () => void) => void =
  typeof process !== 'undefined' && typeof process.nextTick === 'function' ? (fn) => process.nextTick(fn) : (fn) => queueMicrotask(fn);

/**
 * One multiplexed protocol peer over a WebSocket. Server and client both use it: each side can
 * start calls (its own id space: odd for the client, even for the server), answer the other's
 * calls, stream both ways under credit flow control, cancel, and enforce deadlines.
 */
export class Connection {
  private readonly codec: FrameCodec;
  private readonly limits: typeof DEFAULTS;
  private readonly outgoing = new Map<number, OutgoingCall>();
  private readonly incoming = new Map<number, IncomingState>();
  private readonly ownParity: number;
  private nextId: number;
  private lastPeerId = 0;
  private closedInfo: CloseInfo | undefined;
  private readonly closeListeners: ((info: CloseInfo) => void)[] = [];
  private readonly errorListeners: ((error: Error) => void)[] = [];
  private drainWaiters: (() => void)[] = [];
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  private requestHandler: RequestHandler | undefined;
  private eventHandler: ((event: IncomingEvent) => void) | undefined;
  private readonly sink: StreamSink;
  private readonly mapStreamError: ((error: unknown) => unknown) | undefined;
  /** The TCP socket under a Node `ws` WebSocket (null: none, e.g. a browser socket). */
  private tcp: CorkableSocket | null | undefined;
  private corked = false;
  private batched = 0;

  constructor(
    /** The underlying WebSocket. */
    readonly socket: WebSocketLike,
    options: ConnectionOptions,
  ) {
    this.codec = new FrameCodec(options);
    this.limits = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const v = options[key];
      if (v !== undefined) this.limits[key] = v;
    }
    this.mapStreamError = options.mapStreamError;
    this.ownParity = options.role === 'client' ? 1 : 0;
    this.nextId = options.role === 'client' ? 1 : 2;
    this.sink = {
      sendItem: (id, value, final) =>
        this.sendBinaryValue(final ? FrameType.COMPLETE : FrameType.NEXT, id, value) ||
        this.sendChecked(final ? { type: FrameType.COMPLETE, id, hasValue: true, value } : { type: FrameType.NEXT, id, value }),
      sendComplete: (id) => this.sendSafe({ type: FrameType.COMPLETE, id, hasValue: false }),
      sendError: (id, error) => this.sendErrorFrame(id, error),
      congested: () => this.socket.bufferedAmount > this.limits.maxBufferedBytes,
      whenDrained: (resume) => this.whenDrained(resume),
    };
    bindSocket(socket, {
      onMessage: (data, isBinary) => this.onMessage(data, isBinary),
      onClose: (code, reason) => this.terminate({ code, reason }),
      onSocketError: (err) => this.emitError(err),
    });
  }

  /** Sets the handler for calls the peer starts. Without one, calls fail with UNIMPLEMENTED. */
  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  /** Sets the handler for events the peer emits. */
  onEvent(handler: (event: IncomingEvent) => void): void {
    this.eventHandler = handler;
  }

  /** Adds a listener for the end of the connection (called once). */
  onClose(listener: (info: CloseInfo) => void): void {
    if (this.closedInfo) listener(this.closedInfo);
    else this.closeListeners.push(listener);
  }

  /** Adds a listener for connection-level errors (socket errors, protocol errors the peer reported). */
  onError(listener: (error: Error) => void): void {
    this.errorListeners.push(listener);
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.closedInfo !== undefined;
  }

  /** Calls the peer started that are still running here. */
  get incomingCalls(): number {
    return this.incoming.size;
  }

  /** Calls this side started that are still waiting on the peer. */
  get outgoingCalls(): number {
    return this.outgoing.size;
  }

  /**
   * Starts a call. Cold: nothing is sent until subscription; unsubscribing before the end sends
   * CANCEL. `payload` may be a stream (Observable, async iterable, or a sync iterable that is not
   * an array), whose items are sent under the responder's credit.
   */
  call(pattern: unknown, payload: unknown, options: CallOptions = {}): Observable<unknown> {
    return new Observable<unknown>((subscriber) => this.startCall(pattern, payload, options, subscriber, true)?.teardown);
  }

  /**
   * Starts a call whose response is consumed by pulling: credit is granted only as the consumer
   * takes items, so the responder is never more than one window ahead of a slow consumer.
   * The call starts on the first `next()`; `return()` (e.g. `break` in `for await`) cancels it.
   */
  iterate(pattern: unknown, payload: unknown, options: CallOptions = {}): AsyncIterableIterator<unknown> {
    const items = new Queue<unknown>();
    let end: { error: unknown } | 'complete' | undefined;
    let wake: (() => void) | undefined;
    let started: { state: OutgoingCall; teardown: () => void } | undefined | null = null;
    const observer: CallObserver = {
      next: (v) => {
        items.push(v);
        wake?.();
      },
      error: (error) => {
        end = { error };
        wake?.();
      },
      complete: () => {
        end = 'complete';
        wake?.();
      },
    };
    const iterator: AsyncIterableIterator<unknown> = {
      next: async (): Promise<IteratorResult<unknown>> => {
        if (started === null) started = this.startCall(pattern, payload, options, observer, false);
        while (items.length === 0 && end === undefined) await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        if (items.length > 0) {
          const value = items.shift();
          if (started) this.grantConsumed(started.state);
          return { value, done: false };
        }
        if (end !== undefined && end !== 'complete') {
          const { error } = end;
          end = 'complete';
          throw error;
        }
        return { value: undefined, done: true };
      },
      return: async (): Promise<IteratorResult<unknown>> => {
        if (started === null) started = undefined; // never started: a later next() must not start it
        started?.teardown();
        end ??= 'complete';
        items.clear();
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  private startCall(
    pattern: unknown,
    payload: unknown,
    options: CallOptions,
    observer: CallObserver,
    autoCredit: boolean,
  ): { state: OutgoingCall; teardown: () => void } | undefined {
    if (this.closedInfo) {
      observer.error(this.unavailable(this.closedInfo));
      return undefined;
    }
    const id = this.nextId;
    this.nextId += 2;
    const window = options.window ?? this.limits.window;
    const isStream = isStreamSource(payload);
    const st: OutgoingCall = { id, observer, credit: new InboundCredit(window), autoCredit, request: undefined, timer: undefined, done: false };
    const frame: RequestFrame = { type: FrameType.REQUEST, id, pattern, payload: isStream ? undefined : payload, stream: isStream };
    if (options.headers !== undefined) frame.headers = options.headers;
    if (window > 0) frame.credit = window;
    // A non-finite timeout (Infinity) means no deadline.
    if (options.timeout !== undefined && options.timeout > 0 && Number.isFinite(options.timeout)) frame.timeout = Math.ceil(options.timeout);
    try {
      this.sendChecked(frame);
    } catch (e) {
      observer.error(e);
      return undefined;
    }
    this.outgoing.set(id, st);
    if (frame.timeout !== undefined) {
      st.timer = startTimer(frame.timeout, () => {
        if (st.done) return;
        this.abandonOutgoing(st, new WsMsgpackError(WsMsgpackErrorCode.DEADLINE_EXCEEDED, `deadline of ${frame.timeout} ms exceeded`));
      });
    }
    if (isStream) {
      st.request = new OutboundStream(this.sink, id, 0, this.limits.highWaterMark, () => {});
      st.request.start(payload as OutboundSource);
    }
    const teardown = (): void => {
      if (st.done) return;
      this.abandonOutgoing(st);
      this.uncork(); // a cancel should not wait for the batch: every item the producer makes meanwhile is waste
    };
    return { state: st, teardown };
  }

  /** One response item reached the consumer: top the credit up when due. */
  private grantConsumed(st: OutgoingCall): void {
    if (st.done) return;
    const n = st.credit.consumed();
    if (n > 0) this.sendSafe({ type: FrameType.CREDIT, id: st.id, credit: n });
  }

  /** Emits an event (fire and forget). Throws when the connection is closed or the data cannot be encoded. */
  emit(pattern: unknown, payload: unknown, headers?: Headers): void {
    if (this.closedInfo) throw this.unavailable(this.closedInfo);
    this.sendChecked(headers === undefined ? { type: FrameType.EVENT, pattern, payload } : { type: FrameType.EVENT, pattern, payload, headers });
  }

  /**
   * Closes the connection: every call in either direction ends now (UNAVAILABLE for this side's
   * calls, abort for the peer's), then the WebSocket closing handshake starts.
   */
  close(code = 1000, reason = ''): void {
    this.terminate({ code, reason });
    try {
      if (this.socket.readyState <= 1) this.socket.close(code, reason);
    } catch {
      /* already closing */
    }
  }

  // ---------------------------------------------------------------- inbound

  private onMessage(data: Uint8Array | string, isBinary: boolean): void {
    if (this.closedInfo) return;
    if (!isBinary) {
      this.onViolation(new ProtocolViolation('text frames are not part of the protocol: send one msgpack value per binary frame'));
      return;
    }
    let frame: Frame;
    try {
      frame = this.codec.decode(data as Uint8Array);
    } catch (e) {
      this.onViolation(e instanceof ProtocolViolation ? e : new ProtocolViolation(String(e)));
      return;
    }
    try {
      this.dispatch(frame);
    } catch (e) {
      this.onViolation(e instanceof ProtocolViolation ? e : new ProtocolViolation(e instanceof Error ? e.message : String(e)));
    }
  }

  private dispatch(frame: Frame): void {
    switch (frame.type) {
      case FrameType.REQUEST:
        return this.onRequestFrame(frame);
      case FrameType.EVENT:
        return this.onEventFrame(frame.pattern, frame.payload, frame.headers);
      case FrameType.NEXT:
        return this.isOwn(frame.id) ? this.onResponseNext(frame) : this.onInputNext(frame);
      case FrameType.COMPLETE:
        return this.isOwn(frame.id) ? this.onResponseComplete(frame) : this.onInputComplete(frame);
      case FrameType.ERROR:
        if (frame.id === 0) return this.emitError(new WsMsgpackError(frame.code, frame.message, frame.data));
        return this.isOwn(frame.id) ? this.onResponseError(frame) : this.onInputError(frame);
      case FrameType.CANCEL:
        if (this.isOwn(frame.id)) throw new ProtocolViolation('CANCEL for a call this side started', frame.id, frame.type);
        return this.onCancel(frame.id);
      case FrameType.CREDIT:
        if (this.isOwn(frame.id)) this.outgoing.get(frame.id)?.request?.addCredit(frame.credit);
        else this.incoming.get(frame.id)?.response.addCredit(frame.credit);
        return;
    }
  }

  private isOwn(id: number): boolean {
    return id % 2 === this.ownParity;
  }

  // -- responses to this side's calls

  private onResponseNext(frame: NextFrame): void {
    const st = this.outgoing.get(frame.id);
    if (!st) return; // late frame for a finished call
    if (!st.credit.receive()) {
      throw new ProtocolViolation(`NEXT beyond granted credit (window ${st.credit.window})`, frame.id, frame.type);
    }
    st.observer.next(frame.value);
    if (st.autoCredit) this.grantConsumed(st);
  }

  private onResponseComplete(frame: CompleteFrame): void {
    const st = this.outgoing.get(frame.id);
    if (!st) return;
    if (frame.hasValue && !st.credit.receive()) {
      throw new ProtocolViolation(`COMPLETE value beyond granted credit (window ${st.credit.window})`, frame.id, frame.type);
    }
    this.endOutgoing(st);
    if (frame.hasValue) st.observer.next(frame.value);
    st.observer.complete();
  }

  private onResponseError(frame: ErrorFrame): void {
    const st = this.outgoing.get(frame.id);
    if (!st) return;
    this.endOutgoing(st);
    st.observer.error(errorFromFrame(frame));
  }

  /** This side gives up on its own call: end it here, tell the peer (CANCEL), fail it with `error`. */
  private abandonOutgoing(st: OutgoingCall, error?: unknown): void {
    this.endOutgoing(st);
    this.sendSafe({ type: FrameType.CANCEL, id: st.id });
    if (error !== undefined) st.observer.error(error);
  }

  private endOutgoing(st: OutgoingCall): void {
    st.done = true;
    this.outgoing.delete(st.id);
    st.timer?.cancel();
    st.request?.stop();
  }

  // -- the peer's calls

  private onRequestFrame(frame: RequestFrame): void {
    const { id } = frame;
    if (this.isOwn(id)) throw new ProtocolViolation(`REQUEST id ${id} is in this side's id space`, id, frame.type);
    if (id <= this.lastPeerId) throw new ProtocolViolation(`REQUEST id ${id} was already used (ids must increase)`, id, frame.type);
    this.lastPeerId = id;
    if (this.incoming.size >= this.limits.maxConcurrentCalls) {
      this.sendErrorFrame(
        id,
        new WsMsgpackError(WsMsgpackErrorCode.RESOURCE_EXHAUSTED, `too many concurrent calls on this connection (limit ${this.limits.maxConcurrentCalls})`),
      );
      return;
    }
    const abort = new LazyAbort();
    const input = frame.stream
      ? new InboundStream(this.limits.window, (credit) => this.sendSafe({ type: FrameType.CREDIT, id, credit }))
      : undefined;
    const response = new OutboundStream(
      this.sink,
      id,
      frame.credit ?? Infinity,
      this.limits.highWaterMark,
      () => this.endIncoming(id),
      this.mapStreamError,
    );
    const st: IncomingState = { id, abort, response, input, deadline: undefined, timer: undefined, onEnd: [] };
    this.incoming.set(id, st);
    // The requester sends no stream item before the first CREDIT; window 0 (unlimited) grants all at once.
    if (input) this.sendSafe({ type: FrameType.CREDIT, id, credit: input.window > 0 ? input.window : MAX_CALL_ID });
    let deadline: number | undefined;
    if (frame.timeout !== undefined) {
      deadline = Date.now() + frame.timeout;
      st.deadline = deadline;
      st.timer = startTimer(frame.timeout, () => {
        const err = new WsMsgpackError(WsMsgpackErrorCode.DEADLINE_EXCEEDED, `deadline of ${frame.timeout} ms exceeded`);
        abort.abort(err);
        response.fail(err);
      });
    }
    const call: IncomingCall = {
      id,
      pattern: frame.pattern,
      payload: input ? input.observable : frame.payload,
      isStream: frame.stream,
      headers: frame.headers ?? EMPTY_HEADERS,
      get signal() {
        return abort.signal;
      },
      deadline,
      onEnd: (callback) => {
        if (response.isFinished) callback();
        else st.onEnd.push(callback);
      },
    };
    let result: OutboundSource | Promise<OutboundSource>;
    try {
      if (!this.requestHandler) {
        throw new WsMsgpackError(WsMsgpackErrorCode.UNIMPLEMENTED, 'this peer does not answer calls');
      }
      result = this.requestHandler(call);
    } catch (e) {
      response.fail(e);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (source) => {
          if (!response.isFinished) response.start(source);
        },
        (e: unknown) => response.fail(e),
      );
    } else {
      response.start(result);
    }
  }

  private endIncoming(id: number): void {
    const st = this.incoming.get(id);
    if (!st) return;
    this.incoming.delete(id);
    st.timer?.cancel();
    st.input?.close();
    for (const callback of st.onEnd) this.guard(callback);
  }

  private onInputNext(frame: NextFrame): void {
    const st = this.incoming.get(frame.id);
    if (!st?.input) return;
    if (!st.input.push(frame.value)) {
      throw new ProtocolViolation(`request-stream NEXT beyond granted credit (window ${st.input.window})`, frame.id, frame.type);
    }
  }

  private onInputComplete(frame: CompleteFrame): void {
    const input = this.incoming.get(frame.id)?.input;
    if (!input) return;
    if (frame.hasValue && !input.push(frame.value)) {
      throw new ProtocolViolation('request-stream COMPLETE value beyond granted credit', frame.id, frame.type);
    }
    input.complete();
  }

  private onInputError(frame: ErrorFrame): void {
    this.incoming.get(frame.id)?.input?.error(errorFromFrame(frame));
  }

  private onCancel(id: number): void {
    const st = this.incoming.get(id);
    if (!st) return; // cancel for an unknown or finished call: ignored
    // A caller enforces its deadline itself and cancels; that CANCEL can beat our own timer.
    const expired = st.deadline !== undefined && Date.now() >= st.deadline - 2;
    st.abort.abort(
      expired
        ? new WsMsgpackError(WsMsgpackErrorCode.DEADLINE_EXCEEDED, 'the call passed its deadline')
        : new WsMsgpackError(WsMsgpackErrorCode.CANCELLED, 'the caller cancelled the call'),
    );
    st.response.stop();
  }

  private onEventFrame(pattern: unknown, payload: unknown, headers: Headers | undefined): void {
    if (!this.eventHandler) return;
    try {
      this.eventHandler({ pattern, payload, headers: headers ?? EMPTY_HEADERS });
    } catch (e) {
      this.emitError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /**
   * A frame broke the protocol. The connection stays up: the call the frame belongs to fails with
   * PROTOCOL_ERROR on both sides; a frame with no readable call id gets a connection-level ERROR (id 0).
   */
  private onViolation(v: ProtocolViolation): void {
    const err = new WsMsgpackError(WsMsgpackErrorCode.PROTOCOL_ERROR, v.message);
    if (v.id === 0) {
      this.sendErrorFrame(0, err);
      return;
    }
    if (this.isOwn(v.id) && v.frameType !== FrameType.REQUEST) {
      const st = this.outgoing.get(v.id);
      if (!st) return;
      this.abandonOutgoing(st, err);
      return;
    }
    const st = this.incoming.get(v.id);
    if (st) {
      st.abort.abort(err);
      st.response.fail(err);
    } else {
      this.sendErrorFrame(v.id, err);
    }
  }

  // ---------------------------------------------------------------- outbound

  /** Encodes and sends; throws WsMsgpackError when the frame cannot be encoded or is too big. */
  private sendChecked(frame: Frame): void {
    let bytes: Uint8Array;
    try {
      bytes = this.codec.encode(frame);
    } catch (e) {
      throw new WsMsgpackError(WsMsgpackErrorCode.INTERNAL, `value could not be encoded as msgpack: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (bytes.byteLength > this.limits.maxPayload) {
      throw new WsMsgpackError(
        WsMsgpackErrorCode.RESOURCE_EXHAUSTED,
        `frame of ${bytes.byteLength} bytes exceeds maxPayload (${this.limits.maxPayload} bytes)`,
      );
    }
    if (this.socket.readyState !== 1) return;
    this.corkForTick();
    this.socket.send(bytes);
    // Cap the batch: a whole tick's frames in one write turns a window of calls into lockstep
    // batches (each side idle while the other works); smaller writes let both cores overlap.
    if (this.corked && ++this.batched >= MAX_BATCH_FRAMES) this.uncork();
  }

  /**
   * Node only: a large binary value (a file, an echoed Buffer) goes out without being copied into
   * the encoder: the frame head as one WebSocket fragment, the bytes themselves as the final
   * fragment. On the wire it is one ordinary message. Returns false when this path does not apply.
   */
  private sendBinaryValue(type: typeof FrameType.NEXT | typeof FrameType.COMPLETE, id: number, value: unknown): boolean {
    if (!(value instanceof Uint8Array) || value.byteLength < ZERO_COPY_BYTES) return false;
    if (this.tcp === undefined) this.corkForTick(); // resolves this.tcp
    if (this.tcp === null || this.socket.readyState !== 1) return false;
    const head = this.codec.valueFrameHead(type, id, value.byteLength);
    if (head.byteLength + value.byteLength > this.limits.maxPayload) {
      throw new WsMsgpackError(
        WsMsgpackErrorCode.RESOURCE_EXHAUSTED,
        `frame of ${head.byteLength + value.byteLength} bytes exceeds maxPayload (${this.limits.maxPayload} bytes)`,
      );
    }
    const ws = this.socket as unknown as FragmentingSocket;
    this.uncork(); // what waited goes first; the value's bytes are too big to batch
    ws.send(head, { binary: true, fin: false });
    ws.send(value, { binary: true, fin: true });
    return true;
  }

  /**
   * Node only: hold the TCP socket's writes until the end of the tick, so every frame sent in it
   * leaves in one `writev` instead of one system call each (many calls answered from one read,
   * many requests started in one loop). No protocol change: each frame is still its own message.
   */
  private corkForTick(): void {
    if (this.corked) return;
    if (this.tcp === undefined) {
      const raw = (this.socket as unknown as { _socket?: Partial<CorkableSocket> })._socket;
      this.tcp = raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function' ? (raw as CorkableSocket) : null;
    }
    if (this.tcp === null) return;
    this.corked = true;
    this.tcp.cork();
    scheduleFlush(this.uncork);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.batched = 0;
    this.tcp?.uncork();
  };

  /** Sends a control frame; such frames always encode. */
  private sendSafe(frame: Frame): void {
    if (this.closedInfo) return;
    try {
      this.sendChecked(frame);
    } catch (e) {
      this.emitError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private sendErrorFrame(id: number, error: unknown): void {
    if (this.closedInfo) return;
    const d = describeError(error);
    const frame: ErrorFrame = { type: FrameType.ERROR, id, code: d.code, message: d.message };
    if (d.data !== undefined) frame.data = d.data;
    try {
      this.sendChecked(frame);
    } catch (e) {
      // The error payload itself could not be sent (unencodable or too big): say so instead.
      const reason = e instanceof Error ? e.message : String(e);
      this.sendSafe({ type: FrameType.ERROR, id, code: WsMsgpackErrorCode.INTERNAL, message: `error payload could not be sent: ${reason}` });
    }
  }

  private whenDrained(resume: () => void): void {
    this.drainWaiters.push(resume);
    if (this.drainTimer === undefined) this.drainTimer = setTimeout(this.checkDrain, 1);
  }

  private readonly checkDrain = (): void => {
    this.drainTimer = undefined;
    if (this.closedInfo) {
      this.drainWaiters = [];
      return;
    }
    if (this.sink.congested()) {
      this.drainTimer = setTimeout(this.checkDrain, 1);
      return;
    }
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  };

  // ---------------------------------------------------------------- end

  private terminate(info: CloseInfo): void {
    if (this.closedInfo) return;
    this.closedInfo = info;
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainWaiters = [];
    const err = this.unavailable(info);
    for (const st of [...this.incoming.values()]) {
      st.abort.abort(err);
      st.response.stop();
    }
    for (const st of [...this.outgoing.values()]) {
      this.endOutgoing(st);
      st.observer.error(err);
    }
    for (const l of this.closeListeners.splice(0)) this.guard(() => l(info));
  }

  private unavailable(info: CloseInfo): WsMsgpackError {
    return new WsMsgpackError(
      WsMsgpackErrorCode.UNAVAILABLE,
      `connection closed (code ${info.code}${info.reason ? `: ${info.reason}` : ''})`,
      { closeCode: info.code, closeReason: info.reason },
    );
  }

  private emitError(error: Error): void {
    for (const l of this.errorListeners) this.guard(() => l(error));
  }

  /**
   * Runs a user callback (listener, end hook) so that its exception cannot unwind into frame
   * handling, where it would be blamed on the peer, or escape from a timer as an uncaught error.
   */
  private guard(callback: () => void): void {
    try {
      callback();
    } catch (e) {
      queueMicrotask(() => {
        throw e; // surfaces as the application's own error, outside the protocol
      });
    }
  }
}

/** True when `payload` should be sent as a request stream rather than as one value. */
export function isStreamSource(payload: unknown): boolean {
  return (
    payload != null &&
    typeof payload === 'object' &&
    (isObservable(payload) || isAsyncIterable(payload) || isStreamIterable(payload))
  );
}
