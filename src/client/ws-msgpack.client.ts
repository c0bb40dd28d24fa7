import { Logger } from '@nestjs/common';
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { connectable, defer, Observable, Subject, type Subscription } from 'rxjs';
import type { WebSocket } from 'ws';
import { Connection, type CloseInfo } from '../connection/connection.js';
import { ReportingListeners } from '../connection/listeners.js';
import { resolveLimits, wsSocketOptions, type WsMsgpackCallOptions } from '../connection/options.js';
import { WsMsgpackStatus } from '../constants.js';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { ConnectionPeer } from '../peer/peer.js';
import { toRpcErrorPayload } from '../server/stream-errors.js';
import { WsMsgpackClientHandlers, type ServerLink } from './client-handlers.js';
import { startHandshake, type Handshake } from './handshake.js';
import type { WsMsgpackClientOptions } from './options.js';
import { unpackCall } from '../peer/record.js';

/** A handshake under way and the promise `connect()` callers share. */
interface Attempt {
  handshake: Handshake<Connection>;
  connected: Promise<Connection>;
}

/** How long close() waits for the closing handshake before cutting the socket. */
const CLOSE_TIMEOUT_MS = 2000;

/** Events of {@link WsMsgpackClient.on}. */
export type WsMsgpackClientEvents = {
  /**
   * Something went wrong that no call can be told about: a socket error, an invalid frame from the
   * server (a WsMsgpackError with code PROTOCOL_ERROR), the server's connection-level ERROR, a
   * listener that threw. Without a listener these are logged with Nest's `Logger`.
   */
  error: (error: Error) => void;
  /** The connection opened. */
  connect: () => void;
  /** The connection closed; the next call reconnects. */
  disconnect: (info: CloseInfo) => void;
};

/**
 * Nest `ClientProxy` for {@link WsMsgpackServer}:
 *
 * ```ts
 * ClientsModule.register([{ name: 'MATH', customClass: WsMsgpackClient, options: { url: 'ws://127.0.0.1:3001' } }])
 * ```
 *
 * One multiplexed connection, opened lazily by the first call (or `connect()`); after it drops,
 * the next call opens a new one.
 */
// Status is typed `string` (values: WsMsgpackStatus) so the class fits `ClientsModule`'s `customClass: Type<ClientProxy>`.
export class WsMsgpackClient extends ClientProxy<WsMsgpackClientEvents, string> {
  private connection: Connection | undefined;
  /** The handshake under way and the promise `connect()` callers share. */
  private attempt: Attempt | undefined;
  /** Sockets `close()` is waiting for. */
  private readonly closings = new Set<Promise<void>>();
  /** The open connection with its peer (the server), for exposed handlers. */
  private link: ServerLink | undefined;
  /** The strategy exposeHandlers() made, and the one serving now (after its listen()). */
  private exposed: WsMsgpackClientHandlers | undefined;
  private handlers: WsMsgpackClientHandlers | undefined;
  private readonly events = new ReportingListeners<WsMsgpackClientEvents>((message, stack) => this.logger.error(message, stack));
  private readonly logger = new Logger(WsMsgpackClient.name);

  constructor(private readonly options: WsMsgpackClientOptions) {
    super();
    if (!options || typeof options.url !== 'string') {
      throw new Error('WsMsgpackClient: options.url is required (e.g. "ws://127.0.0.1:3001")');
    }
    resolveLimits(options); // a bad limit fails here, not at the first call
  }

  /** Opens the connection if it is not open. Idempotent; concurrent callers share one attempt. */
  connect(): Promise<Connection> {
    if (this.connection && !this.connection.isClosed) return Promise.resolve(this.connection);
    if (this.attempt) return this.attempt.connected;
    this._status$.next(WsMsgpackStatus.CONNECTING);
    const attempt = {} as Attempt;
    attempt.handshake = startHandshake(
      this.options.url,
      { ...this.options.wsOptions, ...wsSocketOptions(this.options), headers: this.options.headers, handshakeTimeout: this.options.connectTimeout ?? 10_000 },
      (ws) => this.adopt(ws, attempt),
    );
    attempt.connected = attempt.handshake.opened.catch((err: unknown) => {
      if (this.attempt === attempt) {
        this.attempt = undefined;
        this._status$.next(WsMsgpackStatus.DISCONNECTED);
      }
      throw err;
    });
    this.attempt = attempt;
    return attempt.connected;
  }

  /**
   * Closes the connection: calls in flight fail with UNAVAILABLE, a handshake under way is called
   * off (its `connect()` rejects). Resolves once the socket has closed (cut off after 2 s); a
   * second `close()` meanwhile waits for the same.
   */
  async close(): Promise<void> {
    const attempt = this.attempt;
    this.attempt = undefined;
    attempt?.handshake.cancel('client.close() was called during the handshake');
    const conn = this.connection;
    this.connection = undefined;
    // Now, before the calls and listeners below run: a connect() they (or anyone) make meanwhile
    // owns the status from here on.
    this._status$.next(WsMsgpackStatus.DISCONNECTED);
    if (conn) {
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
    if (!this.connection) throw new Error('Not initialized. Please call the "connect" method first.');
    return this.connection.socket as unknown as T;
  }

  /**
   * Sends a request. Cold: connects and sends on subscription; unsubscribing cancels the call on
   * the server. `data` may be a stream (Observable, async iterable, or a non-array iterable) and
   * may be wrapped in a {@link WsMsgpackRecord} for headers, deadline and window.
   */
  override send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    return new Observable<TResult>((subscriber) => {
      const { payload, options } = this.unpack(data);
      const open = this.connection;
      if (open && !open.isClosed) {
        // Connected: start the call now (no promise hop per call).
        return (open.call(pattern, payload, options) as Observable<TResult>).subscribe(subscriber);
      }
      let inner: Subscription | undefined;
      let done = false;
      this.connect().then(
        (conn) => {
          if (done) return;
          inner = (conn.call(pattern, payload, options) as Observable<TResult>).subscribe(subscriber);
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
    let inner: AsyncIterableIterator<unknown> | undefined;
    let starting: Promise<AsyncIterableIterator<unknown>> | undefined;
    /** `open` until `return()`, or until connecting failed (then later `next()` calls are done). */
    let phase: 'open' | 'done' = 'open';
    let onReturn!: () => void;
    const returned = new Promise<undefined>((resolve) => (onReturn = () => resolve(undefined)));
    const done: IteratorResult<TResult> = { value: undefined, done: true };
    const iterator: AsyncIterableIterator<TResult> = {
      next: async () => {
        if (phase === 'done') return done;
        starting ??= this.connect().then((conn) => (inner = conn.iterate(pattern, payload, options)));
        let it: AsyncIterableIterator<unknown> | undefined;
        try {
          it = await Promise.race([starting, returned]); // return() settles a next() still connecting
        } catch (e) {
          if ((phase as string) === 'done') return done; // return() came first
          phase = 'done';
          throw e;
        }
        if ((phase as string) === 'done' || !it) return done; // return() came while connecting: the call never starts
        return (await it.next()) as IteratorResult<TResult>;
      },
      // Not queued behind a pending next(): it settles that next() and cancels the call at once.
      return: async () => {
        phase = 'done';
        onReturn();
        await inner?.return?.();
        return done;
      },
      throw: async (error: unknown) => {
        await iterator.return!();
        throw error;
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /**
   * Emits an event. Like Nest's built-in clients it is sent right away (hot); the returned
   * Observable completes once the event was handed to the socket, or errors.
   */
  override emit<TResult = undefined, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = this.unpack(data);
    const source = defer(async () => {
      const conn = await this.connect();
      conn.emit(pattern, payload, options.headers);
      return undefined as TResult;
    });
    const hot = connectable(source, { connector: () => new Subject<TResult>(), resetOnDisconnect: false });
    hot.connect();
    return hot;
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
    const conn = await this.connect();
    const { payload, options } = this.unpack(packet.data);
    conn.emit(packet.pattern, payload, options.headers);
    return undefined as T;
  }

  private unpack(data: unknown): { payload: unknown; options: WsMsgpackCallOptions } {
    return unpackCall(data, this.options.timeout);
  }


  /** The handshake of `attempt` succeeded (this runs in the socket's 'open' event): the socket becomes this client's connection. */
  private adopt(ws: WebSocket, attempt: Attempt): Connection {
    if (this.attempt !== attempt) {
      // Cannot happen (close() cancels the handshake first); kept so a stray socket can never be adopted.
      throw new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, `cannot connect to ${this.options.url}: client.close() was called during the handshake`);
    }
    // If this throws, connect() rejects and reports DISCONNECTED.
    const conn = new Connection(ws, { ...this.options, role: 'client', mapStreamError: toRpcErrorPayload });
    this.attempt = undefined;
    const link: ServerLink = { connection: conn, peer: new ConnectionPeer(conn, { url: this.options.url, headers: {}, remoteAddress: undefined }, this.options.timeout), socket: ws };
    conn.onError((err) => this.emitError(err));
    this.serveNothing(conn);
    conn.onClose((info) => {
      if (this.link === link) this.link = undefined;
      if (this.connection === conn) {
        this.connection = undefined;
        this._status$.next(WsMsgpackStatus.DISCONNECTED);
      }
      this.events.emit('disconnect', info);
      this.handlers?.detachFrom(link, info);
    });
    this.connection = conn;
    this.link = link;
    this.handlers?.attachTo(link);
    this._status$.next(WsMsgpackStatus.CONNECTED);
    this.events.emit('connect');
    return conn;
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

  /** @internal The strategy's listen(): dispatch the server's calls into it from now on. */
  serveWith(handlers: WsMsgpackClientHandlers | undefined): void {
    if (this.handlers === handlers) return;
    const link = this.link && !this.link.connection.isClosed ? this.link : undefined;
    const previous = this.handlers;
    this.handlers = handlers;
    if (previous && link) {
      // For the handlers going away, this is the end of the connection: their disconnected hook runs.
      this.serveNothing(link.connection);
      previous.detachFrom(link, { code: 1001, reason: 'client handlers closed' });
    }
    if (handlers && link) handlers.attachTo(link);
  }

  /** No handlers exposed: the server's calls get UNIMPLEMENTED, its events are reported as dropped. */
  private serveNothing(conn: Connection): void {
    conn.onRequest(undefined);
    conn.onEvent((event) =>
      this.emitError(new Error(`an event from the server (pattern ${JSON.stringify(event.pattern)}) was dropped: this client exposes no handlers (see exposeHandlers())`)),
    );
  }

  /** @internal Reports an error of the exposed handlers. */
  reportError(error: Error): void {
    this.emitError(error);
  }

  private emitError(err: Error): void {
    this.events.report(err);
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
