import { BaseRpcContext } from '@nestjs/microservices';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import { ConnectionPeer, type WsMsgpackPeer } from '../peer/peer.js';
import type { WsMsgpackCallHeaders } from '../protocol/frames.js';

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
  headers: WsMsgpackCallHeaders,
  call: WsMsgpackCallInfo,
  socket: WebSocket,
  request: IncomingMessage | undefined,
  peer: WsMsgpackPeer,
];

/**
 * Context of a call or event on this transport, injected with `@Ctx()`. On the server the peer is
 * the client that made the call; in a client app that exposes handlers, it is the server.
 */
export class WsMsgpackContext extends BaseRpcContext<WsMsgpackContextArgs> {
  private boundPeer: WsMsgpackPeer | undefined;

  /** The pattern as a string (object patterns JSON-encoded, as Nest's TCP transport does). */
  getPattern(): string {
    return this.args[0];
  }

  /** Headers the caller attached with `WsMsgpackRecordBuilder.setHeaders()`; `{}` when none. */
  getHeaders(): WsMsgpackCallHeaders {
    return this.args[1];
  }

  /**
   * Nest 12's packet metadata (`TcpContext.getMetadata()`): on this transport metadata travels as
   * headers, so these are the call's headers whose values are strings, whether a Nest client's
   * `setOnDispatchHook()` set them as `packet.metadata` or the caller as record headers. `{}` when
   * there are none (never undefined).
   */
  getMetadata(): Record<string, string> {
    const headers = this.args[1];
    const metadata: Record<string, string> = {};
    for (const key of Object.keys(headers)) {
      const value = headers[key];
      if (typeof value === 'string') metadata[key] = value;
    }
    return metadata;
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

  /**
   * The HTTP upgrade request that opened the connection. Server side only: in a client app that
   * exposes handlers there is none, and this throws (`getPeer().handshake` works on both sides).
   */
  getRequest(): IncomingMessage {
    const request = this.args[4];
    if (!request)
      throw new Error('WsMsgpackContext.getRequest(): this call came from the server, over a connection this client opened; there is no upgrade request (use getPeer().handshake)');
    return request;
  }

  /** Headers of the HTTP upgrade request (cookies, `authorization`, ...); `{}` in a client app. */
  getUpgradeHeaders(): IncomingHttpHeaders {
    return this.args[4]?.headers ?? {};
  }

  /** Remote address of the connection (the socket's peer address; proxies are not unwrapped). */
  getRemoteAddress(): string | undefined {
    return this.args[5].handshake.remoteAddress;
  }

  /**
   * The other end of this connection: call it (`peer.send`, `peer.emit`), read its `id`, `user`
   * and per-connection `state`. Inside a call, the calls made through this peer are cancelled
   * when this call ends (cancelled, past its deadline, or the connection dropped).
   */
  getPeer(): WsMsgpackPeer {
    if (this.boundPeer) return this.boundPeer;
    const peer = this.args[5];
    const call = this.args[2];
    this.boundPeer = call.id !== 0 && peer instanceof ConnectionPeer ? peer.boundTo(call.signal) : peer;
    return this.boundPeer;
  }

  /**
   * The identity the server's `authenticate` option returned for this connection (also in the
   * connection hooks and event handlers); `undefined` without `authenticate`, and in a client app
   * (there the peer is the server). The type parameter is a cast, for convenience.
   */
  getUser<TUser = unknown>(): TUser {
    return this.args[5].user as TUser;
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
