import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { ConnectionLimits } from '../connection/options.js';

/** Options of {@link WsMsgpackServer}. */
export interface WsMsgpackServerOptions extends ConnectionLimits {
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
   */
  httpServer?: HttpServer | HttpsServer;
  /**
   * Decides whether an upgrade request may connect (e.g. check a token in
   * `request.headers.authorization`). Refused requests get HTTP 401 and no connection.
   */
  authorize?: (request: IncomingMessage) => boolean | Promise<boolean>;
  /** Interval of WebSocket pings; a peer that does not answer one ping by the next is dropped. Default 30,000 ms; 0 disables. */
  keepAliveInterval?: number;
  /** How long `close()` waits for peers to finish the closing handshake before cutting them off. Default 2,000 ms. */
  closeTimeout?: number;
}
