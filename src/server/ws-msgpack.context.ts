import { BaseRpcContext } from '@nestjs/microservices';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { Headers } from '../protocol/frames.js';

/** The call a {@link WsMsgpackContext} belongs to. */
export interface WsMsgpackCallInfo {
  /** Call id on the wire (0 for events). */
  readonly id: number;
  /** The call's abort signal (created on first access). */
  readonly signal: AbortSignal;
  /** Runs `callback` once when the call ends on this side (at once if it has); never for events. */
  onEnd(callback: () => void): void;
  /** Reports an error no caller can be told about (the server's `'error'` event, or its logger). */
  report(error: unknown): void;
}

/** The arguments held by {@link WsMsgpackContext}, in order. */
export type WsMsgpackContextArgs = [
  pattern: string,
  headers: Headers,
  call: WsMsgpackCallInfo,
  socket: WebSocket,
  request: IncomingMessage,
];

/**
 * Context of a call or event on this transport, injected with `@Ctx()`.
 */
export class WsMsgpackContext extends BaseRpcContext<WsMsgpackContextArgs> {

  /** The pattern as a string (object patterns JSON-encoded, as Nest's TCP transport does). */
  getPattern(): string {
    return this.args[0];
  }

  /** Headers the caller attached with `WsMsgpackRecordBuilder.setHeaders()`; `{}` when none. */
  getHeaders(): Headers {
    return this.args[1];
  }

  /**
   * Aborted when the caller cancels (unsubscribes), the call's deadline passes, or the connection
   * closes. `signal.reason` is a `WsMsgpackError` with code CANCELLED, DEADLINE_EXCEEDED or
   * UNAVAILABLE. For events it never aborts.
   */
  getSignal(): AbortSignal {
    return this.args[2].signal;
  }

  /** The `ws` WebSocket of the connection the call arrived on. */
  getSocket(): WebSocket {
    return this.args[3];
  }

  /** The HTTP upgrade request that opened the connection. */
  getRequest(): IncomingMessage {
    return this.args[4];
  }

  /** Headers of the HTTP upgrade request (cookies, `authorization`, ...). */
  getUpgradeHeaders(): IncomingHttpHeaders {
    return this.args[4].headers;
  }

  /** Remote address of the connection (the socket's peer address; proxies are not unwrapped). */
  getRemoteAddress(): string | undefined {
    return this.args[4].socket.remoteAddress;
  }

  /** The call id on the wire (0 for events). */
  getCallId(): number {
    return this.args[2].id;
  }

  /** Runs `callback` once when the call has ended on this side, however it ended (at once if it has). Never for events. */
  onCallEnd(callback: () => void): void {
    this.args[2].onEnd(callback);
  }

  /** Reports an error that no caller can be told about, through the server's `'error'` event (or its logger). */
  reportError(error: unknown): void {
    this.args[2].report(error);
  }
}
