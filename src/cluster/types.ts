import type { WsMsgpackPeer } from '../peer/peer.js';
import type { WsMsgpackSelection } from '../peer/selection.js';

export { listOf, selects, userIdOf, type WsMsgpackSelection } from '../peer/selection.js';

/** A peer as the cluster knows it: where it is, who it is, which rooms it is in. */
export interface WsMsgpackPeerInfo {
  /** The peer's id ({@link WsMsgpackPeer.id}). */
  readonly id: string;
  /** The id of the replica holding its connection. */
  readonly replica: string;
  /** Its user id ({@link userIdOf}), when it has one. */
  readonly user: string | undefined;
  /** The rooms it is in. */
  readonly rooms: readonly string[];
}

/**
 * The state of a replica's link to the cluster engine:
 * - `connecting`: not ready yet (the first connection to Redis);
 * - `ready`: cross-replica operations work;
 * - `down`: the engine is unreachable: cross-replica operations fail at once with UNAVAILABLE, local ones carry on; it reconnects by itself;
 * - `closed`: the server closed.
 */
export type WsMsgpackClusterStatus = 'connecting' | 'ready' | 'down' | 'closed';

/**
 * What a server does across replicas (`server.cluster`, with the `cluster` option). Every method
 * reaches the other replicas through the cluster engine (Redis), so each returns a promise, and
 * rejects with UNAVAILABLE (`WsMsgpackError`) while the engine is unreachable.
 */
export interface WsMsgpackCluster {
  /** This replica's id in the cluster (random, per server instance). */
  readonly replica: string;
  /** The link to the engine now. */
  readonly status: WsMsgpackClusterStatus;
  /**
   * The peer with this id, wherever its connection is: a local peer as `server.peers.get(id)`
   * gives it, or one whose `send()` / `emit()` are routed to the replica that holds it (unary
   * calls and response streams with credit, cancellation by unsubscribing, deadlines, typed
   * errors). `undefined` when no replica holds it. One lookup in the engine, no fan-out.
   */
  peer(id: string): Promise<WsMsgpackPeer | undefined>;
  /**
   * Emits an event to the selected peers of every replica, each once. Resolves once it was handed
   * to this replica's peers and published, with how many local peers it was handed to and how
   * many other replicas received it (what the engine reports: not a count of their peers).
   */
  broadcast(pattern: unknown, data: unknown, selection?: WsMsgpackSelection): Promise<{ local: number; replicas: number }>;
  /** The selected peers of every replica, from the engine's presence records (no replica is asked). */
  fetchPeers(selection?: WsMsgpackSelection): Promise<WsMsgpackPeerInfo[]>;
  /** How many peers {@link fetchPeers} would list. */
  count(selection?: WsMsgpackSelection): Promise<number>;
}
