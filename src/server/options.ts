import { checkDuration, optionError, resolveLimits, type ConnectionLimits } from '../connection/options.js';
import { extensionCodecOf } from '../protocol/extensions.js';
import { checkStandaloneOptions } from '../node/standalone-server.js';
import type { WsMsgpackCallLogLevel } from '../nest/call-log.js';
import type { WsMsgpackListenOptions, WsMsgpackUpgradeOptions } from '../node/options.js';
import type { WsMsgpackClusterAdapter } from '../cluster/adapter.js';

export type { WsMsgpackAllowedOrigins, WsMsgpackListenOptions, WsMsgpackUpgradeOptions } from '../node/options.js';

/** Options of {@link WsMsgpackServer}: where it listens, the checks of every upgrade, each connection's limits, and these. */
export interface WsMsgpackServerOptions extends ConnectionLimits, WsMsgpackListenOptions, WsMsgpackUpgradeOptions {
  /**
   * Most memory the frames of all the server's peers may hold at once, as each connection's
   * `maxInboundBytes` counts it (requests of calls whose handlers still run, events being handled,
   * waiting stream items), connections that have ended included: a handler that ignores its abort
   * signal keeps its request counted after its peer is gone. A frame that does not fit fails its
   * call with RESOURCE_EXHAUSTED, whichever connection it came on. Default 1 GiB; 0 or `Infinity`:
   * no limit.
   */
  maxServerInboundBytes?: number;
  /**
   * Logs every call once it has ended (id, pattern, peer, outcome, duration) through Nest's
   * `Logger`, context `WsMsgpackServer`: `true` or `'debug'` at debug level, `'verbose'` at
   * verbose level; the app's log levels still decide what is printed. Defaults to false (off):
   * Nest prints debug lines by default, and a line per call is noise in production.
   */
  logCalls?: boolean | WsMsgpackCallLogLevel;
  /**
   * Interval of WebSocket pings. A peer that has not answered a ping within `keepAliveTimeout`
   * is dropped (so within interval + timeout). Default 30,000 ms; 0 or `Infinity` disables it.
   */
  keepAliveInterval?: number;
  /**
   * How long `close()` waits for peers to finish the closing handshake before cutting them off,
   * and then, as long again at most, for disconnected hooks still running. Default 2,000 ms;
   * `Infinity`: `close()` cuts no one off itself (`ws` still drops a socket whose peer has not
   * answered the closing handshake after 30 s) and waits for the hooks.
   */
  closeTimeout?: number;
  /**
   * How long `close()` (and `app.close()`) lets the calls under way, both ways (the clients'
   * calls to the server, and the server's own calls to clients, `peer.send()`), finish after
   * telling every client the server is going away. New calls are refused meanwhile: a client's
   * with UNAVAILABLE, and the server's own `peer.send()` fails at once with UNAVAILABLE. What
   * still runs then is cancelled (its `finalize` runs, the caller gets UNAVAILABLE). Default
   * 1,000 ms; 0 cancels at once; `Infinity` waits for the calls however long they take.
   */
  drainTimeout?: number;
  /**
   * Replicas that act as one: `redisCluster({ url })` from `nestjs-ws-msgpack/redis` (or another
   * {@link WsMsgpackClusterAdapter}). With it, `server.cluster` reaches the peers of every replica:
   * broadcast, presence, calls to a peer whichever replica holds it. Defaults to none: the server
   * knows only its own peers.
   */
  cluster?: WsMsgpackClusterAdapter;
}

/** The defaults of the server's own options (each connection's limits: `DEFAULT_LIMITS`). */
export const SERVER_DEFAULTS = Object.freeze({
  drainTimeout: 1000,
  closeTimeout: 2000,
  maxServerInboundBytes: 1024 * 1024 * 1024,
});

/**
 * Checks the server's options at construction, in this order (the first bad one is reported):
 * `path` with `httpServer`, the connection limits, extensions, the standalone server's options,
 * `drainTimeout`, `closeTimeout`, then (`makeGate`) the upgrade checks' own options, then
 * `maxServerInboundBytes`, then `cluster`; fills in the defaults. A bad value fails here with `nestjs-ws-msgpack:
 * option <name> ...`, not at the first connection.
 */
export function resolveServerOptions<G>(
  options: WsMsgpackServerOptions,
  makeGate: () => G,
): { drainTimeout: number; closeTimeout: number; gate: G; maxServerInboundBytes: number } {
  if (options.httpServer && !options.path) {
    throw new TypeError('nestjs-ws-msgpack: option `path` is required with `httpServer` (e.g. "/rpc"), so HTTP routes and other WebSocket gateways keep theirs');
  }
  resolveLimits(options);
  extensionCodecOf(options); // each connection's codec builds its own
  checkStandaloneOptions(options);
  const drainTimeout = options.drainTimeout === undefined ? SERVER_DEFAULTS.drainTimeout : checkDuration('drainTimeout', options.drainTimeout);
  const closeTimeout = options.closeTimeout === undefined ? SERVER_DEFAULTS.closeTimeout : checkDuration('closeTimeout', options.closeTimeout);
  const gate = makeGate();
  const maxServerInboundBytes = options.maxServerInboundBytes ?? SERVER_DEFAULTS.maxServerInboundBytes;
  if (typeof maxServerInboundBytes !== 'number' || !(maxServerInboundBytes >= 0)) throw optionError('maxServerInboundBytes', 'a number >= 0', maxServerInboundBytes);
  const cluster = options.cluster as Partial<WsMsgpackClusterAdapter> | undefined;
  if (cluster !== undefined && (typeof cluster !== 'object' || cluster === null || typeof cluster.start !== 'function' || typeof cluster.close !== 'function')) {
    throw optionError('cluster', 'a cluster adapter (redisCluster(...) from nestjs-ws-msgpack/redis)', cluster);
  }
  return { drainTimeout, closeTimeout, gate, maxServerInboundBytes };
}
