import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import { connectable, defer, Observable, Subject, type Subscription } from 'rxjs';
import { WebSocket } from 'ws';
import { Connection, DEFAULT_MAX_PAYLOAD, type CloseInfo } from '../connection/connection.js';
import { DEFAULT_KEEPALIVE_INTERVAL, startKeepAlive } from '../connection/keepalive.js';
import { WsMsgpackStatus } from '../constants.js';
import { SUBPROTOCOL_V1 } from '../protocol/constants.js';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import type { WsMsgpackClientOptions } from './options.js';
import { WsMsgpackRecord, type WsMsgpackCallOptions } from './ws-msgpack.record.js';

const ignore = (): void => {};

/** Events of {@link WsMsgpackClient.on}. */
export type WsMsgpackClientEvents = {
  /** A connection-level error (socket error, or a protocol error the server reported). */
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
  private connecting: Promise<Connection> | undefined;
  private readonly handlers: { [K in keyof WsMsgpackClientEvents]: WsMsgpackClientEvents[K][] } = {
    error: [],
    connect: [],
    disconnect: [],
  };

  constructor(private readonly options: WsMsgpackClientOptions) {
    super();
    if (!options || typeof options.url !== 'string') {
      throw new Error('WsMsgpackClient: options.url is required (e.g. "ws://127.0.0.1:3001")');
    }
    this.initializeSerializer(options as never);
    this.initializeDeserializer(options as never);
  }

  /** Opens the connection if it is not open. Idempotent; concurrent callers share one attempt. */
  connect(): Promise<Connection> {
    if (this.connection && !this.connection.isClosed) return Promise.resolve(this.connection);
    if (!this.connecting) {
      const attempt: Promise<Connection> = this.open().finally(() => {
        if (this.connecting === attempt) this.connecting = undefined; // close() may have started another
      });
      this.connecting = attempt;
    }
    return this.connecting;
  }

  /** Closes the connection; calls in flight fail with UNAVAILABLE. */
  async close(): Promise<void> {
    const pending = this.connecting;
    this.connecting = undefined;
    this.connection?.close(1000, 'client closed');
    this.connection = undefined;
    if (pending) {
      await pending.then(
        (c) => c.close(1000, 'client closed'),
        () => {},
      );
    }
    this._status$.next(WsMsgpackStatus.DISCONNECTED);
  }

  /** Registers a listener for 'error', 'connect' or 'disconnect'. */
  override on<EventKey extends keyof WsMsgpackClientEvents = keyof WsMsgpackClientEvents>(
    event: EventKey,
    callback: WsMsgpackClientEvents[EventKey],
  ): void {
    this.handlers[event].push(callback);
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
  async *iterate<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): AsyncGenerator<TResult, void, undefined> {
    const { payload, options } = this.unpack(data);
    const conn = await this.connect();
    yield* conn.iterate(pattern, payload, options) as AsyncIterableIterator<TResult>;
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
    const record = data instanceof WsMsgpackRecord ? data : undefined;
    const options: WsMsgpackCallOptions = { ...record?.options };
    if (options.timeout === undefined && this.options.timeout !== undefined) options.timeout = this.options.timeout;
    return { payload: record ? record.data : data, options };
  }

  private open(): Promise<Connection> {
    this._status$.next(WsMsgpackStatus.CONNECTING);
    return new Promise<Connection>((resolve, reject) => {
      const ws = new WebSocket(this.options.url, [SUBPROTOCOL_V1], {
        ...this.options.wsOptions,
        maxPayload: this.options.maxPayload ?? DEFAULT_MAX_PAYLOAD,
        perMessageDeflate: false,
        headers: this.options.headers,
        handshakeTimeout: this.options.connectTimeout ?? 10_000,
      });
      const fail = (reason: string, cause?: unknown): void => {
        this._status$.next(WsMsgpackStatus.DISCONNECTED);
        reject(new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, `cannot connect to ${this.options.url}: ${reason}`, cause === undefined ? undefined : { cause: String(cause) }));
      };
      const onError = (err: Error): void => {
        cleanup();
        ws.terminate();
        fail(err.message, err);
      };
      const onClose = (code: number, reason: Buffer): void => {
        cleanup();
        fail(`closed during handshake (code ${code}${reason.length ? `: ${reason.toString()}` : ''})`);
      };
      const onUnexpected = (_req: unknown, res: { statusCode?: number; statusMessage?: string }): void => {
        cleanup();
        ws.terminate();
        fail(`HTTP ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trim());
      };
      const onOpen = (): void => {
        cleanup();
        const conn = new Connection(ws, { ...this.options, role: 'client' });
        const stopKeepAlive = startKeepAlive(ws, this.options.keepAliveInterval ?? DEFAULT_KEEPALIVE_INTERVAL);
        conn.onError((err) => this.fire('error', err));
        conn.onClose((info) => {
          stopKeepAlive();
          if (this.connection === conn) {
            this.connection = undefined;
            this._status$.next(WsMsgpackStatus.DISCONNECTED);
          }
          this.fire('disconnect', info);
        });
        this.connection = conn;
        this._status$.next(WsMsgpackStatus.CONNECTED);
        this.fire('connect');
        resolve(conn);
      };
      const cleanup = (): void => {
        ws.on('error', ignore); // terminate() during the handshake reports an error nobody needs
        ws.off('open', onOpen);
        ws.off('error', onError);
        ws.off('close', onClose);
        ws.off('unexpected-response', onUnexpected);
      };
      ws.on('open', onOpen);
      ws.on('error', onError);
      ws.on('close', onClose);
      ws.on('unexpected-response', onUnexpected);
    });
  }

  private fire<K extends keyof WsMsgpackClientEvents>(event: K, ...args: Parameters<WsMsgpackClientEvents[K]>): void {
    for (const h of this.handlers[event]) (h as (...a: unknown[]) => void)(...args);
  }
}
