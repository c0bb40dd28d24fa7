import type { ConnectionLimits } from '../connection/options.js';
import type { WsMsgpackCallLogLevel } from '../nest/call-log.js';
import type { WsMsgpackListenOptions, WsMsgpackUpgradeOptions } from '../node/options.js';

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
}
