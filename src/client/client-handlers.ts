import type { CustomTransportStrategy } from '@nestjs/microservices';
import type { Subscription } from 'rxjs';
import type { WebSocket } from 'ws';
import type { CloseInfo, Connection } from '../connection/connection.js';
import type { WsMsgpackStatus } from '../session/status.js';
import type { ConnectionPeer } from '../peer/peer.js';
import { WsMsgpackDispatcher } from '../nest/dispatcher.js';
import type { WsMsgpackClient } from './ws-msgpack.client.js';

/** A client's open connection and its peer, the server. */
export interface ServerLink {
  readonly connection: Connection;
  readonly peer: ConnectionPeer;
  readonly socket: WebSocket;
}

/** Options of `client.exposeHandlers()`. */
export interface WsMsgpackExposeOptions {
  /**
   * Whether the strategy's `listen()` (`app.startAllMicroservices()`) waits for the client's
   * connection: up to `readyTimeout`, through reconnect attempts, then it fails with UNAVAILABLE
   * (a service that must not start without its server). Default false: it returns at once, the
   * client connects in the background with its backoff (see `client.status`), and the handlers
   * are served from the first connection on.
   */
  waitForConnection?: boolean;
}

/** Events of {@link WsMsgpackClientHandlers.on}. */
export type WsMsgpackClientHandlersEvents = {
  /** What the client's own `'error'` event reports. */
  error: (error: Error) => void;
};

/**
 * A Nest microservice strategy that serves a client app's handlers to the server, over the
 * connection a {@link WsMsgpackClient} opened: obtained with `client.exposeHandlers()` and passed
 * to `app.connectMicroservice()`. Its `listen()` starts the client connecting (in the
 * background, or waiting for it with `waitForConnection`) and dispatches the server's calls and
 * events into the app's handlers, on the first connection and on every later one.
 */
export class WsMsgpackClientHandlers extends WsMsgpackDispatcher<WsMsgpackClientHandlersEvents, WsMsgpackStatus> implements CustomTransportStrategy {
  private statusLink: Subscription | undefined;
  private options: WsMsgpackExposeOptions = {};

  constructor(private readonly client: WsMsgpackClient) {
    super();
    this.unhandledEventLevel = 'debug'; // a broadcast of a pattern this app does not handle is no error
  }

  /** @internal Sets the options of `exposeHandlers()` (they apply at the next `listen()`). */
  configure(options: WsMsgpackExposeOptions): void {
    this.options = { ...options };
  }

  /**
   * Starts serving and the client connecting. By default `callback` runs at once and the client
   * connects in the background; with `waitForConnection`, once connected, or with the UNAVAILABLE
   * error when no connection came within `readyTimeout`.
   */
  listen(callback: (error?: unknown, ...info: unknown[]) => void): void {
    this.statusLink ??= this.client.status.subscribe((s) => this._status$.next(s as WsMsgpackStatus));
    this.client.serveWith(this);
    if (!this.options.waitForConnection) {
      callback();
      this.client.connectInBackground();
      return;
    }
    this.client.connectWaiting().then(
      () => callback(),
      (e: unknown) => callback(e),
    );
  }

  /**
   * Stops serving: the disconnected hook runs for the handlers (code 1001), and the server's calls
   * get UNIMPLEMENTED from now on. The client stays connected. Resolves once the hook returned (2 s at most).
   */
  async close(): Promise<void> {
    this.client.serveWith(undefined);
    this.statusLink?.unsubscribe();
    this.statusLink = undefined;
    await this.hooksSettled(2000);
  }

  /** Registers a listener: 'error' forwards to the client's own 'error' event. */
  on<EventKey extends keyof WsMsgpackClientHandlersEvents = keyof WsMsgpackClientHandlersEvents>(event: EventKey, callback: WsMsgpackClientHandlersEvents[EventKey]): void {
    this.client.on(event, callback);
  }

  /** The client whose connection this serves. */
  unwrap<T = WsMsgpackClient>(): T {
    return this.client as unknown as T;
  }

  /** @internal Serve the calls of `link`. */
  attachTo(link: ServerLink): void {
    this.attach({ ...link, request: undefined });
  }

  /** @internal `link` closed. */
  detachFrom(link: ServerLink, info: CloseInfo): void {
    this.detach({ ...link, request: undefined }, info);
  }

  protected reportError(error: Error): void {
    this.client.reportError(error);
  }
}
