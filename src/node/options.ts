import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';

/**
 * Which browser origins may open a connection (`allowedOrigins`): a list of origins
 * (`'https://app.example.com'`; an upgrade without an `Origin` header, i.e. not from a browser,
 * is let through), or a function deciding for each upgrade (it gets `undefined` when there is no
 * `Origin`). Refused upgrades get HTTP 403.
 */
export type WsMsgpackAllowedOrigins = readonly string[] | ((origin: string | undefined, request: IncomingMessage) => boolean | Promise<boolean>);

/** Where the server listens: its own HTTP(S) server (standalone), or a shared one. Part of {@link WsMsgpackServerOptions}. */
export interface WsMsgpackListenOptions {
  /** Port to listen on when standalone. 0 picks a free port (read it from `server.address()`). Default 3001. */
  port?: number;
  /** Host to bind when standalone. Default '127.0.0.1'. */
  host?: string;
  /**
   * Only accept WebSocket upgrades on this path (e.g. '/rpc'). Required with `httpServer`;
   * standalone, omit to accept every path.
   */
  path?: string;
  /**
   * Share the port of an existing HTTP(S) server, e.g. `app.getHttpServer()` of a Nest HTTP app.
   * Upgrades for `path` go to this transport; every other request and upgrade is left alone.
   * A function is called when the server starts listening: what a server made before the HTTP
   * app's server exists needs (`WsMsgpackServerModule` with `HttpAdapterHost`:
   * `httpServer: () => host.httpAdapter.getHttpServer()`).
   */
  httpServer?: HttpServer | HttpsServer | (() => HttpServer | HttpsServer);
  /**
   * TLS for the standalone server: `https.createServer` options (`key`, `cert`, `ca`,
   * `requestCert`, `rejectUnauthorized`, ...). The server then listens for `wss://`. With
   * `httpServer`, pass an `https` server instead (this option is refused there).
   */
  tls?: HttpsServerOptions;
}

/** The checks of every upgrade, before the WebSocket is accepted. Part of {@link WsMsgpackServerOptions}. */
export interface WsMsgpackUpgradeOptions {
  /**
   * Identifies the peer of an upgrade request before the WebSocket is accepted (check a token in
   * `request.headers.authorization`, a client certificate, a cookie). May be async.
   * - returns an identity (any value but `undefined`, `null`, `false`): the connection opens and
   *   its peer carries it (`peer.user`, `ctx.getUser()`, `@WsUser()`);
   * - returns `undefined`, `null` or `false`: HTTP 401, no connection;
   * - throws a `WsMsgpackUpgradeError` (or anything with a numeric `status` 400-599, such as
   *   Nest's `ForbiddenException`): that status;
   * - throws anything else: HTTP 500, and the error is reported (`server.on('error')`, or Nest's
   *   `Logger` when nobody listens).
   */
  authenticate?: (request: IncomingMessage) => unknown;
  /**
   * Browser origins allowed to connect; others get HTTP 403. Off by default: server-to-server
   * clients send no `Origin`. Turn it on when browsers connect, above all when they
   * authenticate with cookies (cross-site WebSocket hijacking). See {@link WsMsgpackAllowedOrigins}.
   */
  allowedOrigins?: WsMsgpackAllowedOrigins;
  /**
   * Most connections this server holds at once, counting upgrades still being checked
   * (`allowedOrigins`, `authenticate`); an upgrade beyond it gets HTTP 503 before any check runs.
   * Default 10,000; `Infinity` for none.
   */
  maxConnections?: number;
  /**
   * Time allowed to complete an upgrade on the server, in ms: the checks (`allowedOrigins`,
   * `authenticate`) must answer within it, or the upgrade gets HTTP 503 (reported) and the socket
   * is closed. The standalone server also uses it for receiving the upgrade request's headers
   * (then HTTP 408) and for the TLS handshake. Default 10,000; 0 or `Infinity` disables it.
   * `close()` answers the upgrades still being checked at once (HTTP 503), whatever this is.
   */
  handshakeTimeout?: number;
  /**
   * Largest HTTP header block of an upgrade request the standalone server accepts, in bytes
   * (larger: HTTP 431). Default: Node's (16 KiB, `--max-http-header-size`). With `httpServer`
   * this is that server's own setting, and this option is refused.
   */
  maxHeaderSize?: number;
}
