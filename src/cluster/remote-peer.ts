import type { Observable } from 'rxjs';
import type { WsMsgpackHandshake, WsMsgpackPeer } from '../peer/peer.js';
import type { RemoteCaller } from './remote-caller.js';
import type { WsMsgpackPeerInfo } from './types.js';

/** What is known of a remote peer's handshake: nothing (the info does not carry it). */
const NO_HANDSHAKE: WsMsgpackHandshake = Object.freeze({ url: '', headers: Object.freeze({}), remoteAddress: undefined });

/**
 * A peer whose connection is held by another replica: `send()` and `emit()` are routed there
 * (unary calls and response streams with credit, cancellation by unsubscribing, deadlines, typed
 * errors), as `RemoteCalls.peer(info)` makes it. What differs from a local peer:
 * - `send()` takes one value: a request stream fails at once with UNIMPLEMENTED.
 * - `handshake` is empty (`url: ''`, no headers, no address): the cluster does not carry it.
 * - `user` is the peer's user id as the cluster knows it (`userIdOf`), not the identity object.
 * - `state` is a map of this object only: it is not the holder's `peer.state`, nor shared with
 *   other objects for the same peer.
 * - `rooms` is what the peer was in when this object was made, plus what `join` / `leave` changed
 *   through it; `join` / `leave` / `close` are sent to the holder without an answer.
 * - `isConnected` is true until its replica is declared gone, this replica's cluster closes, it
 *   was closed through this object, or a call learnt that the holder no longer has it.
 */
export class RemotePeer implements WsMsgpackPeer {
  /** The peer's id. */
  readonly id: string;
  /** The replica holding its connection. */
  readonly replica: string;
  /** Its user id (`userIdOf`), when it has one. */
  readonly user: string | undefined;
  /** Empty: the cluster does not carry handshakes. */
  readonly handshake: WsMsgpackHandshake = NO_HANDSHAKE;
  /** Local to this object: not shared with the holder. */
  readonly state = new Map<unknown, unknown>();
  /** `connected` until closed through this object or found gone by a call. */
  private phase: 'connected' | 'gone' = 'connected';
  private readonly roomSet: Set<string>;
  /** The life of {@link replica} this peer belongs to (see `RemoteCaller.epoch`). */
  private readonly epoch: number;

  constructor(
    info: WsMsgpackPeerInfo,
    private readonly caller: RemoteCaller,
  ) {
    this.id = info.id;
    this.replica = info.replica;
    this.user = info.user;
    this.roomSet = new Set(info.rooms);
    this.epoch = caller.epoch(info.replica);
  }

  /** See the class notes. */
  get isConnected(): boolean {
    return this.phase === 'connected' && this.caller.isOpen && this.caller.epoch(this.replica) === this.epoch;
  }

  /** The rooms as this object knows them (see the class notes). */
  get rooms(): ReadonlySet<string> {
    return this.roomSet;
  }

  /** Puts the peer in these rooms, on the replica that holds it. */
  join(...rooms: string[]): void {
    this.changeRooms('join', rooms);
  }

  /** Takes the peer out of these rooms, on the replica that holds it. */
  leave(...rooms: string[]): void {
    this.changeRooms('leave', rooms);
  }

  /** Calls a handler the peer exposes, on the replica that holds it (one value as the request). */
  send<TResult = unknown, TInput = unknown>(pattern: unknown, data: TInput): Observable<TResult> {
    return this.caller.call<TResult>(this, pattern, data);
  }

  /** Emits an event to the peer: completes once the holder handed it to the peer's socket, or errors UNAVAILABLE. */
  emit<TInput = unknown>(pattern: unknown, data: TInput): Observable<undefined> {
    return this.caller.emit(this, pattern, data);
  }

  /** Asks the holder to close the connection (default code 1000); no answer. */
  close(code = 1000, reason = ''): void {
    this.caller.tell(this, { t: 'close', p: this.id, c: code, r: reason });
    this.phase = 'gone';
  }

  /** @internal The holder said it does not have this peer (any more). */
  gone(): void {
    this.phase = 'gone';
  }

  private changeRooms(t: 'join' | 'leave', rooms: readonly string[]): void {
    for (const room of rooms) {
      if (typeof room !== 'string' || room === '') throw new TypeError(`nestjs-ws-msgpack: a room is a non-empty string, got ${JSON.stringify(room)}`);
    }
    if (rooms.length === 0) return;
    for (const room of rooms) {
      if (t === 'join') this.roomSet.add(room);
      else this.roomSet.delete(room);
    }
    this.caller.tell(this, { t, p: this.id, r: [...rooms] });
  }
}
