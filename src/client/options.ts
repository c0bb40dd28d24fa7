import type { ClientOptions as WsClientOptions } from 'ws';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import type { ClientCoreOptions } from '../session/options.js';

export type { ReconnectOptions } from '../session/session.js';

/** Upgrade request headers, or a function that gives them (called before every connection attempt). */
export type WsMsgpackHeaders = Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);

/** Options of {@link WsMsgpackClient} (the `options` of a `ClientsModule` entry): the options both clients share, and these. */
export interface WsMsgpackClientOptions extends ClientCoreOptions {
  /**
   * Extra HTTP headers on the upgrade request (e.g. `authorization`), or a function returning
   * them (may be async), called before every (re)connect: a token refreshed in time.
   */
  headers?: WsMsgpackHeaders;
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
