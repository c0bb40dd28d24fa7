import { Logger } from '@nestjs/common';
import type { CustomTransportStrategy } from '@nestjs/microservices';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { WS_SOCKET_SUPPORT } from '../node/ws-socket.js';
import { asError } from '../connection/frame-writer.js';
import { ReportingListeners } from '../connection/listeners.js';
import { wsSocketOptions } from '../connection/options.js';
import { BufferBudget } from '../connection/frame-queue.js';
import { NODE_PEER_GUARDS } from '../node/peer-guards.js';
import { MAX_TIMER_MS } from '../connection/timers.js';
import { WsMsgpackStatus } from '../session/status.js';
import { LocalPeerDirectory, type WsMsgpackPeerDirectory } from '../peer/directory.js';
import { ConnectionPeer, type WsMsgpackPeer } from '../peer/peer.js';
import { CloseCode, SUBPROTOCOL_V1 } from '../protocol/constants.js';
import { callLogOf, describeAddress } from '../nest/call-log.js';
import { WsMsgpackDispatcher } from '../nest/dispatcher.js';
import { resolveServerOptions, type WsMsgpackServerOptions } from './options.js';
import { bindError, createStandaloneServer, DEFAULT_HOST, DEFAULT_PORT, normalizePath, sharedServer } from '../node/standalone-server.js';
import { toRpcErrorPayload } from '../nest/stream-errors.js';
import { closeAll, drain, whenClosed } from './shutdown.js';
import { pickProtocol, refuseUpgrade, UpgradeGate } from '../node/upgrade-gate.js';
import { routeUpgrades, type UpgradeHandler } from '../patches/http-upgrade-router.js';
import { Connection } from '../connection/connection.js';
import { ClusterBinding } from './cluster-binding.js';
import type { WsMsgpackCluster } from '../cluster/types.js';
import type { WsMsgpackBroadcastTarget } from '../peer/directory.js';

export { NO_MESSAGE_HANDLER } from '../nest/dispatcher.js';

/** Events of {@link WsMsgpackServer.on}. */
export type WsMsgpackServerEvents = {
  /** A peer connected (after the upgrade checks and the subprotocol check); `peer.user` is set. */
  connection: (socket: WebSocket, request: IncomingMessage, peer: WsMsgpackPeer) => void;
  /** A peer's connection ended. */
  disconnect: (socket: WebSocket, code: number, reason: string, peer: WsMsgpackPeer) => void;
  /**
   * Something went wrong that no call can be told about: the HTTP/WebSocket server or a socket
   * failed, a peer sent an invalid frame (a WsMsgpackError with code PROTOCOL_ERROR: at most 10 a
   * second per connection, then one summing up the rest), a frame over a limit or was cut for one
   * (RESOURCE_EXHAUSTED), or a connection-level ERROR, `authenticate` (or `allowedOrigins`) threw or did not answer within
   * `handshakeTimeout`, a listener or end hook threw, or a late handler result could not be
   * released. Without a listener these are logged with Nest's `Logger`.
   */
  error: (error: Error) => void;
};

/**
 * NestJS microservice transport over WebSocket + MessagePack.
 *
 * ```ts
 * app.connectMicroservice({ strategy: new WsMsgpackServer({ port: 3001 }) });
 * // or on the HTTP app's own port:
 * app.connectMicroservice({ strategy: new WsMsgpackServer({ httpServer: app.getHttpServer(), path: '/rpc' }) });
 * ```
 */
export class WsMsgpackServer extends WsMsgpackDispatcher<WsMsgpackServerEvents, WsMsgpackStatus> implements CustomTransportStrategy {
  private wss: WebSocketServer | undefined;
  private ownHttpServer: HttpServer | HttpsServer | undefined;
  /** The checks of every upgrade: connection limit, Origin, authentication, handshake timeout. */
  private readonly gate: UpgradeGate;
  private unroute: (() => void) | undefined;
  /** Open connections, each with its peer. */
  private readonly connections = new Map<Connection, ConnectionPeer>();
  private readonly directory = new LocalPeerDirectory();
  /** Listeners registered with on(); events fire after this transport's own checks. */
  private readonly events = new ReportingListeners<WsMsgpackServerEvents>((message, stack) => this.logger.error(message, stack));
  private phase: ServerPhase = { name: 'idle' };
  private readonly drainTimeout: number;
  private readonly closeTimeout: number;
  /** What the frames of all peers hold (maxServerInboundBytes), ended connections' lingering handlers included. */
  private readonly inbound: BufferBudget;
  /** Where the server says once where it listens (Nest's transports do). */
  private readonly listenLog = new Logger('WsMsgpackServer');
  /** The `cluster` option's side of this server (nothing without it). */
  private readonly clusterBinding: ClusterBinding;

  constructor(private readonly options: WsMsgpackServerOptions = {}) {
    super();
    const resolved = resolveServerOptions(options, () => new UpgradeGate(options, (err) => this.emitError(err))); // every option checked here
    this.drainTimeout = resolved.drainTimeout;
    this.closeTimeout = resolved.closeTimeout;
    this.gate = resolved.gate;
    this.inbound = new BufferBudget(resolved.maxServerInboundBytes || Infinity); // 0: no limit
    this.callLog = callLogOf(options.logCalls);
    this.clusterBinding = new ClusterBinding(options.cluster, this.directory, options, (err) => this.emitError(err));
  }

  /** Memory the frames of all peers hold now, as `maxServerInboundBytes` counts it. For metrics. */
  get inboundBytes(): number {
    return this.inbound.used;
  }

  /**
   * Starts accepting connections; bind errors (EADDRINUSE) go to `callback`. A `close()` while
   * the standalone server is still binding (e.g. looking `host` up) calls the bind off: nothing
   * is left listening, and `callback` is called without an error once the close is done.
   */
  listen(callback: (error?: unknown, ...info: unknown[]) => void): void {
    if (this.phase.name === 'closed') this.phase = { name: 'idle' }; // closing ends with a new listen(), even one that fails
    const path = this.options.path ? normalizePath(this.options.path) : null;
    let shared: HttpServer | undefined;
    try {
      shared = sharedServer(this.options.httpServer);
    } catch (e) {
      callback(e);
      return;
    }
    this.wss = this.makeWebSocketServer();
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      this.handleUpgrade(req, socket, head).catch((e: unknown) => {
        socket.destroy();
        this.emitError(asError(e));
      });
    };
    if (shared) this.listenShared(shared, path, onUpgrade, callback);
    else this.listenStandalone(path, onUpgrade, callback);
  }

  /** The `ws` server, in `noServer` mode: this transport hands it the upgrades it admitted. */
  private makeWebSocketServer(): WebSocketServer {
    const wss = new WebSocketServer({
      ...wsSocketOptions(this.options),
      noServer: true,
      clientTracking: true,
      handleProtocols: (offered) => pickProtocol(offered),
    });
    wss.on('error', (err: Error) => this.emitError(err));
    wss.on('connection', (ws: WebSocket, req: IncomingMessage, user?: unknown) => this.onConnection(ws, req, user));
    return wss;
  }

  /** On an HTTP server the app owns: listening at once (the app's server binds its own port). */
  private listenShared(shared: HttpServer, path: string | null, onUpgrade: UpgradeHandler, callback: (error?: unknown) => void): void {
    this.unroute = routeUpgrades(shared, path, onUpgrade, () => void this.close());
    this.phase = { name: 'listening' };
    this.clusterBinding.start();
    this.listenLog.log(`Accepting WebSocket upgrades on path ${path} of the HTTP server${describeAddress(shared.address(), ' (listening on ', ')')}`);
    this._status$.next(WsMsgpackStatus.CONNECTED);
    callback();
  }

  /** On its own HTTP(S) server: binding until the port is bound, or close() calls the bind off. */
  private listenStandalone(path: string | null, onUpgrade: UpgradeHandler, callback: (error?: unknown) => void): void {
    const http = createStandaloneServer(this.options, (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end(`This endpoint speaks WebSocket (subprotocol ${SUBPROTOCOL_V1}).\n`);
    });
    this.ownHttpServer = http;
    this.unroute = routeUpgrades(http as HttpServer, path, onUpgrade);
    let answered = false;
    const answer = (error?: Error): void => {
      if (answered) return;
      answered = true;
      if (error) callback(error);
      else callback();
    };
    const binding: ServerPhase = { name: 'binding', callOff: () => answer() };
    this.phase = binding;
    /** True once close() (or a newer listen()) took over from this listen(). */
    const superseded = (): boolean => this.phase !== binding;
    const onListenError = (err: NodeJS.ErrnoException): void => {
      if (!superseded()) {
        this.phase = { name: 'idle' };
        this._status$.next(WsMsgpackStatus.DISCONNECTED);
        void this.cleanup();
      }
      answer(bindError(err, this.options));
    };
    http.once('error', onListenError);
    http.listen(this.options.port ?? DEFAULT_PORT, this.options.host ?? DEFAULT_HOST, () => {
      // Bound: later server errors (e.g. EMFILE on accept) are reported, not taken for bind errors.
      http.off('error', onListenError);
      http.on('error', (err: Error) => this.emitError(err));
      if (superseded()) {
        // close() came first (Node calls such a bind off; this is in case it could not): never 'connected' after it.
        http.close();
        answer();
        return;
      }
      this.phase = { name: 'listening' };
      this.clusterBinding.start();
      this._status$.next(WsMsgpackStatus.CONNECTED);
      this.listenLog.log(`Listening on ${this.options.tls ? 'wss' : 'ws'}://${describeAddress(http.address())}${path ?? ''}`);
      answer();
    });
  }

  /**
   * True from the moment `close()` (or `app.close()`) starts, through the drain, until a later
   * `listen()`: the server takes no new connection or call. What a readiness probe should report
   * as not ready (`nestjs-ws-msgpack/terminus`'s `isServerHealthy` does).
   */
  get closing(): boolean {
    return this.phase.name === 'draining' || this.phase.name === 'closed';
  }

  /** Closes every connection (code 1001), stops listening, and resolves when done. */
  close(): Promise<void> {
    const phase = this.phase;
    if (phase.name === 'draining' || phase.name === 'closed') return phase.done;
    // A standalone listen() still binding is called off by this close (its callback answers once closed).
    const done = this.doClose(phase.name === 'binding' ? phase.callOff : undefined);
    this.phase = { name: 'draining', done };
    return done;
  }

  /**
   * The `ws` WebSocketServer. Throws before `listen()`.
   *
   * It runs in `noServer` mode (this transport hands it the upgrades it admitted, from its own
   * HTTP server or the shared one), so its own `address()` throws
   * (`The server is operating in "noServer" mode`). For the port, use {@link WsMsgpackServer.address}:
   * `server.address()?.port` (standalone), or the shared HTTP server's `address()`.
   */
  unwrap<T = WebSocketServer>(): T {
    if (!this.wss) {
      throw new Error('Not initialized. Please call the "listen"/"startAllMicroservices" method before accessing the server.');
    }
    return this.wss as T;
  }

  /** Registers a listener for 'connection', 'disconnect' or 'error'. */
  on<EventKey extends keyof WsMsgpackServerEvents = keyof WsMsgpackServerEvents>(event: EventKey, callback: WsMsgpackServerEvents[EventKey]): void {
    this.events.on(event, callback);
  }

  /** Address the standalone server is bound to (null when sharing an HTTP server or not listening). */
  address(): AddressInfo | null {
    const a = this.ownHttpServer?.address();
    return a && typeof a === 'object' ? a : null;
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** The connected peers (look up by id, iterate, count) and broadcast. */
  get peers(): WsMsgpackPeerDirectory {
    return this.directory;
  }

  /**
   * Emits an event to this replica's connected peers, or those `target` selects (a function, or
   * a selection: `{ to: 'room' }`, `{ users: [...] }`, `{ except: [...] }`); returns how many it
   * was handed to, now. Shorthand for `server.peers.broadcast(...)`. With a cluster, the peers of
   * every replica: `await server.cluster.broadcast(pattern, data, selection)`.
   */
  broadcast(pattern: unknown, data: unknown, target?: WsMsgpackBroadcastTarget): number {
    return this.directory.broadcast(pattern, data, target);
  }

  /**
   * The replicas acting as one, with the `cluster` option (`undefined` without it): the peers of
   * every replica (`peer(id)`, `fetchPeers`, `count`) and broadcast to all of them.
   */
  get cluster(): WsMsgpackCluster | undefined {
    return this.clusterBinding.adapter;
  }

  /**
   * Bytes that push streams (Observable handlers faster than their consumers) hold now, over all
   * connections: what `maxStreamBufferBytes` / `maxConnectionBufferBytes` bound. For metrics.
   */
  get bufferedBytes(): number {
    let n = 0;
    for (const conn of this.connections.keys()) n += conn.bufferedBytes;
    return n;
  }

  // ------------------------------------------------------------------

  /**
   * Admits an upgrade through the gate (maxConnections, allowedOrigins, authenticate, all within
   * handshakeTimeout; each refusal is an HTTP answer), then hands it to `ws` with the identity.
   */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const wss = this.wss;
    if (!wss || this.closing) {
      refuseUpgrade(socket, { status: 503, body: 'the server is shutting down' });
      return;
    }
    const admitted = await this.gate.admit(req, socket, wss.clients.size);
    if (!admitted) return; // answered by the gate
    try {
      if (this.closing || this.wss !== wss) {
        refuseUpgrade(socket, { status: 503, body: 'the server is shutting down' }); // closed while the checks ran
        return;
      }
      // Synchronous: the connection is open (and counted in wss.clients) when this returns.
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req, admitted.user));
    } finally {
      admitted.release();
    }
  }

  private onConnection(ws: WebSocket, req: IncomingMessage, user: unknown): void {
    if (ws.protocol !== SUBPROTOCOL_V1) {
      // A bearer-token entry is named, never echoed.
      const offered = String(req.headers['sec-websocket-protocol'] ?? '(none)').replace(/wsmp\.bearer\.[A-Za-z0-9_-]*/g, 'wsmp.bearer.(token)');
      ws.close(CloseCode.UNSUPPORTED_VERSION, `unsupported protocol version: offered ${offered}; this server speaks ${SUBPROTOCOL_V1}`.slice(0, 123));
      return;
    }
    const conn = new Connection(ws, {
      ...this.options,
      role: 'server',
      mapStreamError: toRpcErrorPayload,
      socketSupport: WS_SOCKET_SUPPORT,
      serverInbound: this.inbound,
      guards: NODE_PEER_GUARDS,
    });
    const peer = new ConnectionPeer(conn, { url: req.url ?? '/', headers: req.headers, remoteAddress: req.socket.remoteAddress });
    peer.user = user; // from authenticate(), before any hook or handler can look
    const attachment = { connection: conn, peer, socket: ws, request: req };
    this.connections.set(conn, peer);
    this.directory.add(peer);
    this.clusterBinding.connected(peer);
    conn.onError((err) => this.emitError(err));
    // Registered before 'connection' fires, so a listener that throws or closes the socket cannot
    // leave the connection behind in the table.
    conn.onClose((info) => {
      this.connections.delete(conn);
      this.directory.delete(peer);
      this.clusterBinding.disconnected(peer);
      this.events.emit('disconnect', ws, info.code, info.reason, peer);
      this.detach(attachment, info);
    });
    this.attach(attachment);
    this.events.emit('connection', ws, req, peer);
  }

  protected reportError(error: Error): void {
    this.emitError(error);
  }

  private emitError(err: Error): void {
    this.events.report(err);
  }

  private async doClose(overtaken: (() => void) | undefined): Promise<void> {
    // Upgrades still in allowedOrigins/authenticate are answered now, not when their checks end
    // (at handshakeTimeout, or never): they would hold the HTTP server's close.
    this.gate.refuseWaiting({ status: 503, body: 'the server is shutting down' });
    const timeout = this.closeTimeout;
    const sockets = this.wss ? [...this.wss.clients] : [];
    const closed = whenClosed(sockets);
    await drain([...this.connections.keys()], this.drainTimeout);
    await closeAll([...this.connections.keys()], sockets, closed, timeout);
    await this.hooksSettled(Math.min(timeout, MAX_TIMER_MS)); // disconnected hooks still use the app's providers
    await this.clusterBinding.close(); // the other replicas forget this one's peers at once
    await this.cleanup();
    overtaken?.(); // its callback, without an error (idempotent: a bind that won the race answered already)
    const phase = this.phase;
    if (phase.name === 'draining') this.phase = { name: 'closed', done: phase.done };
    this._status$.next(WsMsgpackStatus.DISCONNECTED);
  }

  private async cleanup(): Promise<void> {
    this.unroute?.();
    this.unroute = undefined;
    const wss = this.wss;
    this.wss = undefined;
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
    const http = this.ownHttpServer;
    this.ownHttpServer = undefined;
    if (http) {
      // Also when it is not listening yet: close() then calls a bind still under way (the host's
      // DNS lookup) off, and its callback runs once the server is closed either way.
      http.closeAllConnections?.();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  }
}

/**
 * Where the server stands, as one state (as `ws` has `_readyState`): not listening; a standalone
 * listen() waiting for its port (`callOff` answers its callback when close() overtakes it);
 * listening; closing (draining, then closing the connections), with the promise close() returns;
 * closed (until a later listen()).
 */
type ServerPhase =
  | { readonly name: 'idle' }
  | { readonly name: 'binding'; readonly callOff: () => void }
  | { readonly name: 'listening' }
  | { readonly name: 'draining' | 'closed'; readonly done: Promise<void> };
