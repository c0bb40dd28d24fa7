import { withCause } from '../connection/errors.js';
import { WsMsgpackError, unavailable } from '../protocol/errors.js';
import type { CloseInfo, Connection } from '../connection/connection.js';
import { startTimer, type Timer } from '../connection/timers.js';
import type { SocketAttempt } from './attempt.js';

/**
 * Where a client's connection stands:
 * - `idle`: never connected (the first call or `connect()` starts it);
 * - `connecting`: the first attempt is under way;
 * - `connected`: open;
 * - `reconnecting`: the connection dropped (or an attempt failed); the next attempt waits for its backoff or is under way;
 * - `disconnected`: gave up (no reconnect, the attempts ran out, or a refusal that retrying cannot fix);
 * - `closed`: `close()` was called.
 */
export type SessionPhase = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'closed';

/** Reconnect settings: exponential backoff with full jitter. */
export interface ReconnectOptions {
  /** Base of the first delay, in ms. Default 100. */
  initialDelay?: number;
  /** Largest delay, in ms. Default 2,000: a server back within 10 s is reached within about 2 s of it. */
  maxDelay?: number;
  /** Growth per attempt. Default 2. */
  factor?: number;
  /**
   * Consecutive failed attempts before giving up (status `disconnected`). A connection that
   * closes within a second of opening counts as a failed attempt. Default unlimited.
   */
  maxAttempts?: number;
}

/** Reconnect defaults. */
export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>> = Object.freeze({ initialDelay: 100, maxDelay: 2000, factor: 2, maxAttempts: Infinity });

/** Opens one socket and makes it a Connection (synchronously in its open event). */
export interface Dialer {
  dial(url: string): SocketAttempt;
}

/** What a session reports. */
export interface SessionEvents {
  /** The phase changed. */
  phase(phase: SessionPhase): void;
  /** A connection opened and is now the current one. */
  connected(connection: Connection): void;
  /** The current connection ended (or was replaced after the peer went away). */
  disconnected(connection: Connection, info: CloseInfo): void;
  /** The session gave up (status `disconnected`) and no caller was waiting to be told why. */
  gaveUp(error: unknown): void;
}

/**
 * A connection that closes sooner than this after it opened counts as a failed attempt, so a
 * server that accepts and at once drops (a crash loop, a proxy without a backend) gets the growing
 * backoff rather than a reconnect every ~100 ms.
 */
export const STABLE_CONNECTION_MS = 1000;

interface Waiter {
  resolve(connection: Connection): void;
  reject(error: unknown): void;
  timer: Timer | undefined;
  /** Fail at the first failed attempt instead of waiting for a later one. */
  failFast: boolean;
}

/** Errors of {@link Session.ready} that are its own `timeoutMs` running out (not a refusal, not close()). */
const readyTimeouts = new WeakSet<object>();

/** True when `error` is {@link Session.ready}'s own timeout: the caller's wait ran out. */
export function isReadyTimeout(error: unknown): boolean {
  return typeof error === 'object' && error !== null && readyTimeouts.has(error);
}

/**
 * The wait before the next reconnect attempt, in ms, after `failures` consecutive failed attempts:
 * exponential backoff with full jitter, `random() × min(maxDelay, initialDelay × factor^failures)`.
 * `random` returns a number in [0, 1) (`Math.random` unless a test injects its own).
 */
export function backoffDelay(failures: number, reconnect: Pick<Required<ReconnectOptions>, 'initialDelay' | 'maxDelay' | 'factor'>, random: () => number = Math.random): number {
  const ceiling = Math.min(reconnect.maxDelay, reconnect.initialDelay * reconnect.factor ** failures);
  return random() * ceiling;
}

/** Reasons retrying cannot fix: an HTTP 4xx refusal (but 408, 429) or a version mismatch (4000). */
function isPermanent(error: unknown): boolean {
  const d = (error as { details?: { httpStatus?: unknown; closeCode?: unknown } } | null)?.details;
  const status = typeof d?.httpStatus === 'number' ? d.httpStatus : undefined;
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) return true;
  return d?.closeCode === 4000;
}

/**
 * A client's connection over time: connecting on demand, reconnecting with exponential backoff
 * and full jitter after a drop (also without any call), failing over to the next URL, replacing a
 * connection whose peer is going away, and holding callers until a connection is ready. No Nest,
 * no Node built-ins: the Node client and the browser client share it.
 */
export class Session {
  private phase: SessionPhase = 'idle';
  private current: Connection | undefined;
  private attempt: SocketAttempt | undefined;
  private retry: Timer | undefined;
  private failures = 0;
  /** Consecutive refusals that retrying cannot fix; the session gives up once every URL gave one. */
  private permanentRefusals = 0;
  private connectedAt = 0;
  private urlIndex = 0;
  private lastError: unknown;
  /** Failed attempts since the last connection (or start), counted until each URL had one: a round. */
  private roundFailures = 0;
  /** A whole round of attempts failed (each URL refused, was unreachable, or timed out), and none succeeded since. */
  private lastAttemptFailed = false;
  private readonly waiters = new Set<Waiter>();

  constructor(
    private readonly urls: readonly string[],
    private readonly dialer: Dialer,
    private readonly reconnect: Required<ReconnectOptions> | false,
    private readonly events: SessionEvents,
  ) {
    if (urls.length === 0) throw new TypeError('nestjs-ws-msgpack: at least one server URL is needed');
  }

  /** The open connection new calls should use, if there is one. */
  get connection(): Connection | undefined {
    const c = this.current;
    // A socket already closing (the peer's close frame came, its close event not yet) takes no new call: they wait.
    return c && !c.isClosed && !c.isGoingAway && c.socket.readyState === 1 ? c : undefined;
  }

  /** Where the session stands. */
  get state(): SessionPhase {
    return this.phase;
  }

  /**
   * Resolves with an open connection, starting to connect if nobody is. Waits up to `timeoutMs`
   * through reconnect attempts; rejects with UNAVAILABLE (naming the last failure) then, when the
   * session gives up, or when it is closed.
   *
   * `failFast` (gRPC's semantics without wait-for-ready): while the last attempt failed and the
   * next one waits for its backoff, reject at once; while an attempt is under way (or about to
   * start: the first one, or the one after a drop), wait for it and reject if it fails. With
   * several URLs, "the attempt" is a round: one attempt per URL (as gRPC's pick_first fails a
   * call only once every address failed).
   */
  ready(timeoutMs: number, failFast = false): Promise<Connection> {
    const open = this.connection;
    if (open) return Promise.resolve(open);
    this.start();
    if (failFast && this.lastAttemptFailed && this.attempt === undefined) {
      return Promise.reject(this.unavailable('not connected: the last connection attempt failed and the next one waits for its backoff (the call does not wait for ready)'));
    }
    return new Promise<Connection>((resolve, reject) => {
      const w: Waiter = { resolve, reject, timer: undefined, failFast };
      if (Number.isFinite(timeoutMs)) {
        w.timer = startTimer(Math.max(0, timeoutMs), () => {
          this.waiters.delete(w);
          const error = this.unavailable(`not connected within ${timeoutMs} ms`);
          readyTimeouts.add(error);
          reject(error);
        });
      }
      this.waiters.add(w);
    });
  }

  /**
   * Starts connecting when nobody is (never connected, gave up, or closed), without waiting: the
   * attempts go on with their backoff until one succeeds (or the session gives up).
   */
  start(): void {
    if (this.phase === 'idle' || this.phase === 'disconnected' || this.phase === 'closed') {
      this.failures = 0;
      this.permanentRefusals = 0;
      this.roundFailures = 0;
      this.lastAttemptFailed = false; // a new round: fail-fast callers wait for it to fail whole
      this.dial();
    }
  }

  /** Stops: no more attempts; waiting callers fail with UNAVAILABLE. The current connection is the caller's to close. */
  close(): void {
    this.setPhase('closed');
    this.retry?.cancel();
    this.retry = undefined;
    const attempt = this.attempt;
    this.attempt = undefined;
    attempt?.cancel('client.close() was called during the handshake');
    // `current` stays until it has closed (the caller closes it): its end is still reported.
    this.rejectWaiters(unavailable('the client was closed'), false);
  }

  private dial(): void {
    if (this.attempt || this.retry) return;
    this.setPhase(this.failures === 0 && this.phase !== 'reconnecting' ? 'connecting' : 'reconnecting');
    const url = this.urls[this.urlIndex % this.urls.length]!;
    const attempt = this.dialer.dial(url);
    this.attempt = attempt;
    attempt.opened.then(
      (conn) => {
        if (this.attempt !== attempt) return conn.close(1000, 'client closed');
        this.attempt = undefined;
        this.adopt(conn);
      },
      (error: unknown) => {
        if (this.attempt !== attempt) return;
        this.attempt = undefined;
        this.failed(error);
      },
    );
  }

  private adopt(conn: Connection): void {
    this.current = conn;
    this.lastAttemptFailed = false;
    this.roundFailures = 0;
    this.permanentRefusals = 0;
    this.connectedAt = Date.now(); // `failures` is reset when it proves stable (see dropped)
    conn.onClose((info) => this.dropped(conn, info));
    conn.onGoingAway(() => {
      // Let its calls finish on it; new calls go to a new connection, to the next URL, at once.
      if (this.current !== conn) return;
      this.current = undefined;
      this.roundFailures = 0;
      this.events.disconnected(conn, { code: 1001, reason: 'the server is going away' });
      this.urlIndex++;
      this.setPhase('reconnecting');
      this.dial();
    });
    this.setPhase('connected');
    this.events.connected(conn);
    for (const w of [...this.waiters]) {
      this.waiters.delete(w);
      w.timer?.cancel();
      w.resolve(conn);
    }
  }

  private dropped(conn: Connection, info: CloseInfo): void {
    if (this.current !== conn) return;
    this.current = undefined;
    this.roundFailures = 0;
    if (this.phase !== 'closed') {
      this.lastError = unavailable(`connection closed (code ${info.code}${info.reason ? `: ${info.reason}` : ''})`, {
        closeCode: info.code,
      });
      if (Date.now() - this.connectedAt >= STABLE_CONNECTION_MS) this.failures = 0;
      else this.failures++;
      this.urlIndex++; // failover: the next replica first (also for the next start())
      if (!this.reconnect || info.code === 4000 || this.failures >= this.reconnect.maxAttempts) {
        this.giveUp();
      } else {
        this.setPhase('reconnecting');
        this.schedule();
      }
    }
    // Last, so that a listener that connects (or closes) finds the session settled.
    this.events.disconnected(conn, info);
  }

  private failed(error: unknown): void {
    this.lastError = error;
    this.failures++;
    // With replicas, one refusing (a 404 on one of them) does not stop the others being tried.
    this.permanentRefusals = isPermanent(error) ? this.permanentRefusals + 1 : 0;
    // Fail-fast callers are told once each URL failed (one attempt, with a single URL).
    const roundFailed = ++this.roundFailures >= this.urls.length;
    if (roundFailed) {
      this.roundFailures = 0;
      this.lastAttemptFailed = true;
      this.rejectWaiters(error, true);
    }
    this.urlIndex++; // the next replica first
    // Without reconnecting, one round: each URL once, at once, before giving up.
    if (!this.reconnect) return roundFailed ? this.giveUp() : this.dial();
    if (this.permanentRefusals >= this.urls.length || this.failures >= this.reconnect.maxAttempts) return this.giveUp();
    this.setPhase('reconnecting');
    this.schedule();
  }

  /** The next attempt after a full-jitter backoff ({@link backoffDelay}). */
  private schedule(): void {
    const delay = backoffDelay(this.failures, this.reconnect as Required<ReconnectOptions>);
    // Unref'd: reconnecting alone does not keep a process alive (a caller waiting does).
    this.retry = startTimer(
      delay,
      () => {
        this.retry = undefined;
        this.dial();
      },
      false,
    );
  }

  private giveUp(): void {
    this.setPhase('disconnected');
    const error = this.lastError ?? this.unavailable('gave up');
    // Nobody waiting (an automatic reconnect gave up): the error is reported, never only a status.
    if (this.waiters.size === 0) this.events.gaveUp(error);
    this.rejectWaiters(error, false);
  }

  private rejectWaiters(error: unknown, onlyFailFast: boolean): void {
    for (const w of [...this.waiters]) {
      if (onlyFailFast && !w.failFast) continue;
      this.waiters.delete(w);
      w.timer?.cancel();
      w.reject(error);
    }
  }

  /**
   * UNAVAILABLE naming the last failure; its `cause` is that failure's own cause (Node's
   * `ECONNREFUSED` error: `err.cause.code`), or the failure itself.
   */
  private unavailable(message: string): WsMsgpackError {
    const last = this.lastError;
    const error = unavailable(`${message}${last instanceof Error ? `; last failure: ${last.message}` : ''}`, last instanceof WsMsgpackError ? last.details : undefined);
    if (last !== undefined) withCause(error, last instanceof WsMsgpackError && last.cause !== undefined ? last.cause : last);
    return error;
  }

  private setPhase(phase: SessionPhase): void {
    if (this.phase === phase) return;
    this.phase = phase;
    this.events.phase(phase);
  }
}
