import { createServer, type RequestListener, type Server as HttpServer, type ServerOptions as HttpServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { WsMsgpackListenOptions, WsMsgpackUpgradeOptions } from './options.js';
import { DEFAULT_HANDSHAKE_TIMEOUT } from './upgrade-gate.js';
import { MAX_TIMER_MS } from '../connection/timers.js';

/** Node's default `requestTimeout` (`headersTimeout` may not exceed it). */
const NODE_REQUEST_TIMEOUT = 300_000;

/** Throws a `TypeError` for options of the standalone server set with `httpServer`, or a `tls` that is not an object. */
export function checkStandaloneOptions(options: WsMsgpackListenOptions & Pick<WsMsgpackUpgradeOptions, 'handshakeTimeout' | 'maxHeaderSize'>): void {
  for (const key of ['tls', 'maxHeaderSize'] as const) {
    if (options.httpServer && options[key] !== undefined) {
      throw new TypeError(
        `nestjs-ws-msgpack: option ${key} is for the standalone server; with \`httpServer\` it is that server's own setting (create it with https.createServer / its own options)`,
      );
    }
  }
  if (options.tls !== undefined && (typeof options.tls !== 'object' || options.tls === null)) {
    throw new TypeError('nestjs-ws-msgpack: option tls must be an https.ServerOptions object ({ key, cert, ... })');
  }
}

/**
 * The HTTP (or, with `tls`, HTTPS) server of a standalone WsMsgpackServer. `handshakeTimeout`
 * also bounds how long a client may take to send its upgrade request's headers (Node then
 * answers 408) and the TLS handshake, so a slow client cannot hold a socket for Node's minutes.
 */
export function createStandaloneServer(
  options: WsMsgpackListenOptions & Pick<WsMsgpackUpgradeOptions, 'handshakeTimeout' | 'maxHeaderSize'>,
  onRequest: RequestListener,
): HttpServer | HttpsServer {
  // Node wants whole ms here; 0 and Infinity both mean no limit (the option is checked by the gate).
  const given = options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT;
  const timeout = Number.isFinite(given) ? Math.ceil(given) : 0;
  const http: HttpServerOptions = {};
  if (timeout > 0) {
    http.headersTimeout = timeout;
    http.requestTimeout = Math.max(NODE_REQUEST_TIMEOUT, timeout);
    // Node checks headersTimeout every connectionsCheckingInterval (30 s by default).
    http.connectionsCheckingInterval = Math.min(30_000, Math.max(100, Math.round(timeout / 4)));
  }
  if (options.maxHeaderSize !== undefined) http.maxHeaderSize = options.maxHeaderSize;
  if (!options.tls) return createServer(http, onRequest);
  return createHttpsServer(
    {
      ...(timeout > 0 ? { handshakeTimeout: Math.min(timeout, MAX_TIMER_MS) } : {}),
      ...http,
      ...options.tls,
      ...(options.maxHeaderSize !== undefined ? { maxHeaderSize: options.maxHeaderSize } : {}),
    },
    onRequest,
  );
}

/** The HTTP server to share (option `httpServer`, a function called now); throws when it gives none. */
export function sharedServer(option: WsMsgpackListenOptions['httpServer']): HttpServer | undefined {
  if (!option) return undefined;
  const server = typeof option === 'function' ? option() : option;
  if (!server || typeof (server as HttpServer).on !== 'function') {
    throw new TypeError(`nestjs-ws-msgpack: option httpServer gave ${String(server)} when the server started listening, not an HTTP server`);
  }
  return server as HttpServer;
}

/** A listening path as routes compare it: with a leading slash, without a trailing one ('/rpc'). */
export function normalizePath(path: string): string {
  const p = path.startsWith('/') ? path : `/${path}`;
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** The standalone server's port when the options name none. */
export const DEFAULT_PORT = 3001;
/** The standalone server's host when the options name none. */
export const DEFAULT_HOST = '127.0.0.1';

/** What listen() reports when the standalone server cannot bind. */
export function bindError(err: NodeJS.ErrnoException, options: { port?: number; host?: string }): Error {
  const message =
    err.code === 'EADDRINUSE'
      ? `WsMsgpackServer: port ${options.port ?? DEFAULT_PORT} on ${options.host ?? DEFAULT_HOST} is already in use (EADDRINUSE)`
      : `WsMsgpackServer: cannot listen: ${err.message}`;
  return Object.assign(new Error(message, { cause: err }), { code: err.code });
}
