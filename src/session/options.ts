import { optionError, type ConnectionLimits } from '../connection/options.js';
import type { ReconnectOptions } from './session.js';

/**
 * The options both clients share, the Nest client's (`WsMsgpackClientOptions`) and the browser
 * client's (`WsMsgpackWebClientOptions`), beside each connection's limits: declared once here,
 * checked once ({@link checkClientOptions}), defaulted from one table ({@link CLIENT_DEFAULTS}).
 */
export interface ClientCoreOptions extends ConnectionLimits {
  /**
   * Server URL, e.g. 'ws://127.0.0.1:3001' or 'wss://api.example.com/rpc'; or several (replicas):
   * the client starts with the first and, when a connection drops or an attempt fails, tries the next.
   */
  url: string | readonly string[];
  /** Default deadline of every call, in milliseconds (a record's `setTimeout` wins). Defaults to none. */
  timeout?: number;
  /** How long one connection attempt (the WebSocket handshake) may take. Defaults to 10,000 ms. */
  connectTimeout?: number;
  /**
   * Reconnect automatically when the connection drops (no call needed to trigger it), with
   * exponential backoff and full jitter. `true` (the default) uses {@link DEFAULT_RECONNECT}; an
   * object changes parts of it; `false` makes one attempt per connect and none after a drop (a
   * server announcing GOING_AWAY is still failed over at once: one attempt to the next URL).
   * Refusals that retrying cannot fix (HTTP 4xx such as 401/403, an unsupported protocol version)
   * stop it, once every URL has refused.
   */
  reconnect?: boolean | ReconnectOptions;
  /**
   * What calls, events and `connect()` made while not connected do (gRPC's wait-for-ready):
   * - `false` (the default, gRPC's and Nest TCP's fail-fast): while the last connection attempt
   *   failed (refused, unreachable) and the next one waits for its backoff, they fail at once
   *   with UNAVAILABLE, whose `cause` is the socket's error (`err.cause.code === 'ECONNREFUSED'`);
   *   while an attempt is under way (the first one, or the one after a drop) they wait for it and
   *   fail with its error if it fails.
   * - `true`: they wait for a connection through the reconnect attempts, up to their deadline
   *   (or `readyTimeout`).
   *
   * Per call: `WsMsgpackRecordBuilder.setWaitForReady()`.
   */
  waitForReady?: boolean;
  /**
   * How long `connect()`, and a call or event without a deadline, wait for a connection before
   * failing with UNAVAILABLE (through reconnect attempts with `waitForReady`; for the attempt
   * under way without). Defaults to 10,000 ms.
   */
  readyTimeout?: number;
  /** Most events waiting for a connection; more fail at once with UNAVAILABLE. Defaults to 1,000. */
  maxPendingEvents?: number;
}

/** The defaults of {@link ClientCoreOptions} (the reconnect schedule's are `DEFAULT_RECONNECT`). */
export const CLIENT_DEFAULTS = Object.freeze({
  /** Calls fail fast (gRPC's default). */
  waitForReady: false,
  readyTimeout: 10_000,
  connectTimeout: 10_000,
  maxPendingEvents: 1000,
});

/** Checks the clients' own time and count options (each connection's limits are checked by resolveLimits). */
export function checkClientOptions(options: ClientCoreOptions): void {
  const check = (name: string, value: unknown, ok: (n: number) => boolean, what: string): void => {
    if (value === undefined) return;
    if (typeof value !== 'number' || Number.isNaN(value) || !ok(value)) throw optionError(name, what, value);
  };
  const nonNegative = (n: number): boolean => n >= 0;
  const count = (n: number): boolean => n === Infinity || (Number.isInteger(n) && n >= 0);
  check('connectTimeout', options.connectTimeout, (n) => n > 0 && Number.isFinite(n), 'a finite number of milliseconds > 0');
  check('readyTimeout', options.readyTimeout, nonNegative, 'a number of milliseconds >= 0 (Infinity: wait without limit)');
  check('timeout', options.timeout, nonNegative, 'a number of milliseconds >= 0 (Infinity or 0: no deadline)');
  check('maxPendingEvents', options.maxPendingEvents, count, 'a whole number >= 0 or Infinity');
  const r = typeof options.reconnect === 'object' && options.reconnect !== null ? options.reconnect : undefined;
  if (options.reconnect !== undefined && typeof options.reconnect !== 'boolean' && !r) throw optionError('reconnect', 'true, false or an object', options.reconnect);
  if (r) {
    const finite = (n: number): boolean => n >= 0 && Number.isFinite(n);
    check('reconnect.initialDelay', r.initialDelay, finite, 'a finite number of milliseconds >= 0');
    check('reconnect.maxDelay', r.maxDelay, finite, 'a finite number of milliseconds >= 0');
    check('reconnect.factor', r.factor, (n) => n >= 1 && Number.isFinite(n), 'a finite number >= 1');
    check('reconnect.maxAttempts', r.maxAttempts, (n) => n >= 1 && count(n), 'a whole number >= 1 or Infinity');
  }
}
