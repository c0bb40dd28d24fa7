/**
 * One replica of the Redis e2e suites: a real WsMsgpackServer with a `cluster` adapter, whose
 * clients say who they are in their URL (`?user=…`, the `authenticate` of every replica here).
 */
import type { ModuleMetadata } from '@nestjs/common';
import type { IncomingMessage } from 'node:http';
import type { WsMsgpackClusterAdapter } from '../../src/cluster/adapter.js';
import type { WsMsgpackPeer } from '../../src/peer/peer.js';
import { startService, until, WAIT_MS, type TestService } from './helpers.js';

/** A replica: its service, its cluster, its peers by user, and what it reported (`'error'` events). */
export interface TestReplica {
  readonly svc: TestService;
  readonly cluster: WsMsgpackClusterAdapter;
  /** Its peers by user (the clients of a test connect with distinct users). */
  readonly peers: Map<string, WsMsgpackPeer>;
  readonly errors: Error[];
}

/** The value of `key` in a request URL's query. */
export const query = (url: string | undefined, key: string): string | undefined => new URL(url ?? '/', 'http://x').searchParams.get(key) ?? undefined;

/**
 * Starts a replica on `cluster` and resolves once its cluster is ready (within `readyMs`).
 * `track` gets it before that wait (so a test's clean-up closes it even when it never gets
 * ready); `onConnection` runs for each peer that connects.
 */
export async function startReplica(
  cluster: WsMsgpackClusterAdapter,
  options: { metadata?: ModuleMetadata; track?: TestReplica[]; onConnection?: (peer: WsMsgpackPeer, request: IncomingMessage) => void; readyMs?: number } = {},
): Promise<TestReplica> {
  const peers = new Map<string, WsMsgpackPeer>();
  const errors: Error[] = [];
  const svc = await startService(options.metadata ?? {}, { cluster, authenticate: (req) => query(req.url, 'user') });
  svc.server.on('error', (e) => errors.push(e));
  svc.server.on('connection', (_ws, req, peer) => {
    options.onConnection?.(peer, req);
    peers.set(String(peer.user), peer);
  });
  const replica = { svc, cluster, peers, errors };
  options.track?.push(replica);
  await until(() => cluster.status === 'ready', options.readyMs ?? WAIT_MS, 'replica ready');
  return replica;
}
