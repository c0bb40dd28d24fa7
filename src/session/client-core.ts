import { Observable, type Subscription } from 'rxjs';
import { WsMsgpackStatus } from './status.js';
import { WsMsgpackError, deadlineExceeded } from '../protocol/errors.js';
import { Connection, type CloseInfo, type ConnectionOptions } from '../connection/connection.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import { resolveLimits } from '../connection/options.js';
import { DEFAULT_RECONNECT, isReadyTimeout, Session, type SessionPhase } from './session.js';
import { extensionCodecOf } from '../protocol/extensions.js';
import { whenSocketClosed, type WebSocketLike } from '../connection/socket.js';
import { deferredIterator } from '../connection/deferred-iterator.js';
import { checkClientOptions, CLIENT_DEFAULTS, type ClientCoreOptions } from './options.js';
import { connectAttempt, preparedOption, type SocketAttempt } from './attempt.js';
import { EventQueue } from './event-queue.js';

export type { ClientCoreOptions } from './options.js';

/** How long close() waits for a socket's closing handshake before cutting it. */
const CLOSE_TIMEOUT_MS = 2000;

const STATUS_OF: Record<SessionPhase, WsMsgpackStatus | undefined> = {
  idle: undefined,
  connecting: WsMsgpackStatus.CONNECTING,
  connected: WsMsgpackStatus.CONNECTED,
  reconnecting: WsMsgpackStatus.RECONNECTING,
  disconnected: WsMsgpackStatus.DISCONNECTED,
  closed: WsMsgpackStatus.CLOSED,
};

/** What differs between the Node client and the browser client. */
export interface ClientCoreHooks {
  /**
   * What an attempt needs first (the upgrade headers, a token), named for messages: the option's
   * value, or a (async) function giving it, called before every attempt. Its time counts against
   * `connectTimeout`, and `close()` calls it off; a function that throws fails the attempt.
   */
  prepare?: { readonly name: string; readonly option: unknown };
  /**
   * Opens one WebSocket to `url` with what `prepare` gave and calls `adopt` with it synchronously
   * in its open event (so the Connection binds before any frame is delivered).
   */
  open(url: string, prepared: unknown, adopt: (socket: WebSocketLike) => Connection): SocketAttempt;
  /** Makes the Connection for an open socket (default: a plain {@link Connection}). */
  connection?(socket: WebSocketLike, options: ConnectionOptions): Connection;
  /** A connection was made, before any frame was handled: serve the server's calls on it. */
  attach(connection: Connection): void;
  /** The client's status changed. */
  status(status: WsMsgpackStatus): void;
  /** A connection opened and is now the current one. */
  connected(connection: Connection): void;
  /** The current connection ended (or was left because the server is going away). */
  disconnected(connection: Connection, info: CloseInfo): void;
  /** Something no call can be told about (socket errors, invalid frames from the server). */
  report(error: Error): void;
}

/** The URL list of the options, validated. */
export function clientUrls(options: { url?: unknown } | undefined, owner: string): readonly string[] {
  const url = options?.url;
  const urls = typeof url === 'string' ? [url] : url;
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
    throw new Error(`${owner}: options.url is required (e.g. "ws://127.0.0.1:3001", or a list of replicas)`);
  }
  for (const u of urls as string[]) {
    let protocol = '';
    try {
      protocol = new URL(u).protocol;
    } catch {
      /* not a URL */
    }
    if (!['ws:', 'wss:', 'http:', 'https:'].includes(protocol)) throw new TypeError(`${owner}: options.url ${JSON.stringify(u)} is not a ws:// or wss:// URL`);
  }
  return urls as readonly string[];
}

/**
 * The part of a client that does not depend on Nest or on a WebSocket implementation: one
 * {@link Session} (connect on demand, reconnect with backoff, fail over, wait for ready), the
 * connections it made, and calls, streams and events that wait for a connection when there is
 * none. `WsMsgpackClient` (Nest) and `WsMsgpackWebClient` (browser) are thin shells over it.
 */
export class ClientCore {
  private readonly session: Session;
  /** Every connection not closed yet (one, or more while an old one drains). */
  private readonly open = new Set<Connection>();
  /** Sockets `close()` is waiting for. */
  private readonly closings = new Set<Promise<void>>();
  /** Events, in the order they were emitted (waiting for a connection when there is none). */
  private readonly events: EventQueue;

  constructor(
    private readonly options: ClientCoreOptions,
    private readonly connectionOptions: Omit<ConnectionOptions, 'role'>,
    private readonly hooks: ClientCoreHooks,
    owner: string,
  ) {
    const urls = clientUrls(options, owner);
    resolveLimits(options); // a bad limit fails here, not at the first call
    extensionCodecOf(options); // and bad extensions (each connection's codec builds its own)
    checkClientOptions(options);
    this.events = new EventQueue(options.maxPendingEvents ?? CLIENT_DEFAULTS.maxPendingEvents, (callOptions) => this.whenReady(callOptions));
    const reconnect = options.reconnect === false ? false : { ...DEFAULT_RECONNECT, ...(typeof options.reconnect === 'object' ? options.reconnect : {}) };
    this.session = new Session(urls, { dial: (url) => this.attempt(url) }, reconnect, {
      phase: (phase) => {
        const status = STATUS_OF[phase];
        if (status) this.hooks.status(status);
      },
      connected: (conn) => this.hooks.connected(conn),
      disconnected: (conn, info) => this.hooks.disconnected(conn, info),
      gaveUp: (error) => this.hooks.report(new Error(`stopped reconnecting: ${error instanceof Error ? error.message : String(error)}`, { cause: error })),
    });
  }

  /** The connection new calls use, when there is one. */
  get connection(): Connection | undefined {
    return this.session.connection;
  }

  /** Every connection not closed yet. */
  get connections(): readonly Connection[] {
    return [...this.open];
  }

  /**
   * Resolves with the open connection, connecting if needed. With `waitForReady` (the argument,
   * else the option) it waits through attempts up to `readyTimeout`; without, it fails with the
   * first failed attempt's UNAVAILABLE (at once while the last attempt failed).
   */
  connect(waitForReady?: boolean): Promise<Connection> {
    return this.session.ready(this.readyTimeout, !(waitForReady ?? this.options.waitForReady ?? false));
  }

  /** Starts connecting in the background when nobody is (the attempts go on with their backoff); waits for nothing. */
  start(): void {
    this.session.start();
  }

  /** Stops reconnecting, fails waiting calls, closes every connection; resolves once the sockets closed (cut after 2 s). */
  async close(): Promise<void> {
    this.session.close();
    for (const conn of [...this.open]) {
      conn.close(1000, 'client closed');
      const closed = whenSocketClosed(conn.socket, CLOSE_TIMEOUT_MS, this.connectionOptions.socketSupport);
      this.closings.add(closed);
      void closed.then(() => this.closings.delete(closed));
    }
    await Promise.all([...this.closings]);
  }

  /** A call (cold): starts on subscription, waiting for the connection if needed; unsubscribing cancels it. */
  call(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): Observable<unknown> {
    return new Observable<unknown>((subscriber) => {
      const open = this.session.connection;
      // Connected: start the call now (no promise hop per call).
      if (open) return open.call(pattern, payload, options).subscribe(subscriber);
      let inner: Subscription | undefined;
      let done = false;
      this.whenReady(options).then(
        ({ conn, options: remaining }) => {
          if (!done) inner = conn.call(pattern, payload, remaining).subscribe(subscriber);
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
   * A call whose response is pulled (credit-window backpressure): it connects on the first
   * `next()`, with what is left of the deadline; `return()` cancels it, even while connecting.
   */
  iterate<T>(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): AsyncIterableIterator<T> {
    return deferredIterator(() => this.whenReady(options).then(({ conn, options: remaining }) => conn.iterate(pattern, payload, remaining) as AsyncIterableIterator<T>));
  }

  /**
   * Sends an event now, or once connected (at most `maxPendingEvents` wait). Events go out in the
   * order they were emitted: while some wait, a new one waits behind them even when connected.
   */
  emit(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): Promise<void> {
    return this.events.emit(this.session.connection, pattern, payload, options);
  }

  private get readyTimeout(): number {
    return this.options.readyTimeout ?? CLIENT_DEFAULTS.readyTimeout;
  }

  /**
   * Waits for a connection on behalf of a call: up to its deadline (which then fails it with
   * DEADLINE_EXCEEDED), else `readyTimeout`; without wait-for-ready, only for an attempt under way
   * (see {@link Session.ready}). Resolves with
   * the connection and the options with what is left of the deadline.
   */
  private async whenReady(options: WsMsgpackCallOptions): Promise<{ conn: Connection; options: WsMsgpackCallOptions }> {
    const open = this.session.connection;
    if (open) return { conn: open, options };
    const failFast = !(options.waitForReady ?? this.options.waitForReady ?? false);
    const deadline = options.timeout !== undefined && options.timeout > 0 && Number.isFinite(options.timeout) ? options.timeout : undefined;
    const started = Date.now();
    try {
      const conn = await this.session.ready(deadline ?? this.readyTimeout, failFast);
      if (deadline === undefined) return { conn, options };
      return { conn, options: { ...options, timeout: Math.max(1, deadline - (Date.now() - started)), declaredTimeout: deadline } };
    } catch (e) {
      // Its own wait ran out (not the clock's reading, which a timer may beat by a millisecond).
      if (deadline !== undefined && isReadyTimeout(e)) {
        throw deadlineExceeded(`deadline of ${deadline} ms exceeded while waiting for a connection`, (e as WsMsgpackError).details);
      }
      throw e;
    }
  }

  /** One connection attempt ({@link connectAttempt}): `prepare` (headers, token), then the socket, within `connectTimeout`. */
  private attempt(url: string): SocketAttempt {
    const prepare = this.hooks.prepare;
    return connectAttempt(url, this.options.connectTimeout ?? CLIENT_DEFAULTS.connectTimeout, {
      prepare: prepare && (() => preparedOption(url, prepare.name, prepare.option, (error) => this.hooks.report(error))),
      open: (prepared) => this.hooks.open(url, prepared, (socket) => this.adopt(socket)),
    });
  }

  /** A handshake succeeded (in the socket's open event, before any frame is handled). */
  private adopt(socket: WebSocketLike): Connection {
    const options: ConnectionOptions = { ...this.options, ...this.connectionOptions, role: 'client' };
    const conn = this.hooks.connection ? this.hooks.connection(socket, options) : new Connection(socket, options);
    this.open.add(conn);
    conn.onError((err) => this.hooks.report(err));
    conn.onClose(() => this.open.delete(conn));
    this.hooks.attach(conn);
    return conn;
  }
}
