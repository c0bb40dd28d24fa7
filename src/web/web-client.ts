import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { ClientCore, type ClientCoreOptions } from '../session/client-core.js';
import type { SocketAttempt } from '../session/attempt.js';
import type { CloseInfo } from '../connection/connection.js';
import { ReportingListeners } from '../connection/listeners.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import type { WsMsgpackStatus } from '../session/status.js';
import { bearerProtocol, SUBPROTOCOL_V1 } from '../protocol/constants.js';
import { openWebSocket, type WebSocketConstructor } from './dial.js';
import { WebHandlers, type WsMsgpackWebHandler } from './handlers.js';
import { abortableIterator, abortedError } from '../session/abortable.js';

/** A bearer token, or a function that gives it (called before every connection attempt). */
export type WsMsgpackToken = string | (() => string | undefined | Promise<string | undefined>);

/** Options of {@link WsMsgpackWebClient}. Every limit and default is the Node client's. */
export interface WsMsgpackWebClientOptions extends ClientCoreOptions {
  /**
   * Server URL (`wss://api.example.com/rpc`), or several replicas tried in turn. A page on
   * `https:` can only open `wss:`.
   */
  url: string | readonly string[];
  /**
   * A bearer token for the server's `authenticate` (read it with `bearerToken(req)`), or a
   * function giving it, called before every (re)connect (a token refreshed in time). Browsers
   * cannot set upgrade headers, so it travels as a subprotocol entry `wsmp.bearer.<base64url>`
   * (README, "Browser"). Not set: no token.
   */
  token?: WsMsgpackToken;
  /**
   * The WebSocket constructor. Default: the global `WebSocket` (browsers, Deno, Bun, Node ≥ 22);
   * on Node 20 pass `ws`'s (`import { WebSocket } from 'ws'`).
   */
  WebSocket?: WebSocketConstructor;
}

/** Per-call options of {@link WsMsgpackWebClient}: the Node client's record options, and an AbortSignal. */
export interface WsMsgpackWebCallOptions extends Omit<WsMsgpackCallOptions, 'declaredTimeout'> {
  /** Aborting cancels the call (the server's handler is cancelled too); the call fails with CANCELLED. */
  signal?: AbortSignal;
}

/** Events of {@link WsMsgpackWebClient.on}. */
export type WsMsgpackWebClientEvents = {
  /** What no call can be told about (socket errors, invalid frames, a handler that failed). Without a listener: `console.error`. */
  error: (error: Error) => void;
  /** A connection opened. */
  connect: () => void;
  /** A connection ended (reconnecting follows unless closed or given up). */
  disconnect: (info: CloseInfo) => void;
};

/**
 * The client for browsers (and any runtime with a standard WebSocket): no Nest, no Node
 * built-ins, the same connection core and reconnect logic as the Nest `WsMsgpackClient`.
 *
 * ```ts
 * const client = new WsMsgpackWebClient({ url: 'wss://api.example.com/rpc', token: () => auth.token });
 * const sum = await client.call<number>('sum', [1, 2, 3]);
 * for await (const tick of client.iterate<Tick>('prices', { symbol: 'ACME' })) render(tick);  // break cancels
 * client.send<Tick>('prices', { symbol: 'ACME' }).subscribe(render);                           // RxJS (Angular)
 * client.handle('confirm', async (question: string) => window.confirm(question));              // the server calls the page
 * ```
 */
export class WsMsgpackWebClient {
  private readonly core: ClientCore;
  private readonly handlers: WebHandlers;
  private readonly events = new ReportingListeners<WsMsgpackWebClientEvents>((message, stack) => console.error(`[WsMsgpackWebClient] ${message}`, stack ?? ''));
  /** Subscribers of {@link status} (a small replay-the-latest subject, without rxjs's Subject in the bundle). */
  private readonly watchers = new Set<Subscriber<WsMsgpackStatus>>();
  private current: WsMsgpackStatus | 'idle' = 'idle';

  constructor(private readonly options: WsMsgpackWebClientOptions) {
    const Ctor = options?.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof Ctor !== 'function') {
      throw new Error('WsMsgpackWebClient: no WebSocket in this runtime; pass one as options.WebSocket (on Node 20: `import { WebSocket } from "ws"`)');
    }
    this.handlers = new WebHandlers((e) => this.events.report(e));
    this.core = new ClientCore(
      options,
      {},
      {
        prepare: { name: 'token', option: options.token },
        open: (url, token, adopt) => this.openSocket(Ctor, url, token as string | undefined, adopt),
        attach: (conn) => this.handlers.attach(conn),
        status: (status) => {
          this.current = status;
          for (const w of [...this.watchers]) w.next(status);
        },
        connected: () => this.events.emit('connect'),
        disconnected: (_conn, info) => this.events.emit('disconnect', info),
        report: (error) => this.events.report(error),
      },
      'WsMsgpackWebClient',
    );
  }

  /** Status changes (connecting, connected, reconnecting, disconnected, closed); replays the latest to a new subscriber. */
  get status(): Observable<WsMsgpackStatus> {
    return new Observable<WsMsgpackStatus>((subscriber) => {
      if (this.current !== 'idle') subscriber.next(this.current);
      this.watchers.add(subscriber);
      return () => this.watchers.delete(subscriber);
    });
  }

  /** The current status; `'idle'` before the first connection attempt. */
  get state(): WsMsgpackStatus | 'idle' {
    return this.current;
  }

  /**
   * Events from the server that no `handle()`d pattern took: dropped, which is no error (a page
   * handles the events it chose to), so not reported on `'error'`; counted here.
   */
  get droppedEvents(): number {
    return this.handlers.dropped;
  }

  /**
   * Connects now (else the first call does). Follows the calls' rule: with `waitForReady` false (the
   * default) it waits for the attempt under way and rejects with UNAVAILABLE if it fails (at once while
   * the last attempt failed); with `waitForReady: true` it waits through attempts up to `readyTimeout`.
   */
  async connect(): Promise<void> {
    await this.core.connect();
  }

  /** Closes: calls fail with UNAVAILABLE, reconnecting stops. A later call connects again. */
  close(): Promise<void> {
    return this.core.close();
  }

  /** Adds a listener for 'error', 'connect' or 'disconnect'; returns a function that removes it. */
  on<K extends keyof WsMsgpackWebClientEvents>(event: K, listener: WsMsgpackWebClientEvents[K]): () => void {
    this.events.on(event, listener);
    return () => this.events.off(event, listener);
  }

  /**
   * A call as an Observable (cold: sent on subscribe, cancelled on unsubscribe), with every
   * semantic of the Nest client's `send`: `data` may be an Observable or async iterable (a
   * request stream), the response may be a stream, credit flow control applies.
   */
  send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput, options: WsMsgpackWebCallOptions = {}): Observable<TResult> {
    const { signal, ...callOptions } = options;
    const call = this.core.call(pattern, data, this.withDefaults(callOptions)) as Observable<TResult>;
    if (!signal) return call;
    return new Observable<TResult>((subscriber) => {
      if (signal.aborted) {
        subscriber.error(abortedError(signal));
        return;
      }
      // Erroring the subscriber runs the teardown below, which cancels the call.
      const onAbort = (): void => subscriber.error(abortedError(signal));
      signal.addEventListener('abort', onAbort, { once: true });
      const inner: Subscription = call.subscribe(subscriber);
      return () => {
        signal.removeEventListener('abort', onAbort);
        inner.unsubscribe();
      };
    });
  }

  /**
   * A call as a Promise of its result: the response value, or the last item of a response
   * stream (`undefined` when it completed empty). Rejects with what the server's exception
   * filter sent (Nest: `{ status: 'error', message }`) or a {@link WsMsgpackError}.
   */
  call<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput, options?: WsMsgpackWebCallOptions): Promise<TResult> {
    return new Promise<TResult>((resolve, reject) => {
      let last: TResult | undefined;
      this.send<TResult, TInput>(pattern, data, options).subscribe({
        next: (v) => (last = v),
        error: reject,
        complete: () => resolve(last as TResult),
      });
    });
  }

  /**
   * A call whose response is consumed with `for await`, pulled with backpressure (the server is
   * at most one credit window ahead). `break`, `return()` or the signal cancel the call.
   */
  iterate<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput, options: WsMsgpackWebCallOptions = {}): AsyncIterableIterator<TResult> {
    const { signal, ...callOptions } = options;
    const it = this.core.iterate<TResult>(pattern, data, this.withDefaults(callOptions));
    return signal ? abortableIterator(it, signal) : it;
  }

  /** Emits an event; resolves once it was handed to the socket (waiting for the connection if needed). */
  emit<TInput = unknown>(pattern: unknown, data: TInput, options: Omit<WsMsgpackWebCallOptions, 'signal' | 'window' | 'overflow'> = {}): Promise<void> {
    return this.core.emit(pattern, data, this.withDefaults(options));
  }

  /**
   * Answers the server's calls (`peer.send()`) and events (`peer.emit()`, `server.broadcast()`)
   * with `pattern`, on this connection and every later one. Returns a function that removes the
   * handler. Calls without a handler get UNIMPLEMENTED.
   */
  handle<TData = unknown, TResult = unknown>(pattern: unknown, fn: WsMsgpackWebHandler<TData, TResult>): () => void {
    return this.handlers.add(pattern, fn as WsMsgpackWebHandler<never, unknown>);
  }

  /** The client-wide default deadline. */
  private withDefaults(options: WsMsgpackCallOptions): WsMsgpackCallOptions {
    return options.timeout === undefined && this.options.timeout !== undefined ? { ...options, timeout: this.options.timeout } : options;
  }

  /** One socket, offering the token `prepare` gave as a subprotocol entry. */
  private openSocket(Ctor: WebSocketConstructor, url: string, token: string | undefined, adopt: Parameters<typeof openWebSocket>[3]): SocketAttempt {
    const protocols = token === undefined || token === '' ? [SUBPROTOCOL_V1] : [SUBPROTOCOL_V1, bearerProtocol(token)];
    return openWebSocket(Ctor, url, protocols, adopt);
  }
}
