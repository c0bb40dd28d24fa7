import { Observable, of, throwError, type Subscriber } from 'rxjs';
import type { Connection } from '../connection/connection.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import { WsMsgpackError, cancelled } from '../protocol/errors.js';
import { unpackCall } from './record.js';

/** What is known of a peer from its connection's opening handshake. */
export interface WsMsgpackHandshake {
  /** The URL: the path and query of the upgrade request (server side), or the server URL (client side). */
  readonly url: string;
  /** Headers of the upgrade request (server side; `{}` on the client side). */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The peer's address as the socket sees it (proxies are not unwrapped), when known. */
  readonly remoteAddress: string | undefined;
}

/**
 * The other end of one connection, seen from this end: the server's view of a client, or the
 * client's view of the server. Both directions have every semantic of `WsMsgpackClient.send`.
 */
export interface WsMsgpackPeer {
  /** A stable, unique id of this connection (a random UUID). */
  readonly id: string;
  /** From the opening handshake. */
  readonly handshake: WsMsgpackHandshake;
  /** The authenticated identity, once authentication has set it; `undefined` until then. */
  readonly user: unknown;
  /** Per-connection application state: lives exactly as long as the connection (cleared after the disconnected hook). */
  readonly state: Map<unknown, unknown>;
  /** True while the connection is open. */
  readonly isConnected: boolean;
  /**
   * The rooms the peer is in: names the application gives it with {@link join} (a connected hook
   * is a good place), that broadcasts and presence queries select by (`{ to: 'room' }`). Empty at first.
   */
  readonly rooms: ReadonlySet<string>;
  /** Puts the peer in these rooms (with a cluster, every replica's selections see it). */
  join(...rooms: string[]): void;
  /** Takes the peer out of these rooms. */
  leave(...rooms: string[]): void;
  /**
   * Calls a handler the peer exposes. Cold: each subscription is one call; unsubscribing cancels
   * it. `data` may be a stream (request stream) and may be a `WsMsgpackRecord` (headers, deadline,
   * window, overflow). A peer obtained inside a handler is bound to that call: when the call is
   * cancelled (or passes its deadline, or its connection drops), the calls it made are cancelled too.
   */
  send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult>;
  /** Emits an event to the peer, now. The Observable completes once it was handed to the socket, or errors (UNAVAILABLE). */
  emit<TInput = unknown>(pattern: unknown, data: TInput): Observable<undefined>;
  /** Closes the connection (default code 1000). */
  close(code?: number, reason?: string): void;
}

/** A peer over one Connection (what `ctx.getPeer()` and `server.peers` hand out, as {@link WsMsgpackPeer}). */
export class ConnectionPeer implements WsMsgpackPeer {
  readonly id: string = newPeerId();
  readonly state = new Map<unknown, unknown>();
  /** The authenticated identity: set by authentication, `undefined` until then. */
  user: unknown = undefined;
  private readonly roomSet = new Set<string>();

  constructor(
    /** @internal */
    readonly connection: Connection,
    readonly handshake: WsMsgpackHandshake,
    private readonly defaultTimeout?: number,
  ) {}

  get isConnected(): boolean {
    return !this.connection.isClosed;
  }

  get rooms(): ReadonlySet<string> {
    return this.roomSet;
  }

  join(...rooms: string[]): void {
    this.changeRooms(rooms, (room) => {
      if (this.roomSet.has(room)) return false;
      this.roomSet.add(room);
      return true;
    });
  }

  leave(...rooms: string[]): void {
    this.changeRooms(rooms, (room) => this.roomSet.delete(room));
  }

  /**
   * @internal Called after a `join` or `leave` changed the rooms (the server tells its cluster):
   * only the rooms really joined (not in before) and really left (in before), in call order.
   */
  onRoomsChanged: ((peer: ConnectionPeer, joined: readonly string[], left: readonly string[]) => void) | undefined;

  /** @internal Pulled call (credit follows the pulls; `return()` cancels): what serving a call from another replica needs. */
  iterate(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): AsyncIterableIterator<unknown> {
    return this.connection.iterate(pattern, payload, options);
  }

  /**
   * Every room is checked before any changes (a bad one throws a TypeError and changes nothing);
   * `change` applies one and says whether it changed the rooms. The cluster hears only the changes.
   */
  private changeRooms(rooms: readonly string[], change: (room: string) => boolean): void {
    for (const room of rooms) {
      if (typeof room !== 'string' || room === '') throw new TypeError(`nestjs-ws-msgpack: a room is a non-empty string, got ${JSON.stringify(room)}`);
    }
    const joined: string[] = [];
    const left: string[] = [];
    for (const room of rooms) {
      if (change(room)) (this.roomSet.has(room) ? joined : left).push(room);
    }
    if (joined.length > 0 || left.length > 0) this.onRoomsChanged?.(this, joined, left);
  }

  send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const { payload, options } = unpackCall(data, this.defaultTimeout);
    return this.connection.call(pattern, payload, options) as Observable<TResult>;
  }

  emit<TInput = unknown>(pattern: unknown, data: TInput): Observable<undefined> {
    const { payload, options } = unpackCall(data);
    try {
      this.connection.emit(pattern, payload, options.headers);
    } catch (e) {
      return throwError(() => e);
    }
    return of(undefined);
  }

  close(code = 1000, reason = ''): void {
    this.connection.close(code, reason);
  }

  /** @internal This peer as seen from inside a call: what it sends is cancelled with the call. */
  boundTo(signal: AbortSignal): WsMsgpackPeer {
    return new CallBoundPeer(this, signal);
  }
}

/**
 * A peer as a handler sees it: the calls it makes are cancelled if the handler's own call ends
 * early (cancelled, past its deadline, connection lost). A call that completes normally does not
 * cancel the nested calls it started and left running.
 */
class CallBoundPeer implements WsMsgpackPeer {
  /** The nested calls under way, all failed at once when the signal aborts (one listener for all). */
  private readonly running = new Set<Subscriber<unknown>>();
  private listening = false;

  constructor(
    private readonly peer: ConnectionPeer,
    private readonly signal: AbortSignal,
  ) {}

  get id(): string {
    return this.peer.id;
  }
  get handshake(): WsMsgpackHandshake {
    return this.peer.handshake;
  }
  get user(): unknown {
    return this.peer.user;
  }
  get state(): Map<unknown, unknown> {
    return this.peer.state;
  }
  get isConnected(): boolean {
    return this.peer.isConnected;
  }
  get rooms(): ReadonlySet<string> {
    return this.peer.rooms;
  }
  join(...rooms: string[]): void {
    this.peer.join(...rooms);
  }
  leave(...rooms: string[]): void {
    this.peer.leave(...rooms);
  }

  send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    const calls = this.peer.send<TResult, TInput>(pattern, data);
    return new Observable<TResult>((subscriber) => {
      if (this.signal.aborted) {
        subscriber.error(callEnded(this.signal.reason));
        return;
      }
      this.watch(subscriber as Subscriber<unknown>);
      const inner = calls.subscribe(subscriber);
      return () => {
        this.running.delete(subscriber as Subscriber<unknown>);
        inner.unsubscribe();
      };
    });
  }

  emit<TInput = unknown>(pattern: unknown, data: TInput): Observable<undefined> {
    return this.peer.emit(pattern, data);
  }

  close(code?: number, reason?: string): void {
    this.peer.close(code, reason);
  }

  private watch(subscriber: Subscriber<unknown>): void {
    this.running.add(subscriber);
    if (this.listening) return;
    this.listening = true;
    this.signal.addEventListener(
      'abort',
      () => {
        const error = callEnded(this.signal.reason);
        for (const s of [...this.running]) s.error(error); // erroring unsubscribes: CANCEL
      },
      { once: true },
    );
  }
}

/** The error a nested call fails with when the call that made it ended. */
function callEnded(reason: unknown): WsMsgpackError {
  if (reason instanceof WsMsgpackError) return new WsMsgpackError(reason.code, `the call that made this one ended: ${reason.message}`, reason.details);
  return cancelled('the call that made this one ended');
}

function newPeerId(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}
