import type { WsMsgpackCallOptions } from '../connection/options.js';
import type { WsMsgpackPeer } from '../peer/peer.js';
import type { WsMsgpackCluster, WsMsgpackSelection } from './types.js';

/** A peer of this replica, as the cluster adapter sees it. */
export interface ClusterLocalPeer extends WsMsgpackPeer {
  /** The rooms it joined. */
  readonly rooms: ReadonlySet<string>;
  /**
   * Calls a handler this peer exposes, pulled: the call starts on the first `next()`, credit
   * follows the pulls, `return()` cancels it (what serving a call from another replica needs).
   */
  iterate(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): AsyncIterableIterator<unknown>;
}

/** What a server gives its cluster adapter when it starts. */
export interface ClusterHost {
  /** The local peer with this id, if connected. */
  localPeer(id: string): ClusterLocalPeer | undefined;
  /** The local peers now (to register them again after the engine lost its records). */
  localPeers(): Iterable<ClusterLocalPeer>;
  /** Emits to this replica's selected peers; returns how many it was handed to. */
  broadcastLocal(pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined): number;
  /** Encodes a value for the bus (msgpack, with the server's custom types). */
  encode(value: unknown): Uint8Array;
  /** Decodes what {@link encode} made. */
  decode(bytes: Uint8Array): unknown;
  /** Something no caller can be told about (the server's `'error'` event). */
  report(error: Error): void;
}

/**
 * What a `cluster` option is (`redisCluster(...)` from `nestjs-ws-msgpack/redis` makes one): the
 * server starts it when it listens, tells it of its peers, and closes it when it closes. It is
 * also the {@link WsMsgpackCluster} that `server.cluster` exposes.
 */
export interface WsMsgpackClusterAdapter extends WsMsgpackCluster {
  /** Connects to the engine and registers this replica; the server's peers come through `host`. */
  start(host: ClusterHost): Promise<void>;
  /** Unregisters this replica (its peers are forgotten at once by the others) and disconnects. */
  close(): Promise<void>;
  /** A local peer connected (authenticated). */
  peerConnected(peer: ClusterLocalPeer): void;
  /** A local peer's connection ended. */
  peerDisconnected(peer: ClusterLocalPeer): void;
  /**
   * A local peer joined or left rooms: `joined` the rooms it was not in and now is, `left` those
   * it was in and no longer is (disjoint, without repeats; not both empty). Only the change: its
   * `rooms` already holds the result. Told once per change, in the order the changes were made.
   */
  peerRoomsChanged(peer: ClusterLocalPeer, joined: readonly string[], left: readonly string[]): void;
  /**
   * Publishes a `WsMsgpackTopics` value to the other replicas' subscribers of `channel` (a topic
   * of a named topics instance). Rejects with UNAVAILABLE while the engine is unreachable.
   */
  publishTopic(channel: string, value: unknown): Promise<void>;
  /**
   * Delivers what other replicas publish on `channel`, in publish order per publisher, until the
   * returned function is called (the engine is asked for the channel only while someone listens).
   */
  subscribeTopic(channel: string, deliver: (value: unknown) => void): () => void;
}
