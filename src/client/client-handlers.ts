import type { CustomTransportStrategy } from '@nestjs/microservices';
import type { Subscription } from 'rxjs';
import type { WebSocket } from 'ws';
import type { CloseInfo } from '../connection/connection.js';
import type { ServingConnection } from '../connection/serving-connection.js';
import type { WsMsgpackStatus } from '../constants.js';
import type { ConnectionPeer } from '../peer/peer.js';
import { WsMsgpackDispatcher } from '../server/dispatcher.js';
import type { WsMsgpackClient } from './ws-msgpack.client.js';

/** A client's open connection and its peer, the server. */
export interface ServerLink {
  readonly connection: ServingConnection;
  readonly peer: ConnectionPeer;
  readonly socket: WebSocket;
}

/** Events of {@link WsMsgpackClientHandlers.on}. */
export type WsMsgpackClientHandlersEvents = {
  /** What the client's own `'error'` event reports. */
  error: (error: Error) => void;
};

/**
 * A Nest microservice strategy that serves a client app's handlers to the server, over the
 * connection a {@link WsMsgpackClient} opened: obtained with `client.exposeHandlers()` and passed
 * to `app.connectMicroservice()`. Its `listen()` connects the client (startup fails with
 * UNAVAILABLE if the server cannot be reached) and dispatches the server's calls and events into
 * the app's handlers, on this connection and on every later one.
 */
export class WsMsgpackClientHandlers extends WsMsgpackDispatcher<WsMsgpackClientHandlersEvents, WsMsgpackStatus> implements CustomTransportStrategy {
  private statusLink: Subscription | undefined;

  constructor(private readonly client: WsMsgpackClient) {
    super();
  }

  /** Starts serving and connects the client; `callback` gets the connection error, if any. */
  listen(callback: (error?: unknown, ...info: unknown[]) => void): void {
    this.statusLink ??= this.client.status.subscribe((s) => this._status$.next(s as WsMsgpackStatus));
    this.client.serveWith(this);
    this.client.connect().then(
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
  on<EventKey extends keyof WsMsgpackClientHandlersEvents = keyof WsMsgpackClientHandlersEvents>(
    event: EventKey,
    callback: WsMsgpackClientHandlersEvents[EventKey],
  ): void {
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
