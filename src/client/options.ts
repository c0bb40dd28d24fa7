import type { ClientOptions as WsClientOptions } from 'ws';
import type { ConnectionLimits, WsMsgpackCallOptions } from '../connection/options.js';
import type { ReconnectOptions } from '../session/session.js';

export type { ReconnectOptions } from '../session/session.js';

/** Upgrade request headers, or a function that gives them (called before every connection attempt). */
export type WsMsgpackHeaders = Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);

/** Options of {@link WsMsgpackClient} (the `options` of a `ClientsModule` entry). */
export interface WsMsgpackClientOptions extends ConnectionLimits {
  /**
   * Server URL, e.g. 'ws://127.0.0.1:3001' or 'wss://api.example.com/rpc'; or several (replicas):
   * the client starts with the first and, when a connection drops or an attempt fails, tries the next.
   */
  url: string | readonly string[];
  /**
   * Extra HTTP headers on the upgrade request (e.g. `authorization`), or a function returning
   * them (may be async), called before every (re)connect: a token refreshed in time.
   */
  headers?: WsMsgpackHeaders;
  /** Default deadline for every `send()` in milliseconds (a record's `setTimeout` wins). Off by default. */
  timeout?: number;
  /** How long one connection attempt (the WebSocket handshake) may take. Default 10,000 ms. */
  connectTimeout?: number;
  /**
   * Reconnect automatically when the connection drops (no call needed to trigger it), with
   * exponential backoff and full jitter. `true` (the default) uses {@link DEFAULT_RECONNECT}; an
   * object changes parts of it; `false` makes one attempt per connect and none after a drop (a
   * server announcing GOING_AWAY is still failed over at once: one attempt to the next URL).
   * Refusals that retrying cannot fix (HTTP 4xx such as 401/403, an unsupported protocol version)
   * stop it, once every URL has refused.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * What calls, events and `connect()` made while not connected do (gRPC's wait-for-ready):
   * - `false` (the default, gRPC's and Nest TCP's fail-fast): while the last connection attempt
   *   failed (refused, unreachable) and the next one waits for its backoff, they fail at once
   *   with UNAVAILABLE, whose `cause` is the socket's error (`err.cause.code === 'ECONNREFUSED'`);
   *   while an attempt is under way (the first one, or the one after a drop) they wait for it and
   *   fail with its error if it fails.
   * - `true`: they wait for a connection through the reconnect attempts, up to their deadline
   *   (or `readyTimeout`).
   *
   * Per call: `WsMsgpackRecordBuilder.setWaitForReady()`.
   */
  waitForReady?: boolean;
  /**
   * How long `connect()`, and a call or event without a deadline, wait for a connection before
   * failing with UNAVAILABLE (through reconnect attempts with `waitForReady`; for the attempt
   * under way without). Default 10,000 ms.
   */
  readyTimeout?: number;
  /** Most events waiting for a connection; more fail at once with UNAVAILABLE. Default 1,000. */
  maxPendingEvents?: number;
  /** Further options for the `ws` WebSocket (TLS: `ca`, `cert`, `key`, `rejectUnauthorized`; agent, ...). */
  wsOptions?: Omit<WsClientOptions, 'maxPayload' | 'headers' | 'handshakeTimeout'>;
}

/**
 * Per-call options of {@link WsMsgpackClient.iterate}: what a `WsMsgpackRecord` carries (they
 * win over a record's, headers are merged), and an AbortSignal.
 */
export interface WsMsgpackIterateOptions extends Omit<WsMsgpackCallOptions, 'declaredTimeout' | 'keepAlive'> {
  /** Aborting cancels the call (the server's handler is cancelled too); `next()` then rejects with CANCELLED. */
  signal?: AbortSignal;
}
