import { PING_PATTERN } from '../protocol/constants.js';
import type { WsMsgpackError } from '../protocol/errors.js';
import { FrameType, type Frame, type WsMsgpackCallHeaders } from '../protocol/frames.js';
import type { BufferBudget } from './frame-queue.js';
import type { PeerGuards } from './guards.js';
import type { ConnectionLimits } from './options.js';
import type { SocketSupport } from './socket.js';

/** Options of a {@link Connection}. */
export interface ConnectionOptions extends ConnectionLimits {
  /** 'client' starts odd call ids, 'server' even ones. */
  role: 'client' | 'server';
  /**
   * @internal Maps an error thrown while pulling an async iterable that a request handler
   * returned (the Nest server applies the default exception filter's mapping).
   */
  mapStreamError?: (error: unknown) => unknown;
  /** @internal What a Node side adds against a hostile peer (`NODE_PEER_GUARDS`); none in the browser. */
  guards?: PeerGuards;
  /**
   * @internal The server's budget of what its peers' frames may hold in all (`maxServerInboundBytes`):
   * this connection's inbound budget is part of it.
   */
  serverInbound?: BufferBudget;
  /**
   * @internal A Node `ws` socket's extras (events, pings, corking): `WS_SOCKET_SUPPORT` from the
   * server and the Nest client. Without it the socket is used through the standard WebSocket API.
   */
  socketSupport?: SocketSupport;
}

/** An event the peer emitted. */
export interface IncomingEvent {
  /** The pattern as sent. */
  readonly pattern: unknown;
  /** The event data. */
  readonly payload: unknown;
  /** Headers sent with the event (empty object when none). */
  readonly headers: WsMsgpackCallHeaders;
}

/** How a connection ended. */
export interface CloseInfo {
  /** WebSocket close code. */
  code: number;
  /** Close reason text. */
  reason: string;
}

/** Events of a {@link Connection}. */
export type ConnectionEvents = {
  close: (info: CloseInfo) => void;
  error: (error: Error) => void;
  goingAway: (notice: WsMsgpackError) => void;
};

/** Handles the events the peer emits; a returned promise says when the handler is done. */
export type EventHandler = (event: IncomingEvent) => void | PromiseLike<unknown>;

/**
 * Where a connection stands: open; going away (either side announced GOING_AWAY: no new calls
 * start, with `refusal` as their error, and the calls under way go on); closed, with how it ended
 * (and whether either side had announced it was going away).
 */
export type ConnectionPhase =
  { readonly name: 'open' } | { readonly name: 'going-away'; readonly refusal: WsMsgpackError } | { readonly name: 'closed'; readonly info: CloseInfo; readonly wentAway: boolean };

export const OPEN: ConnectionPhase = { name: 'open' };

/** Whether `v` is a promise (or a thenable). */
export function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}

/** A keep-alive call (answered by the core itself, never held). */
export function isPing(frame: Frame): boolean {
  return frame.type === FrameType.REQUEST && frame.pattern === PING_PATTERN && !frame.stream;
}

/** The headers of a call or event sent without any. */
export const EMPTY_HEADERS: WsMsgpackCallHeaders = Object.freeze({}) as WsMsgpackCallHeaders;
