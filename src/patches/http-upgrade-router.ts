/**
 * A patch of Node's `http.Server` on the instance: its `emit` (to take the 'upgrade' events of
 * our paths before any other listener sees them) and its `close` (to end our WebSocket
 * connections before the server waits for its sockets). Relies on Node's http server delivering
 * an upgrade with `server.emit('upgrade', request, socket, head)` on the instance, and treating it
 * as plain HTTP unless some 'upgrade' listener exists; checked on Node 20.x and 22.x by
 * `test/unit/patches.spec.ts`, which fails when that changes.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';

/** Handles one HTTP upgrade request. */
export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void;

interface Route {
  readonly handler: UpgradeHandler;
  readonly beforeClose: () => void;
}

interface Router {
  readonly routes: Map<string | null, Route>;
  readonly originalClose: HttpServer['close'];
  readonly originalEmit: HttpServer['emit'];
  readonly fallback: UpgradeHandler;
}

const routers = new WeakMap<HttpServer, Router>();

/** The path of an upgrade request, without query string. */
export function requestPath(request: IncomingMessage): string {
  const url = request.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Routes HTTP upgrade requests for `path` (null: every path) of `server` to `handler`, ahead of
 * every other 'upgrade' listener. Other paths go on to those listeners unchanged.
 *
 * Why not just `server.on('upgrade')`: Node calls every listener, and `@nestjs/platform-ws`'s
 * WsAdapter destroys upgrade sockets for paths it does not know, whether its listener was added
 * before or after ours. So the router intercepts the 'upgrade' event at `emit` and does not pass
 * the requests it owns on. `beforeClose` runs when `server.close()` is called, before the server
 * waits for its sockets. Returns a function that removes the route (and the interception with
 * the last route).
 */
export function routeUpgrades(server: HttpServer, path: string | null, handler: UpgradeHandler, beforeClose: () => void = () => {}): () => void {
  let router = routers.get(server);
  if (!router) {
    const originalEmit = server.emit;
    const routes = new Map<string | null, Route>();
    const originalClose = server.close;
    const fallback: UpgradeHandler = (_request, socket) => {
      // Not ours. When nobody else listens for upgrades either, answer instead of leaving it hanging.
      if (server.listenerCount('upgrade') === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    };
    router = { routes, originalEmit, originalClose, fallback };
    routers.set(server, router);
    server.emit = function (this: HttpServer, event: string | symbol, ...args: unknown[]): boolean {
      if (event === 'upgrade') {
        const request = args[0] as IncomingMessage;
        const route = routes.get(requestPath(request)) ?? routes.get(null);
        if (route) {
          route.handler(request, args[1] as Duplex, args[2] as Buffer);
          return true;
        }
      }
      return (originalEmit as (this: HttpServer, e: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
    } as HttpServer['emit'];
    // `server.close()` waits for every socket, upgraded ones included, and Nest closes the HTTP
    // server before its microservices: let the routes end their WebSocket connections first.
    server.close = function (this: HttpServer, ...args: unknown[]): HttpServer {
      for (const route of [...routes.values()]) route.beforeClose();
      return (originalClose as (this: HttpServer, ...a: unknown[]) => HttpServer).apply(this, args);
    } as HttpServer['close'];
    // Node treats an upgrade as plain HTTP unless some 'upgrade' listener exists.
    server.on('upgrade', router.fallback);
  }
  if (router.routes.has(path)) {
    throw new Error(`an upgrade route for ${path ?? 'every path'} is already registered on this HTTP server`);
  }
  const route: Route = { handler, beforeClose };
  router.routes.set(path, route);
  const r = router;
  return () => {
    if (r.routes.get(path) !== route) return;
    r.routes.delete(path);
    if (r.routes.size === 0) {
      server.emit = r.originalEmit;
      server.close = r.originalClose;
      server.off('upgrade', r.fallback);
      routers.delete(server);
    }
  };
}
