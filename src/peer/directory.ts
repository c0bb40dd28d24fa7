import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { isSendBufferFull } from '../connection/errors.js';
import type { WsMsgpackPeer } from './peer.js';
import { selectsPeer, type WsMsgpackSelection } from './selection.js';

/** Which peers a broadcast reaches: a function (this replica only), or a selection (rooms, users, exceptions). */
export type WsMsgpackBroadcastTarget = ((peer: WsMsgpackPeer) => boolean) | WsMsgpackSelection;

/**
 * The connected peers of a server, and broadcast. This is the seam for a cluster adapter: an
 * implementation that also knows the peers connected to other replicas (through a shared bus such
 * as Redis) can stand in for the local one without changing code that uses it.
 */
export interface WsMsgpackPeerDirectory {
  /** Peers connected now. */
  readonly size: number;
  /** The peer with this id, if it is connected. */
  get(id: string): WsMsgpackPeer | undefined;
  /** True when a peer with this id is connected. */
  has(id: string): boolean;
  /** The connected peers, in the order they connected. */
  [Symbol.iterator](): IterableIterator<WsMsgpackPeer>;
  /**
   * Emits an event to every connected peer, or to those `target` selects: a function, or a
   * {@link WsMsgpackSelection} (`{ to: 'room' }`, `{ users: ['ada'] }`, `{ except: [...] }`).
   * Returns how many peers it was handed to: a peer whose connection is closing, or that has not
   * read what already waits for it (more than `maxSendBufferSize`), is skipped, not an error.
   * Throws what the data itself fails with (cannot be encoded: INTERNAL; over maxPayload:
   * RESOURCE_EXHAUSTED). These are this replica's peers: with a cluster, see `server.broadcast`.
   */
  broadcast(pattern: unknown, data: unknown, target?: WsMsgpackBroadcastTarget): number;
}

/** The peers of one server process (what `server.peers` is, as {@link WsMsgpackPeerDirectory}). */
export class LocalPeerDirectory implements WsMsgpackPeerDirectory {
  private readonly peers = new Map<string, WsMsgpackPeer>();

  get size(): number {
    return this.peers.size;
  }

  get(id: string): WsMsgpackPeer | undefined {
    return this.peers.get(id);
  }

  has(id: string): boolean {
    return this.peers.has(id);
  }

  [Symbol.iterator](): IterableIterator<WsMsgpackPeer> {
    return this.peers.values();
  }

  broadcast(pattern: unknown, data: unknown, target?: WsMsgpackBroadcastTarget): number {
    const keep = typeof target === 'function' ? target : target ? (peer: WsMsgpackPeer) => selectsPeer(target, peer) : undefined;
    let sent = 0;
    for (const peer of [...this.peers.values()]) {
      if (keep && !keep(peer)) continue;
      let failure: unknown;
      peer.emit(pattern, data).subscribe({ error: (e: unknown) => (failure = e) });
      if (failure === undefined) sent++;
      // Skipped: a peer whose connection is closing, or that has not read what already waits for it.
      else if (!(failure instanceof WsMsgpackError && failure.code === WsMsgpackErrorCode.UNAVAILABLE) && !isSendBufferFull(failure)) throw failure; // the data itself (unencodable, too big)
    }
    return sent;
  }

  /** @internal */
  add(peer: WsMsgpackPeer): void {
    this.peers.set(peer.id, peer);
  }

  /** @internal */
  delete(peer: WsMsgpackPeer): void {
    this.peers.delete(peer.id);
  }
}
