import { Decoder, Encoder } from '@msgpack/msgpack';
import type { ClusterHost, ClusterLocalPeer, WsMsgpackClusterAdapter } from '../cluster/adapter.js';
import { extensionCodecOf, type ExtensionOptions } from '../protocol/extensions.js';
import type { ConnectionPeer } from '../peer/peer.js';
import type { LocalPeerDirectory } from '../peer/directory.js';
import type { WsMsgpackSelection } from '../peer/selection.js';

/**
 * A server's side of its `cluster` option: the host the adapter sees (this replica's peers, local
 * broadcast, the bus codec with the server's custom types), and the peer events the adapter is
 * told of. Without a `cluster` option every method does nothing.
 */
export class ClusterBinding {
  /** The adapter's start, while it runs or after it failed (reported; the server works locally meanwhile). */
  private phase: 'idle' | 'started' | 'closed' = 'idle';
  private readonly host: ClusterHost;

  constructor(
    /** The `cluster` option. */
    readonly adapter: WsMsgpackClusterAdapter | undefined,
    directory: LocalPeerDirectory,
    codecOptions: ExtensionOptions,
    report: (error: Error) => void,
  ) {
    const extensionCodec = extensionCodecOf(codecOptions);
    const encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true, extensionCodec });
    const decoder = new Decoder({ useBigInt64: true, extensionCodec });
    this.host = {
      localPeer: (id) => directory.get(id) as ClusterLocalPeer | undefined,
      localPeers: () => [...directory] as ClusterLocalPeer[],
      broadcastLocal: (pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined) => directory.broadcast(pattern, data, selection ?? {}),
      encode: (value) => encoder.encode(value),
      decode: (bytes) => decoder.decode(bytes),
      report,
    };
  }

  /**
   * The server listens: the adapter connects and registers this replica. Not awaited by the
   * server (an engine that is down at boot does not stop the server; the adapter retries), a
   * failure is reported.
   */
  start(): void {
    if (!this.adapter || this.phase === 'started') return;
    this.phase = 'started';
    this.adapter.start(this.host).catch((e: unknown) => this.host.report(new Error(`cluster: cannot start: ${e instanceof Error ? e.message : String(e)}`, { cause: e })));
  }

  /** A peer connected: registered in the cluster, and its room changes from now on. */
  connected(peer: ConnectionPeer): void {
    const adapter = this.adapter;
    if (!adapter || this.phase !== 'started') return;
    peer.onRoomsChanged = (p, joined, left) => this.guard(() => adapter.peerRoomsChanged(p, joined, left));
    this.guard(() => adapter.peerConnected(peer));
  }

  /** A peer's connection ended. */
  disconnected(peer: ConnectionPeer): void {
    const adapter = this.adapter;
    peer.onRoomsChanged = undefined;
    if (!adapter || this.phase !== 'started') return;
    this.guard(() => adapter.peerDisconnected(peer));
  }

  /** The server closed: this replica leaves the cluster. */
  async close(): Promise<void> {
    if (!this.adapter || this.phase !== 'started') return;
    this.phase = 'closed';
    try {
      await this.adapter.close();
    } catch (e) {
      this.host.report(new Error(`cluster: cannot leave: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    }
  }

  /** The adapter reports its own failures; one that throws anyway must not break the server's bookkeeping. */
  private guard(run: () => void): void {
    try {
      run();
    } catch (e) {
      this.host.report(e instanceof Error ? e : new Error(String(e)));
    }
  }
}
