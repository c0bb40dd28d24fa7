import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { connectable, defer, Observable, Subject } from 'rxjs';
import type { WebSocket } from 'ws';
import { ClientCore } from '../session/client-core.js';
import { WS_SOCKET_SUPPORT } from '../node/ws-socket.js';
import { NODE_PEER_GUARDS } from '../node/peer-guards.js';
import { Connection, type CloseInfo } from '../connection/connection.js';
import { ReportingListeners } from '../connection/listeners.js';
import { wsSocketOptions, type WsMsgpackCallOptions } from '../connection/options.js';
import { PING_PATTERN } from '../protocol/constants.js';
import { WsMsgpackStatus } from '../session/status.js';
import { ConnectionPeer } from '../peer/peer.js';
import { unpackCall } from '../peer/record.js';
import { patternAsString, shown } from '../nest/patterns.js';
import { toRpcErrorPayload } from '../nest/stream-errors.js';
import { activeTracing } from '../tracing/tracing.js';
import { abortableIterator } from '../session/abortable.js';
import { WsMsgpackClientHandlers, type ServerLink, type WsMsgpackExposeOptions } from './client-handlers.js';
import { startHandshake, type Handshake } from '../node/handshake.js';
import type { WsMsgpackClientOptions, WsMsgpackIterateOptions } from './options.js';
import type { WsMsgpackCallHeaders } from '../protocol/frames.js';

/** Most patterns whose dropped events are logged (once each); a server sending endless new ones is only counted. */
const MAX_DROPPED_PATTERNS_LOGGED = 1000;

/** Nest's own `serializeResponse` / `serializeError` (identities): a subclass that overrides either gets its responses and errors through them. */
const baseSerializers = ClientProxy.prototype as unknown as { serializeResponse: unknown; serializeError: unknown };

/** Nest 12's `createPacket` (runs the `setOnDispatchHook` hook); absent on Nest 11. */
type CreatePacket = (pattern: unknown, data: unknown) => { metadata?: unknown };

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
 * is opened again by itself, with backoff. Calls made meanwhile wait for an attempt under way and
 * fail at once while the last attempt failed (`waitForReady: true`: they wait through the
 * attempts, up to their deadline). Calls in flight when it drops fail with UNAVAILABLE: they are
 * never re-sent. Like Nest's own clients, responses and errors of `send()` go through
 * `serializeResponse()` / `serializeError()`, and (Nest 12) every request and event through
 * `createPacket()`, whose `setOnDispatchHook()` metadata travels as headers.
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
  private lastStatus: WsMsgpackStatus | undefined;
  private dropped = 0;
  /** Patterns whose dropped events were logged. */
  private readonly droppedPatterns = new Set<string>();

  constructor(private readonly options: WsMsgpackClientOptions) {
    super();
    this.core = new ClientCore(
      options,
      { mapStreamError: toRpcErrorPayload, socketSupport: WS_SOCKET_SUPPORT, guards: NODE_PEER_GUARDS },
      {
        prepare: { name: 'headers', option: options.headers },
        open: (url, headers, adopt) => this.openSocket(url, headers as Record<string, string> | undefined, adopt),
        connection: (socket, options) => new Connection(socket, options),
        attach: (conn) => this.attach(conn as Connection),
        status: (status) => {
          this.lastStatus = status;
          this._status$.next(status);
        },
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
   * Resolves with the open connection, connecting if needed. Like a call: it waits for the attempt
   * under way and rejects with its UNAVAILABLE (`cause`: the socket's error, such as Node's
   * ECONNREFUSED) when it fails, or at once while the last attempt failed; with `waitForReady` it
   * waits through reconnect attempts up to `readyTimeout`. Idempotent.
   */
  connect(): Promise<Connection> {
    return this.core.connect();
  }

  /**
   * Events from the server dropped because this client exposes no handlers (`exposeHandlers()`):
   * not an error (each pattern is logged once, at debug level), only counted here.
   */
  get droppedEvents(): number {
    return this.dropped;
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
  override on<EventKey extends keyof WsMsgpackClientEvents = keyof WsMsgpackClientEvents>(event: EventKey, callback: WsMsgpackClientEvents[EventKey]): void {
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
   * Each response goes through `serializeResponse()`, an error through `serializeError()`.
   */
  override send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const serialized = this.serializeResponse !== baseSerializers.serializeResponse || this.serializeError !== baseSerializers.serializeError;
    return new Observable<TResult>((subscriber) => {
      const call = this.startCall(pattern, data) as Observable<TResult>;
      if (!serialized) return call.subscribe(subscriber);
      const guarded = (f: () => void): void => {
        try {
          f();
        } catch (e) {
          subscriber.error(e); // a serializer that throws fails the call, which cancels it
        }
      };
      return call.subscribe({
        next: (value) => guarded(() => subscriber.next(this.serializeResponse(value) as TResult)),
        error: (err: unknown) => guarded(() => subscriber.error(this.serializeError(err))),
        complete: () => subscriber.complete(),
      });
    });
  }

  /**
   * Sends a request and consumes the response by pulling, with end-to-end backpressure: the server
   * is never more than one credit window (`window` option, record `setWindow`) ahead of the loop.
   * `break` (or `return()`) cancels the call on the server; so does `options.signal`. `options`
   * are a record's per-call options (they win over those of a record passed as `data`).
   *
   * ```ts
   * for await (const row of client.iterate<Row>('export', query, { timeout: 60_000, window: 64, signal })) await slowWrite(row);
   * ```
   */
  iterate<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput, options: WsMsgpackIterateOptions = {}): AsyncIterableIterator<TResult> {
    const { signal, ...callOptions } = options;
    const { payload, options: unpacked } = this.unpack(data, this.dispatchMetadata(pattern, data));
    const merged: WsMsgpackCallOptions = { ...unpacked };
    for (const [key, value] of Object.entries(callOptions)) if (value !== undefined) (merged as Record<string, unknown>)[key] = value;
    if (unpacked.headers && callOptions.headers) merged.headers = { ...unpacked.headers, ...callOptions.headers };
    const tracing = activeTracing();
    const it = tracing
      ? tracing.clientIterate(pattern, merged, (traced) => this.core.iterate<TResult>(pattern, payload, traced))
      : this.core.iterate<TResult>(pattern, payload, merged);
    return signal ? abortableIterator(it, signal) : it;
  }

  /**
   * Emits an event. Like Nest's built-in clients it is sent right away (hot) when connected, or as
   * soon as the connection is ready (see `waitForReady`; at most `maxPendingEvents` wait). The
   * returned Observable completes once the event was handed to the socket, or errors (UNAVAILABLE).
   */
  override emit<TResult = undefined, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = this.unpack(data, this.dispatchMetadata(pattern, data));
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
   * await app.startAllMicroservices(); // returns at once; the client connects in the background
   * ```
   *
   * `startAllMicroservices()` does not wait for the server: the client keeps connecting with its
   * backoff (see `status`) and the handlers are served from the first connection on. With
   * `{ waitForConnection: true }` it waits (up to `readyTimeout`, through reconnect attempts) and
   * fails with UNAVAILABLE when the server cannot be reached. One strategy per client: a later
   * call returns it, with the options it passes (if any) replacing the earlier ones.
   */
  exposeHandlers(options?: WsMsgpackExposeOptions): WsMsgpackClientHandlers {
    this.exposed ??= new WsMsgpackClientHandlers(this);
    if (options) this.exposed.configure(options);
    return this.exposed;
  }

  /** @internal The strategy's start: connect in the background (a first failure is logged once, as a warning). */
  connectInBackground(): void {
    this.core.connect(false).then(undefined, (e: unknown) => {
      if (this.lastStatus === WsMsgpackStatus.CLOSED) return;
      const reason = e instanceof Error ? e.message : String(e);
      if (this.lastStatus === WsMsgpackStatus.DISCONNECTED) {
        // Gave up (reconnect off, or maxAttempts reached): nothing reconnects by itself.
        this.logger.error(
          `could not connect to the server (${reason}) and stopped trying (reconnect is off or its maxAttempts was reached): ` +
            'the exposed handlers are served only once a call or connect() opens a connection',
        );
        return;
      }
      this.logger.warn(`not connected to the server yet (${reason}); reconnecting in the background, the exposed handlers are served once connected`);
    });
  }

  /** @internal The strategy's start with `waitForConnection`: through reconnect attempts, up to `readyTimeout`. */
  connectWaiting(): Promise<Connection> {
    return this.core.connect(true);
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

  /** Nest's callback-style publish (the packet's `metadata` as headers), kept for code that calls it directly. */
  protected publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    const sub = this.startCall(packet.pattern, packet.data, metadataOf(packet as ReadPacket & { metadata?: unknown })).subscribe({
      next: (response) => callback({ response }),
      error: (err: unknown) => callback({ err }),
      complete: () => callback({ isDisposed: true }),
    });
    return () => sub.unsubscribe();
  }

  /** Nest's promise-style event dispatch (the packet's `metadata` as headers), kept for code that calls it directly. */
  protected async dispatchEvent<T = unknown>(packet: ReadPacket): Promise<T> {
    const { payload, options } = this.unpack(packet.data, metadataOf(packet as ReadPacket & { metadata?: unknown }));
    await this.sendEvent(packet.pattern, payload, options);
    return undefined as T;
  }

  /** A call through the core (cold); with tracing, in a CLIENT span. `metadata` defaults to the dispatch hook's. */
  private startCall(pattern: unknown, data: unknown, metadata = this.dispatchMetadata(pattern, data)): Observable<unknown> {
    const { payload, options } = this.unpack(data, metadata);
    // Keep-alive calls (the health check's probe) are not traced: a probe every few seconds would be noise.
    const tracing = pattern === PING_PATTERN ? undefined : activeTracing();
    if (tracing) return tracing.clientCall(pattern, options, (traced) => this.core.call(pattern, payload, traced));
    return this.core.call(pattern, payload, options);
  }

  /**
   * Nest 12: the packet's `metadata` after `createPacket()` (which runs the `setOnDispatchHook()`
   * hook, or a subclass's override). Undefined on Nest 11, and for keep-alive calls.
   */
  private dispatchMetadata(pattern: unknown, data: unknown): Record<string, unknown> | undefined {
    const create = (this as unknown as { createPacket?: CreatePacket }).createPacket;
    if (typeof create !== 'function' || pattern === PING_PATTERN) return undefined;
    return metadataOf(create.call(this, pattern, data));
  }

  /** Sends an event through the core; with tracing, in a PRODUCER span whose context goes in the event's headers. */
  private sendEvent(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): Promise<void> {
    const tracing = activeTracing();
    if (tracing) return tracing.producer(pattern, options, (traced) => this.core.emit(pattern, payload, traced));
    return this.core.emit(pattern, payload, options);
  }

  /** Payload and options of `data` (a record or not); packet metadata joins the headers, a record's own headers win. */
  private unpack(data: unknown, metadata: Record<string, unknown> | undefined): { payload: unknown; options: WsMsgpackCallOptions } {
    const unpacked = unpackCall(data, this.options.timeout);
    if (metadata) unpacked.options = { ...unpacked.options, headers: { ...metadata, ...unpacked.options.headers } as WsMsgpackCallHeaders };
    return unpacked;
  }

  /** Opens one `ws` socket with the headers `prepare` gave; `adopt` makes the Connection in its 'open' event. */
  private openSocket(url: string, headers: Record<string, string> | undefined, adopt: (ws: WebSocket) => Connection): Handshake<Connection> {
    return startHandshake(url, { ...this.options.wsOptions, ...wsSocketOptions(this.options), headers, handshakeTimeout: this.options.connectTimeout ?? 10_000 }, adopt);
  }

  /** A connection was made (in the socket's 'open' event, before any frame is handled). */
  private attach(conn: Connection): void {
    const link: ServerLink = {
      connection: conn,
      peer: new ConnectionPeer(conn, { url: urlOf(conn), headers: {}, remoteAddress: undefined }, this.options.timeout),
      socket: conn.socket as unknown as WebSocket,
    };
    this.links.set(conn, link);
    conn.onClose((info) => {
      this.links.delete(conn);
      this.handlers?.detachFrom(link, info);
    });
    if (this.handlers) this.handlers.attachTo(link);
    else this.serveNothing(conn);
  }

  /**
   * No handlers exposed: the server's calls get UNIMPLEMENTED; its events (a `broadcast()`) are
   * dropped, which is no error: counted in {@link droppedEvents}, each pattern logged once at debug level.
   */
  private serveNothing(conn: Connection): void {
    conn.onRequest(undefined);
    conn.onEvent((event) => {
      this.dropped++;
      if (this.droppedPatterns.size >= MAX_DROPPED_PATTERNS_LOGGED) return;
      const named = shown(patternAsString(event.pattern), event.pattern); // bounded, escaped, never the whole pattern
      if (this.droppedPatterns.has(named)) return;
      this.droppedPatterns.add(named);
      this.logger.debug(
        `events from the server with pattern ${named} are dropped: this client exposes no handlers (see exposeHandlers()); logged once, counted in client.droppedEvents`,
      );
    });
  }
}

/** The URL a `ws` client socket was opened to. */
function urlOf(conn: Connection): string {
  return (conn.socket as unknown as { url?: string }).url ?? '';
}

/** A packet's metadata when it has some (an object with keys). */
function metadataOf(packet: { metadata?: unknown }): Record<string, unknown> | undefined {
  const m = packet.metadata;
  return m !== null && typeof m === 'object' && Object.keys(m).length > 0 ? (m as Record<string, unknown>) : undefined;
}
