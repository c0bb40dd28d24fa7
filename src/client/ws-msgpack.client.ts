import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { connectable, defer, Observable, Subject } from 'rxjs';
import type { WebSocket } from 'ws';
import { ClientCore } from '../connection/client-core.js';
import { ServingConnection } from '../connection/serving-connection.js';
import { WS_SOCKET_SUPPORT } from '../connection/ws-socket.js';
import { NODE_PEER_GUARDS } from '../connection/peer-guards.js';
import type { CloseInfo, Connection } from '../connection/connection.js';
import { ReportingListeners } from '../connection/listeners.js';
import { wsSocketOptions, type WsMsgpackCallOptions } from '../connection/options.js';
import { PING_PATTERN } from '../protocol/constants.js';
import type { WsMsgpackStatus } from '../constants.js';
import { ConnectionPeer } from '../peer/peer.js';
import { unpackCall } from '../peer/record.js';
import { toRpcErrorPayload } from '../server/stream-errors.js';
import { activeTracing } from '../tracing/tracing.js';
import { WsMsgpackClientHandlers, type ServerLink } from './client-handlers.js';
import { startHandshake, type Handshake } from './handshake.js';
import type { WsMsgpackClientOptions } from './options.js';

/** Events of {@link WsMsgpackClient.on}. */
export type WsMsgpackClientEvents = {
  /**
   * Something went wrong that no call can be told about: a socket error, an invalid frame from the
   * server (a WsMsgpackError with code PROTOCOL_ERROR), the server's connection-level ERROR, a
   * listener that threw. Without a listener these are logged with Nest's `Logger`.
   */
  error: (error: Error) => void;
  /** A connection opened. */
  connect: () => void;
  /** A connection ended (or was left for a new one, the server going away); reconnecting follows unless closed. */
  disconnect: (info: CloseInfo) => void;
};

/**
 * Nest `ClientProxy` for {@link WsMsgpackServer}:
 *
 * ```ts
 * ClientsModule.register([{ name: 'MATH', customClass: WsMsgpackClient, options: { url: 'ws://127.0.0.1:3001' } }])
 * ```
 *
 * One multiplexed connection, opened lazily by the first call (or `connect()`); when it drops it
 * is opened again by itself, with backoff, and calls made meanwhile wait for it (up to their
 * deadline). Calls in flight when it drops fail with UNAVAILABLE: they are never re-sent.
 */
// The base's Status parameter stays `string`, so the class fits `ClientsModule`'s `customClass: Type<ClientProxy>`;
// `status` itself is typed below.
export class WsMsgpackClient extends ClientProxy<WsMsgpackClientEvents, string> {
  private readonly core: ClientCore;
  /** Every connection not closed yet (one, or more while an old one drains), with its server peer. */
  private readonly links = new Map<Connection, ServerLink>();
  private readonly events = new ReportingListeners<WsMsgpackClientEvents>((message, stack) => this.logger.error(message, stack));
  private readonly logger = new Logger(WsMsgpackClient.name);
  /** The strategy exposeHandlers() made, and the one serving now (after its listen()). */
  private exposed: WsMsgpackClientHandlers | undefined;
  private handlers: WsMsgpackClientHandlers | undefined;

  constructor(private readonly options: WsMsgpackClientOptions) {
    super();
    this.core = new ClientCore(
      options,
      { mapStreamError: toRpcErrorPayload, socketSupport: WS_SOCKET_SUPPORT, guards: NODE_PEER_GUARDS },
      {
        prepare: { name: 'headers', option: options.headers },
        open: (url, headers, adopt) => this.openSocket(url, headers as Record<string, string> | undefined, adopt),
        connection: (socket, options) => new ServingConnection(socket, options),
        attach: (conn) => this.attach(conn as ServingConnection),
        status: (status) => this._status$.next(status),
        connected: () => this.events.emit('connect'),
        disconnected: (_conn, info) => this.events.emit('disconnect', info),
        report: (error) => this.events.report(error),
      },
      'WsMsgpackClient',
    );
    activeTracing(); // resolves the optional @opentelemetry/api now, not during the first call
  }

  /** Where the client's connection stands: connecting, connected, reconnecting, disconnected (gave up), closed. */
  override get status(): Observable<WsMsgpackStatus> {
    return super.status as Observable<WsMsgpackStatus>;
  }

  /**
   * Resolves with the open connection, connecting if needed; waits up to `readyTimeout` (through
   * reconnect attempts), then rejects with UNAVAILABLE naming the last failure. Idempotent.
   */
  connect(): Promise<Connection> {
    return this.core.connect();
  }

  /**
   * Closes the connection: calls in flight fail with UNAVAILABLE, a handshake under way is called
   * off, reconnecting stops, and calls waiting for a connection fail. Resolves once the sockets
   * have closed (cut off after 2 s). A later call or `connect()` opens a new connection.
   */
  close(): Promise<void> {
    return this.core.close(); // status CLOSED at once: a connect() made from here on owns the status
  }

  /** Registers a listener for 'error', 'connect' or 'disconnect'. */
  override on<EventKey extends keyof WsMsgpackClientEvents = keyof WsMsgpackClientEvents>(
    event: EventKey,
    callback: WsMsgpackClientEvents[EventKey],
  ): void {
    this.events.on(event, callback);
  }

  /** The `ws` WebSocket of the current connection. Throws when not connected. */
  unwrap<T = WebSocket>(): T {
    const conn = this.core.connection;
    if (!conn) throw new Error('Not initialized. Please call the "connect" method first.');
    return conn.socket as unknown as T;
  }

  /**
   * Sends a request. Cold: sends on subscription (waiting for the connection if needed, see
   * `waitForReady`); unsubscribing cancels the call on the server. `data` may be a stream
   * (Observable, async iterable, or a non-array iterable) and may be a {@link WsMsgpackRecord}.
   */
  override send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = this.unpack(data);
    // Keep-alive calls (the health check's probe) are not traced: a probe every few seconds would be noise.
    const tracing = pattern === PING_PATTERN ? undefined : activeTracing();
    if (tracing) return tracing.clientCall(pattern, options, (traced) => this.core.call(pattern, payload, traced)) as Observable<TResult>;
    return this.core.call(pattern, payload, options) as Observable<TResult>;
  }

  /**
   * Sends a request and consumes the response by pulling, with end-to-end backpressure: the server
   * is never more than one credit window (`window` option, record `setWindow`) ahead of the loop.
   * `break` (or `return()`) cancels the call on the server.
   *
   * ```ts
   * for await (const row of client.iterate<Row>('export', query)) await slowWrite(row);
   * ```
   */
  iterate<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): AsyncIterableIterator<TResult> {
    const { payload, options } = this.unpack(data);
    const tracing = activeTracing();
    if (tracing) return tracing.clientIterate(pattern, options, (traced) => this.core.iterate<TResult>(pattern, payload, traced));
    return this.core.iterate<TResult>(pattern, payload, options);
  }

  /**
   * Emits an event. Like Nest's built-in clients it is sent right away (hot) when connected, or as
   * soon as the connection is ready (see `waitForReady`; at most `maxPendingEvents` wait). The
   * returned Observable completes once the event was handed to the socket, or errors (UNAVAILABLE).
   */
  override emit<TResult = undefined, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = this.unpack(data);
    const source = defer(async () => {
      await this.sendEvent(pattern, payload, options);
      return undefined as TResult;
    });
    const hot = connectable(source, { connector: () => new Subject<TResult>(), resetOnDisconnect: false });
    hot.connect();
    return hot;
  }

  /**
   * The handlers of this Nest app, exposed to the server over this client's connection (no second
   * socket): pass the strategy to `app.connectMicroservice()`, and the server can call the app's
   * `@MessagePattern` / `@EventPattern` (and `Ws…`) handlers, with guards, pipes, interceptors
   * and exception filters, again after every reconnect.
   *
   * ```ts
   * app.connectMicroservice({ strategy: app.get<WsMsgpackClient>('HUB').exposeHandlers() });
   * await app.startAllMicroservices(); // connects the client
   * ```
   */
  exposeHandlers(): WsMsgpackClientHandlers {
    this.exposed ??= new WsMsgpackClientHandlers(this);
    return this.exposed;
  }

  /** @internal The strategy's listen() and close(): dispatch the server's calls into it, or stop. */
  serveWith(handlers: WsMsgpackClientHandlers | undefined): void {
    if (this.handlers === handlers) return;
    const previous = this.handlers;
    this.handlers = handlers;
    for (const link of this.links.values()) {
      if (link.connection.isClosed) continue;
      if (previous) {
        // For the handlers going away, this is the end of the connection: their disconnected hook runs.
        this.serveNothing(link.connection);
        previous.detachFrom(link, { code: 1001, reason: 'client handlers closed' });
      }
      handlers?.attachTo(link);
    }
  }

  /** @internal Reports an error of the exposed handlers. */
  reportError(error: Error): void {
    this.events.report(error);
  }

  /** Nest's callback-style publish, kept for code that calls it directly. */
  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const sub = this.send(packet.pattern, packet.data).subscribe({
      next: (response) => callback({ response }),
      error: (err: unknown) => callback({ err }),
      complete: () => callback({ isDisposed: true }),
    });
    return () => sub.unsubscribe();
  }

  /** Nest's promise-style event dispatch, kept for code that calls it directly. */
  protected async dispatchEvent<T = unknown>(packet: ReadPacket): Promise<T> {
    const { payload, options } = this.unpack(packet.data);
    await this.sendEvent(packet.pattern, payload, options);
    return undefined as T;
  }

  /** Sends an event through the core; with tracing, in a PRODUCER span whose context goes in the event's headers. */
  private sendEvent(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): Promise<void> {
    const tracing = activeTracing();
    if (tracing) return tracing.producer(pattern, options, (traced) => this.core.emit(pattern, payload, traced));
    return this.core.emit(pattern, payload, options);
  }

  private unpack(data: unknown): { payload: unknown; options: WsMsgpackCallOptions } {
    return unpackCall(data, this.options.timeout);
  }

  /** Opens one `ws` socket with the headers `prepare` gave; `adopt` makes the Connection in its 'open' event. */
  private openSocket(url: string, headers: Record<string, string> | undefined, adopt: (ws: WebSocket) => Connection): Handshake<Connection> {
    return startHandshake(
      url,
      { ...this.options.wsOptions, ...wsSocketOptions(this.options), headers, handshakeTimeout: this.options.connectTimeout ?? 10_000 },
      adopt,
    );
  }

  /** A connection was made (in the socket's 'open' event, before any frame is handled). */
  private attach(conn: ServingConnection): void {
    const link: ServerLink = { connection: conn, peer: new ConnectionPeer(conn, { url: urlOf(conn), headers: {}, remoteAddress: undefined }, this.options.timeout), socket: conn.socket as unknown as WebSocket };
    this.links.set(conn, link);
    conn.onClose((info) => {
      this.links.delete(conn);
      this.handlers?.detachFrom(link, info);
    });
    if (this.handlers) this.handlers.attachTo(link);
    else this.serveNothing(conn);
  }

  /** No handlers exposed: the server's calls get UNIMPLEMENTED, its events are reported as dropped. */
  private serveNothing(conn: Connection): void {
    conn.onRequest(undefined);
    conn.onEvent((event) =>
      this.events.report(new Error(`an event from the server (pattern ${JSON.stringify(event.pattern)}) was dropped: this client exposes no handlers (see exposeHandlers())`)),
    );
  }
}

/** The URL a `ws` client socket was opened to. */
function urlOf(conn: Connection): string {
  return (conn.socket as unknown as { url?: string }).url ?? '';
}

