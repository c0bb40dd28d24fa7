/**
 * Calls to peers held by other replicas: the cluster module's `RemoteCalls`, as the adapter
 * drives it. The adapter carries its messages (bus.ts) and tells it when replicas go.
 */
import type { ClusterHost } from '../cluster/adapter.js';
import { RemoteCalls } from '../cluster/remote-calls.js';
import type { WsMsgpackPeerInfo } from '../cluster/types.js';
import type { WsMsgpackPeer } from '../peer/peer.js';

/** How remote-call messages reach another replica (what `RemoteCalls` sends through). */
export interface RemoteLink {
  /** Sends `message`; `sized` is told its size on the bus before this returns. */
  send(replica: string, message: unknown, sized?: (bytes: number) => void): Promise<void>;
}

/** Calls to peers held by other replicas, as the adapter drives them (`RemoteCalls`). */
export interface RemoteCallsPort {
  /** A peer of another replica, whose calls go through the link. */
  peer(info: WsMsgpackPeerInfo): WsMsgpackPeer;
  /** A message another replica sent this one, `bytes` long on the bus; true when it was a request (its sender has calls served here). */
  receive(from: string, message: unknown, bytes: number): boolean;
  /** That replica is gone: the calls to its peers fail (UNAVAILABLE), the calls it made here stop. */
  replicaDown(replica: string): void;
  /** This replica's link to the engine dropped: messages may have been lost, every remote call fails. */
  linkDown(reason?: Error): void;
  /** The link is back: the cancels and answers it could not send go out. */
  linkUp(): void;
  /** The server closed. */
  close(): void;
}

/** Makes the {@link RemoteCallsPort} of a replica; `maxBytesInFlight` as the option says. */
export type RemoteCallsFactory = (host: ClusterHost, link: RemoteLink, replica: string, maxBytesInFlight: number) => RemoteCallsPort;

/** The remote calls of the cluster module (`createRemote` is replaceable for tests only). */
export const remoteCalls: RemoteCallsFactory = (host, link, replica, maxBytesInFlight) =>
  new RemoteCalls(replica, link, (id) => host.localPeer(id), { onError: (e) => host.report(e), maxBytesInFlight });
