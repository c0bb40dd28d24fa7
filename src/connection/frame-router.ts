import { ProtocolViolation, WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { assertNever, FrameType, type Frame, type RequestFrame, type WsMsgpackCallHeaders } from '../protocol/frames.js';
import { EMPTY_HEADERS, isPing, isPromiseLike, type EventHandler } from './connection-types.js';
import { violationReport } from './errors.js';
import type { BufferBudget } from './frame-queue.js';
import { asError, type FrameWriter } from './frame-writer.js';
import type { ReportSink } from './guards.js';
import type { IncomingCalls, RequestHandler } from './incoming.js';
import type { OutgoingCalls } from './outgoing.js';

/** What a {@link FrameRouter} hands frames to: the connection's parts, and what stays the connection's own. */
export interface RouterParts {
  /** 'client' owns the odd call ids, 'server' the even ones. */
  readonly role: 'client' | 'server';
  /** The calls this side started. */
  readonly outgoing: OutgoingCalls;
  /** The calls the peer started. */
  readonly incoming: IncomingCalls;
  /** Where a connection-level ERROR goes out (a violation with no call id). */
  readonly writer: FrameWriter;
  /** What the peer's frames hold here (`maxInboundBytes`): an event is charged to it while its handler runs. */
  readonly inbound: BufferBudget;
  /** Reports of the peer's bad frames (limited). */
  readonly violations: ReportSink;
  /** The peer announced it is going away (a connection-level ERROR with code GOING_AWAY). */
  peerGoingAway(message: string, data: unknown): void;
  /** Reports an error no call can be told about (the peer's connection-level ERROR). */
  report(error: Error): void;
  /** Runs a user callback (the event handler) so that its exception cannot unwind into frame handling. */
  guard(callback: () => void): void;
}

/** What `e`, thrown while a frame of the peer was read or routed, means: the peer broke the protocol. */
export function asViolation(e: unknown): ProtocolViolation {
  return e instanceof ProtocolViolation ? e : new ProtocolViolation(asError(e).message);
}

/**
 * Where each decoded frame of the peer goes: to one of this side's calls ({@link OutgoingCalls}),
 * one of the peer's ({@link IncomingCalls}), the handlers of the peer's new calls and events, or
 * the connection itself (the peer's connection-level ERROR and its GOING_AWAY notice). A frame
 * that breaks the protocol fails the call it belongs to instead, and is reported.
 */
export class FrameRouter {
  /** Handles the calls the peer starts (none: they fail with UNIMPLEMENTED). */
  requestHandler: RequestHandler | undefined;
  /** Handles the events the peer emits (none: they are dropped). */
  eventHandler: EventHandler | undefined;
  private readonly ownParity: number;

  constructor(private readonly parts: RouterParts) {
    this.ownParity = parts.role === 'client' ? 1 : 0;
  }

  /** Whether the frame belongs to the peer's work (its REQUEST, its call's frames, an EVENT): what a gate may hold. */
  isPeerWork(frame: Frame): boolean {
    return frame.type === FrameType.EVENT || (frame.id !== 0 && !this.isOwn(frame.id));
  }

  /**
   * Routes `frame`; one that breaks the protocol is a violation. `cost`: the frame's estimated
   * decoded size (charged to `inbound` while this side holds its values).
   */
  route(frame: Frame, cost: number): void {
    try {
      this.dispatch(frame, cost);
    } catch (e) {
      this.violation(asViolation(e));
    }
  }

  /** A keep-alive call that arrived while the peer's calls are held: answered now, ahead of them. */
  answerPing(frame: RequestFrame): void {
    try {
      this.parts.incoming.answerPing(frame, true);
    } catch (e) {
      this.violation(asViolation(e));
    }
  }

  /**
   * A frame broke the protocol. The connection stays up: the call the frame belongs to fails with
   * PROTOCOL_ERROR on both sides; a frame with no readable call id gets a connection-level ERROR
   * (id 0). The violation is also reported as an error of this connection.
   */
  violation(v: ProtocolViolation): void {
    const err = new WsMsgpackError(v.code, v.message);
    if (v.id === 0) this.parts.writer.sendError(0, err);
    else if (this.isOwn(v.id) && v.frameType !== FrameType.REQUEST) this.parts.outgoing.onViolation(v.id, err);
    else this.parts.incoming.onViolation(v.id, err, v.frameType === FrameType.REQUEST && !this.isOwn(v.id));
    this.parts.violations.offer(() => violationReport(v));
  }

  private dispatch(frame: Frame, cost: number): void {
    const { outgoing, incoming } = this.parts;
    switch (frame.type) {
      case FrameType.REQUEST:
        if (this.isOwn(frame.id)) throw new ProtocolViolation(`REQUEST id ${frame.id} is in this side's id space`, frame.id, frame.type);
        if (isPing(frame)) return incoming.answerPing(frame);
        return incoming.accept(frame, this.requestHandler, cost);
      case FrameType.EVENT:
        return this.onEventFrame(frame.pattern, frame.payload, frame.headers, cost);
      case FrameType.NEXT:
        return this.isOwn(frame.id) ? outgoing.onNext(frame, cost) : incoming.onNext(frame, cost);
      case FrameType.COMPLETE:
        return this.isOwn(frame.id) ? outgoing.onComplete(frame, cost) : incoming.onComplete(frame, cost);
      case FrameType.ERROR:
        if (frame.id === 0 && frame.code === WsMsgpackErrorCode.GOING_AWAY) return this.parts.peerGoingAway(frame.message, frame.data);
        if (frame.id === 0) return this.parts.report(new WsMsgpackError(frame.code, frame.message, frame.data));
        return this.isOwn(frame.id) ? outgoing.onError(frame) : incoming.onError(frame, cost);
      case FrameType.CANCEL:
        if (this.isOwn(frame.id)) throw new ProtocolViolation('CANCEL for a call this side started', frame.id, frame.type);
        return incoming.onCancel(frame.id, frame.reason);
      case FrameType.CREDIT:
        return this.isOwn(frame.id) ? outgoing.onCredit(frame.id, frame.credit) : incoming.onCredit(frame.id, frame.credit);
      default:
        return assertNever(frame, 'frame type');
    }
  }

  private isOwn(id: number): boolean {
    return id % 2 === this.ownParity;
  }

  private onEventFrame(pattern: unknown, payload: unknown, headers: WsMsgpackCallHeaders | undefined, cost: number): void {
    const handler = this.eventHandler;
    if (!handler) return;
    let running: unknown;
    this.parts.guard(() => (running = handler({ pattern, payload, headers: headers ?? EMPTY_HEADERS })));
    if (!(cost > 0) || !isPromiseLike(running)) return;
    // The handler still holds the event: its share stays charged until it is done.
    const inbound = this.parts.inbound;
    inbound.charge(cost);
    const release = (): void => inbound.charge(-cost);
    running.then(release, release);
  }
}
