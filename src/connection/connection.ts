import { Observable } from 'rxjs';
import { FrameCodec } from '../protocol/codec.js';
import { CloseCode, PING_PATTERN } from '../protocol/constants.js';
import { ProtocolViolation, WsMsgpackError, WsMsgpackErrorCode, goingAway, unavailable } from '../protocol/errors.js';
import { FrameType, type Frame, type WsMsgpackCallHeaders, type RequestFrame } from '../protocol/frames.js';
import { callIterator } from './call-iterator.js';
import { BufferBudget } from './frame-queue.js';
import { closedError, sendOverflowError } from './errors.js';
import { asViolation, FrameRouter } from './frame-router.js';
import { asError, FrameWriter } from './frame-writer.js';
import { IncomingCalls, type RequestHandler } from './incoming.js';
import { startCallKeepAlive } from './keepalive.js';
import { Listeners, rethrowLater } from './listeners.js';
import { resolveLimits, type ResolvedLimits, type WsMsgpackCallOptions } from './options.js';
import { OutgoingCalls } from './outgoing.js';
import type { ReportSink } from './guards.js';
import type { FrameGate, GateHost } from './peer-work-hold.js';
import { isPing, OPEN, type CloseInfo, type ConnectionEvents, type ConnectionOptions, type ConnectionPhase, type EventHandler } from './connection-types.js';
import { bindSocket, type SocketSupport, type WebSocketLike } from './socket.js';

export type { CloseInfo, ConnectionOptions, IncomingEvent } from './connection-types.js';

/**
 * One multiplexed protocol peer over a WebSocket. Server and client both use it: each side can
 * start calls (its own id space: odd for the client, even for the server), answer the other's
 * calls, stream both ways under credit flow control, cancel, and enforce deadlines.
 *
 * This class reads the socket and owns the connection's lifecycle; a {@link FrameRouter} sends
 * each frame where it belongs, the calls themselves live in {@link OutgoingCalls} (this side's) and
 * {@link IncomingCalls} (the peer's), and every write goes through one {@link FrameWriter}.
 */
export class Connection {
  private readonly codec: FrameCodec;
  private readonly limits: ResolvedLimits;
  private readonly budget: BufferBudget;
  /** What the peer's frames hold here (maxInboundBytes): requests of running calls, waiting items, held frames. */
  private readonly inbound: BufferBudget;
  private readonly writer: FrameWriter;
  private readonly outgoing: OutgoingCalls;
  private readonly incoming: IncomingCalls;
  private readonly router: FrameRouter;
  private readonly listeners: Listeners<ConnectionEvents>;
  private readonly stopKeepAlive: () => void;
  private phase: ConnectionPhase = OPEN;
  /** A server's input backpressure (none on a client). */
  private readonly throttle: { afterFrame(): void } | undefined;
  /** Reports of the peer's bad frames (limited, with the Node guards). */
  private readonly violations: ReportSink;
  private readonly support: SocketSupport | undefined;
  /** What stands between decoded frames and their dispatch for now (a connected hook's hold), if anything. */
  private gate: FrameGate | undefined;

  constructor(
    /** The underlying WebSocket. */
    readonly socket: WebSocketLike,
    options: ConnectionOptions,
  ) {
    const guards = options.guards;
    this.codec = new FrameCodec({ ...options, estimator: guards?.estimator });
    const report = (e: Error): void => this.emitError(e);
    this.violations = guards ? guards.limitReports(report) : { offer: (make) => report(make()), stop: () => {} };
    this.limits = resolveLimits(options);
    this.budget = new BufferBudget(this.limits.maxConnectionBufferBytes);
    this.inbound = new BufferBudget(this.limits.maxInboundBytes || Infinity, options.serverInbound); // 0: no limit
    this.listeners = new Listeners<ConnectionEvents>((e, event) => (event === 'error' ? rethrowLater(e) : this.emitError(asError(e))));
    this.support = options.socketSupport;
    this.writer = new FrameWriter(socket, this.codec, this.limits, (e) => this.emitError(e), options.socketSupport);
    const writer = this.writer;
    const sink = writer.streamSink((error) => this.emitError(asError(error)));
    const host = { writer, sink, limits: this.limits, budget: this.budget, inbound: this.inbound };
    this.outgoing = new OutgoingCalls(
      // A keep-alive call still goes out while going away: the calls draining on it need a live peer.
      { ...host, closedError: (keepAlive) => this.refusal(keepAlive) },
      options.role === 'client' ? 1 : 2,
    );
    this.incoming = new IncomingCalls({
      ...host,
      mapStreamError: options.mapStreamError,
      guard: (callback) => this.guard(callback),
      report: (error) => this.emitError(asError(error)),
    });
    this.router = new FrameRouter({
      role: options.role,
      outgoing: this.outgoing,
      incoming: this.incoming,
      writer,
      inbound: this.inbound,
      violations: this.violations,
      peerGoingAway: (message, data) => this.onPeerGoingAway(message, data),
      report: (error) => this.emitError(error),
      guard: (callback) => this.guard(callback),
    });
    const support = options.socketSupport;
    // A server reads its peers fairly, and stops reading one whose answers pile up unread.
    const serving = options.role === 'server';
    const reader = bindSocket(
      socket,
      {
        onMessage: (data, isBinary) => this.onMessage(data, isBinary),
        onClose: (code, reason) => this.terminate({ code, reason }),
        onSocketError: (err) => this.emitError(err),
      },
      { fair: serving, incompleteMessageTimeout: this.limits.incompleteMessageTimeout },
      support,
    );
    this.throttle = serving ? guards?.throttleReading(reader, writer) : undefined;
    // A server cuts a peer that reads nothing of what piles up for it (a client is never cut by
    // this: its own bursts are refused instead, see FrameWriter.assertRoom).
    if (serving) writer.cutWhenStalled((waiting) => this.onSendOverflow(waiting));
    // Node `ws` sockets ping; a socket that cannot (a browser's) makes keep-alive calls instead.
    const { keepAliveInterval, keepAliveTimeout } = this.limits;
    this.stopKeepAlive =
      support?.keepAlive(socket, keepAliveInterval, keepAliveTimeout) ??
      startCallKeepAlive(
        () => this.call(PING_PATTERN, null, { window: 0, keepAlive: true }),
        (reason) => this.close(CloseCode.KEEPALIVE_TIMEOUT, reason),
        keepAliveInterval,
        keepAliveTimeout,
      );
  }

  /** @internal Sets the handler for calls the peer starts. Without one, calls fail with UNIMPLEMENTED. */
  onRequest(handler: RequestHandler | undefined): void {
    this.router.requestHandler = handler;
  }

  /**
   * @internal Sets the handler for events the peer emits. A handler that returns a promise holds
   * the event's share of `maxInboundBytes` until it settles.
   */
  onEvent(handler: EventHandler | undefined): void {
    this.router.eventHandler = handler;
  }

  /** Adds a listener for the end of the connection (called once; at once if it has ended). */
  onClose(listener: (info: CloseInfo) => void): void {
    const phase = this.phase;
    if (phase.name === 'closed') this.guard(() => listener(phase.info));
    else this.listeners.on('close', listener);
  }

  /**
   * Adds a listener for errors no call can be told about: socket errors, frames the peer got
   * wrong (PROTOCOL_ERROR), the peer's connection-level ERROR frames, and exceptions thrown by
   * listeners and end hooks.
   */
  onError(listener: (error: Error) => void): void {
    this.listeners.on('error', listener);
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.phase.name === 'closed';
  }

  /**
   * True once either side announced it is going away (GOING_AWAY): no new calls start on this
   * connection (they fail with UNAVAILABLE); the calls under way go on until it closes.
   */
  get isGoingAway(): boolean {
    return this.phase.name === 'going-away' || (this.phase.name === 'closed' && this.phase.wentAway);
  }

  /**
   * @internal Adds a listener for the peer's GOING_AWAY notice (it is shutting down: open a new
   * connection for new calls, let these finish).
   */
  onGoingAway(listener: (notice: WsMsgpackError) => void): void {
    this.listeners.on('goingAway', listener);
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
   * Bytes waiting to reach the peer: what this side's streams and answers hold, waiting for credit
   * or the socket (bounded by `maxConnectionBufferBytes`), plus what waits in the socket itself
   * (bounded by `maxSendBufferSize`).
   */
  get bufferedBytes(): number {
    return this.budget.used + this.socket.bufferedAmount;
  }

  /**
   * Starts a call. Cold: nothing is sent until subscription; unsubscribing before the end sends
   * CANCEL. `payload` may be a stream (Observable, async iterable, or a sync iterable that is not
   * an array), whose items are sent under the responder's credit.
   */
  call(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions = {}): Observable<unknown> {
    return new Observable<unknown>((subscriber) => {
      const started = this.outgoing.start(pattern, payload, options, subscriber, true);
      return started ? () => started.cancel() : undefined;
    });
  }

  /**
   * Starts a call whose response is consumed by pulling: credit is granted only as the consumer
   * takes items, so the responder is never more than one window ahead of a slow consumer.
   * The call starts on the first `next()`; `return()` (e.g. `break` in `for await`) cancels it.
   */
  iterate(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions = {}): AsyncIterableIterator<unknown> {
    return callIterator((observer) => this.outgoing.start(pattern, payload, options, observer, false));
  }

  /** Emits an event (fire and forget). Throws UNAVAILABLE when the connection is not open, or when the data cannot be encoded. */
  emit(pattern: unknown, payload: unknown, headers?: WsMsgpackCallHeaders): void {
    if (this.phase.name === 'closed') throw this.unavailable(this.phase.info);
    this.writer.assertRoom();
    this.writer.send(headers === undefined ? { type: FrameType.EVENT, pattern, payload } : { type: FrameType.EVENT, pattern, payload, headers });
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

  /**
   * @internal This side is shutting down: tells the peer (a connection-level ERROR with code
   * GOING_AWAY, `data` as its details), answers the peer's new REQUESTs with UNAVAILABLE, and
   * starts no new calls of its own. Calls under way go on; close() ends them.
   */
  goAway(message: string, data?: unknown): void {
    if (this.phase.name !== 'open') return;
    const refusal = unavailable(`the connection is going away: ${message}`);
    this.phase = { name: 'going-away', refusal };
    this.incoming.refuseNew(refusal);
    const frame: Frame = { type: FrameType.ERROR, id: 0, code: WsMsgpackErrorCode.GOING_AWAY, message };
    if (data !== undefined) frame.data = data;
    this.writer.sendControl(frame);
    this.writer.flush();
  }

  /**
   * @internal Resolves once no call runs in either direction: neither the peer's calls here nor
   * this side's calls to the peer (closing ends them all). What a drain waits for.
   */
  whenNoCalls(): Promise<void> {
    return Promise.all([this.incoming.whenNone(), this.outgoing.whenNone()]).then(() => undefined);
  }

  /**
   * @internal Puts a gate between decoded frames and their dispatch (the Nest side's connected
   * hook holds the peer's work with a `PeerWorkHold`), unless one stands there already. The gate
   * sees the connection only through the narrow {@link GateHost}; keep-alive calls pass it.
   */
  gateWith(make: (host: GateHost) => FrameGate): void {
    if (this.gate || this.phase.name === 'closed') return;
    const host: GateHost = {
      isPeerWork: (frame) => this.router.isPeerWork(frame),
      dispatch: (frame, cost) => this.router.route(frame, cost),
      inbound: this.inbound,
      maxHeldBytes: this.limits.maxConnectionBufferBytes,
      closed: () => this.isClosed,
      close: (code, reason) => this.close(code, reason),
      ungate: () => {
        if (this.gate === gate) this.gate = undefined;
      },
    };
    const gate = make(host);
    this.gate = gate;
  }

  // ---------------------------------------------------------------- inbound

  private onMessage(data: Uint8Array | string, isBinary: boolean): void {
    if (this.phase.name === 'closed') return;
    if (!isBinary) {
      this.router.violation(new ProtocolViolation('text frames are not part of the protocol: send one msgpack value per binary frame'));
      return;
    }
    let frame: Frame;
    try {
      const own = this.inbound.limit - this.inbound.used;
      const server = this.inbound.parent?.left ?? Infinity;
      frame = this.codec.decode(data as Uint8Array, Math.min(own, server), server < own ? 'maxServerInboundBytes' : 'maxInboundBytes');
    } catch (e) {
      this.router.violation(asViolation(e));
      return;
    }
    const cost = this.codec.lastCost;
    if (this.gate) {
      if (isPing(frame)) return this.router.answerPing(frame as RequestFrame); // keep-alive is never held
      if (this.gate.offer(frame, (data as Uint8Array).byteLength, cost)) return;
    }
    this.router.route(frame, cost);
    this.throttle?.afterFrame();
  }

  /** More than `maxSendBufferSize` bytes wait unread by the peer: cut the connection (reported). */
  private onSendOverflow(waiting: number): void {
    if (this.phase.name === 'closed') return;
    this.emitError(sendOverflowError(waiting, this.limits.maxSendBufferSize));
    this.terminate({ code: 1008, reason: 'send buffer overflow: the peer does not read' });
    if (this.support) this.support.terminate(this.socket);
    else this.close(); // a standard socket: no terminate; 1008 is not a code it may send
  }

  /** The peer announced it is going away: no new calls start here (the router's GOING_AWAY notice). */
  private onPeerGoingAway(message: string, data: unknown): void {
    if (this.phase.name !== 'open') return;
    this.phase = { name: 'going-away', refusal: unavailable(`the peer is going away: ${message}`, data) };
    this.listeners.emit('goingAway', goingAway(message, data));
  }

  // ---------------------------------------------------------------- end

  private terminate(info: CloseInfo): void {
    if (this.phase.name === 'closed') return;
    this.phase = { name: 'closed', info, wentAway: this.phase.name === 'going-away' };
    this.gate?.drop();
    this.gate = undefined;
    this.writer.stop();
    this.stopKeepAlive();
    this.violations.stop();
    const err = this.unavailable(info);
    this.incoming.abortAll(err);
    this.outgoing.failAll(err);
    this.listeners.emit('close', info);
  }

  private unavailable(info: CloseInfo): WsMsgpackError {
    return closedError(info.code, info.reason);
  }

  /** What a new call of this side fails with now: none while open (a keep-alive call goes out while going away too). */
  private refusal(keepAlive: boolean | undefined): WsMsgpackError | undefined {
    const phase = this.phase;
    if (phase.name === 'closed') return this.unavailable(phase.info);
    return phase.name === 'going-away' && !keepAlive ? phase.refusal : undefined;
  }

  private emitError(error: Error): void {
    this.listeners.emit('error', error);
  }

  /**
   * Runs a user callback (event handler, end hook) so that its exception cannot unwind into frame
   * handling, where it would be blamed on the peer: it is reported as an error instead.
   */
  private guard(callback: () => void): void {
    try {
      callback();
    } catch (e) {
      if (this.listeners.count('error') > 0) this.emitError(asError(e));
      else rethrowLater(e);
    }
  }
}
