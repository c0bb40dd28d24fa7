import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { connectable, defer, Observable, Subject, type Subscription } from 'rxjs';
import type { WebSocket } from 'ws';
import { Connection, type CloseInfo } from '../connection/connection.js';
import { ReportingListeners } from '../connection/listeners.js';
import { resolveLimits, wsSocketOptions, type WsMsgpackCallOptions } from '../connection/options.js';
import { DEFAULT_RECONNECT, Session, type Dialer, type SessionPhase } from '../connection/session.js';
import { WsMsgpackStatus } from '../constants.js';
import { ConnectionPeer } from '../peer/peer.js';
import { unpackCall } from '../peer/record.js';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { toRpcErrorPayload } from '../server/stream-errors.js';
import { clientIterator } from './client-iterator.js';
import { WsMsgpackClientHandlers, type ServerLink } from './client-handlers.js';
import { startHandshake, type Handshake } from './handshake.js';
import type { WsMsgpackClientOptions } from './options.js';

/** How long close() waits for the closing handshake before cutting the socket. */
const CLOSE_TIMEOUT_MS = 2000;

const STATUS_OF: Record<SessionPhase, WsMsgpackStatus | undefined> = {
  idle: undefined,
  connecting: WsMsgpackStatus.CONNECTING,
  connected: WsMsgpackStatus.CONNECTED,
  reconnecting: WsMsgpackStatus.RECONNECTING,
  disconnected: WsMsgpackStatus.DISCONNECTED,
  closed: WsMsgpackStatus.CLOSED,
};

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
  private readonly session: Session;
  /** Every connection not closed yet (one, or more while an old one drains), with its server peer. */
  private readonly links = new Map<Connection, ServerLink>();
  /** Sockets `close()` is waiting for. */
  private readonly closings = new Set<Promise<void>>();
  private readonly events = new ReportingListeners<WsMsgpackClientEvents>((message, stack) => this.logger.error(message, stack));
  private readonly logger = new Logger(WsMsgpackClient.name);
  /** Events waiting for a connection. */
  private pendingEvents = 0;
  /** The strategy exposeHandlers() made, and the one serving now (after its listen()). */
  private exposed: WsMsgpackClientHandlers | undefined;
  private handlers: WsMsgpackClientHandlers | undefined;

  constructor(private readonly options: WsMsgpackClientOptions) {
    super();
    const urls = typeof options?.url === 'string' ? [options.url] : options?.url;
    if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
      throw new Error('WsMsgpackClient: options.url is required (e.g. "ws://127.0.0.1:3001", or a list of replicas)');
    }
    resolveLimits(options); // a bad limit fails here, not at the first call
    const reconnect = options.reconnect === false ? false : { ...DEFAULT_RECONNECT, ...(typeof options.reconnect === 'object' ? options.reconnect : {}) };
    this.session = new Session(urls, this.dialer, reconnect, {
      phase: (phase) => {
        const status = STATUS_OF[phase];
        if (status) this._status$.next(status);
      },
      connected: () => this.events.emit('connect'),
      disconnected: (_conn, info) => this.events.emit('disconnect', info),
    });
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
    return this.session.ready(this.readyTimeout);
  }

  /**
   * Closes the connection: calls in flight fail with UNAVAILABLE, a handshake under way is called
   * off, reconnecting stops, and calls waiting for a connection fail. Resolves once the sockets
   * have closed (cut off after 2 s). A later call or `connect()` opens a new connection.
   */
  async close(): Promise<void> {
    this.session.close(); // status CLOSED now: a connect() made from here on owns the status
    for (const conn of [...this.links.keys()]) {
      conn.close(1000, 'client closed');
      const closed = whenSocketClosed(conn.socket as unknown as WebSocket, CLOSE_TIMEOUT_MS);
      this.closings.add(closed);
      void closed.then(() => this.closings.delete(closed));
    }
    await Promise.all([...this.closings]);
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
    const conn = this.session.connection;
    if (!conn) throw new Error('Not initialized. Please call the "connect" method first.');
    return conn.socket as unknown as T;
  }

  /**
   * Sends a request. Cold: sends on subscription (waiting for the connection if needed, see
   * `waitForReady`); unsubscribing cancels the call on the server. `data` may be a stream
   * (Observable, async iterable, or a non-array iterable) and may be a {@link WsMsgpackRecord}.
   */
  override send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    return new Observable<TResult>((subscriber) => {
      const { payload, options } = this.unpack(data);
      const open = this.session.connection;
      // Connected: start the call now (no promise hop per call).
      if (open) return (open.call(pattern, payload, options) as Observable<TResult>).subscribe(subscriber);
      let inner: Subscription | undefined;
      let done = false;
      this.whenReady(options).then(
        ({ conn, options: remaining }) => {
          if (!done) inner = (conn.call(pattern, payload, remaining) as Observable<TResult>).subscribe(subscriber);
        },
        (err: unknown) => subscriber.error(err),
      );
      return () => {
        done = true;
        inner?.unsubscribe();
      };
    });
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
    return clientIterator<TResult>(() => this.whenReady(options), pattern, payload);
  }

  /**
   * Emits an event. Like Nest's built-in clients it is sent right away (hot) when connected, or as
   * soon as the connection is ready (see `waitForReady`; at most `maxPendingEvents` wait). The
   * returned Observable completes once the event was handed to the socket, or errors (UNAVAILABLE).
   */
  override emit<TResult = undefined, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = this.unpack(data);
    const source = defer(async () => {
      (await this.eventConnection(options)).emit(pattern, payload, options.headers);
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
    (await this.eventConnection(options)).emit(packet.pattern, payload, options.headers);
    return undefined as T;
  }

  private get readyTimeout(): number {
    return this.options.readyTimeout ?? 10_000;
  }

  private unpack(data: unknown): { payload: unknown; options: WsMsgpackCallOptions } {
    return unpackCall(data, this.options.timeout);
  }

  /**
   * Waits for a connection on behalf of a call: up to its deadline (which then fails it with
   * DEADLINE_EXCEEDED), else `readyTimeout`; at once when it does not wait for ready. Resolves with
   * the connection and the options with what is left of the deadline.
   */
  private async whenReady(options: WsMsgpackCallOptions): Promise<{ conn: Connection; options: WsMsgpackCallOptions }> {
    const open = this.session.connection;
    if (open) return { conn: open, options };
    const failFast = (options.waitForReady ?? this.options.waitForReady ?? true) === false;
    const deadline = options.timeout !== undefined && options.timeout > 0 && Number.isFinite(options.timeout) ? options.timeout : undefined;
    const started = Date.now();
    try {
      const conn = await this.session.ready(deadline ?? this.readyTimeout, failFast);
      if (deadline === undefined) return { conn, options };
      return { conn, options: { ...options, timeout: Math.max(1, deadline - (Date.now() - started)), declaredTimeout: deadline } };
    } catch (e) {
      if (deadline !== undefined && Date.now() - started >= deadline) {
        throw new WsMsgpackError(WsMsgpackErrorCode.DEADLINE_EXCEEDED, `deadline of ${deadline} ms exceeded while waiting for a connection`, (e as WsMsgpackError).details);
      }
      throw e;
    }
  }

  /** The connection for an event: now, or after waiting (bounded in count). */
  private async eventConnection(options: WsMsgpackCallOptions): Promise<Connection> {
    const open = this.session.connection;
    if (open) return open;
    const max = this.options.maxPendingEvents ?? 1000;
    if (this.pendingEvents >= max) throw new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, `not connected, and ${max} events already wait for the connection (maxPendingEvents)`);
    this.pendingEvents++;
    try {
      return (await this.whenReady(options)).conn;
    } finally {
      this.pendingEvents--;
    }
  }

  /** Opens one socket; the Connection is made in its 'open' event (see adopt). */
  private readonly dialer: Dialer = {
    dial: (url) => {
      let handshake: Handshake<Connection> | undefined;
      let cancelled: string | undefined;
      const opened = (async (): Promise<Connection> => {
        const h = this.options.headers;
        const headers = typeof h === 'function' ? await h() : h;
        if (cancelled !== undefined) throw new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, `cannot connect to ${url}: ${cancelled}`);
        handshake = startHandshake(
          url,
          { ...this.options.wsOptions, ...wsSocketOptions(this.options), headers, handshakeTimeout: this.options.connectTimeout ?? 10_000 },
          (ws) => this.adopt(ws, url),
        );
        return handshake.opened;
      })();
      return {
        opened,
        cancel: (reason) => {
          cancelled = reason;
          handshake?.cancel(reason);
        },
      };
    },
  };

  /** A handshake succeeded (this runs in the socket's 'open' event, before any frame is handled). */
  private adopt(ws: WebSocket, url: string): Connection {
    const conn = new Connection(ws, { ...this.options, role: 'client', mapStreamError: toRpcErrorPayload });
    const link: ServerLink = { connection: conn, peer: new ConnectionPeer(conn, { url, headers: {}, remoteAddress: undefined }, this.options.timeout), socket: ws };
    this.links.set(conn, link);
    conn.onError((err) => this.events.report(err));
    conn.onClose((info) => {
      this.links.delete(conn);
      this.handlers?.detachFrom(link, info);
    });
    if (this.handlers) this.handlers.attachTo(link);
    else this.serveNothing(conn);
    return conn;
  }

  /** No handlers exposed: the server's calls get UNIMPLEMENTED, its events are reported as dropped. */
  private serveNothing(conn: Connection): void {
    conn.onRequest(undefined);
    conn.onEvent((event) =>
      this.events.report(new Error(`an event from the server (pattern ${JSON.stringify(event.pattern)}) was dropped: this client exposes no handlers (see exposeHandlers())`)),
    );
  }
}

/** Resolves when `ws` has closed, terminating it after `ms`. */
function whenSocketClosed(ws: WebSocket, ms: number): Promise<void> {
  if (ws.readyState === ws.CLOSED) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => ws.terminate(), ms);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
