import { STATUS_CODES, validateHeaderName, validateHeaderValue, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { asError } from '../connection/frame-writer.js';
import { checkDuration } from '../connection/options.js';
import { startTimer, type Timer } from '../connection/timers.js';
import { BEARER_PROTOCOL_PREFIX, SUPPORTED_SUBPROTOCOLS } from '../protocol/constants.js';
import type { WsMsgpackAllowedOrigins, WsMsgpackUpgradeOptions } from './options.js';

/** Default of {@link WsMsgpackServerOptions.maxConnections}. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;
/** Default of {@link WsMsgpackServerOptions.handshakeTimeout}. */
export const DEFAULT_HANDSHAKE_TIMEOUT = 10_000;

/**
 * Thrown by `authenticate` (or an `allowedOrigins` function) to refuse an upgrade with an HTTP
 * status of its choosing. The message is the response body, so write it for the client:
 *
 * ```ts
 * throw new WsMsgpackUpgradeError(403, 'account suspended');
 * throw new WsMsgpackUpgradeError(401, 'token expired', { 'www-authenticate': 'Bearer error="invalid_token"' });
 * ```
 *
 * Any thrown object with a numeric `status` between 400 and 599 (Nest's `ForbiddenException`,
 * `UnauthorizedException`...) is answered with that status too, with the status text as body.
 */
export class WsMsgpackUpgradeError extends Error {
  /** The HTTP status of the refusal, 400-599. */
  readonly status: number;
  /** Extra response headers (e.g. `www-authenticate`). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(status: number, message?: string, headers: Record<string, string> = {}) {
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new RangeError(`WsMsgpackUpgradeError: status must be an integer from 400 to 599, got ${String(status)}`);
    }
    super(message ?? STATUS_CODES[status] ?? `HTTP ${status}`);
    this.name = 'WsMsgpackUpgradeError';
    this.status = status;
    for (const [name, value] of Object.entries(headers)) {
      validateHeaderName(name); // no CR/LF smuggled into the raw response
      validateHeaderValue(name, value);
    }
    this.headers = { ...headers };
  }
}

/** What the gate answers an upgrade it does not let through with. */
interface Refusal {
  status: number;
  body: string;
  headers?: Readonly<Record<string, string>>;
}

/** An upgrade the gate let through: the identity `authenticate` returned; `release()` frees its slot. */
export interface Admission {
  readonly user: unknown;
  release(): void;
}

/** The options of the gate, validated: what {@link UpgradeGate} runs at every upgrade. */
type Authenticate = (request: IncomingMessage) => unknown;

/**
 * The checks an upgrade passes before the WebSocket is accepted, in order: the connection limit
 * (open connections plus upgrades still being checked), the Origin, then `authenticate`, all
 * within `handshakeTimeout`. Every refusal is an HTTP answer on the
 * socket; a failure of the application's own code is also reported (`report`), never silent.
 */
export class UpgradeGate {
  private readonly maxConnections: number;
  private readonly handshakeTimeout: number;
  private readonly origins: ((origin: string | undefined, request: IncomingMessage) => unknown) | undefined;
  private readonly authenticate: Authenticate | undefined;
  private pending = 0;
  /** How to answer each upgrade still being checked right away (see {@link refuseWaiting}). */
  private readonly waiting = new Set<(refusal: Refusal) => void>();

  constructor(
    options: WsMsgpackUpgradeOptions,
    private readonly report: (error: Error) => void,
  ) {
    this.maxConnections = checkCount('maxConnections', options.maxConnections, DEFAULT_MAX_CONNECTIONS);
    this.handshakeTimeout = options.handshakeTimeout === undefined ? DEFAULT_HANDSHAKE_TIMEOUT : checkDuration('handshakeTimeout', options.handshakeTimeout);
    if (options.maxHeaderSize !== undefined && !(Number.isInteger(options.maxHeaderSize) && options.maxHeaderSize > 0)) {
      throw new TypeError(`nestjs-ws-msgpack: option maxHeaderSize must be a positive integer (bytes), got ${String(options.maxHeaderSize)}`);
    }
    if (options.authenticate !== undefined && typeof options.authenticate !== 'function') throw new TypeError('nestjs-ws-msgpack: option authenticate must be a function');
    this.authenticate = options.authenticate;
    this.origins = originCheck(options.allowedOrigins);
  }

  /**
   * Answers every upgrade still being checked with `refusal` now (the server is closing: its
   * sockets must not hold `close()` until the checks end, or forever). What their checks
   * answer later is ignored.
   */
  refuseWaiting(refusal: Refusal): void {
    for (const answer of [...this.waiting]) answer(refusal);
  }

  /**
   * Runs the checks for one upgrade. Resolves with an {@link Admission} when the WebSocket may
   * be accepted (call `release()` once it has been), or `undefined` once the socket has been
   * answered with a refusal. `open` is the number of connections open now.
   */
  async admit(request: IncomingMessage, socket: Duplex, open: number): Promise<Admission | undefined> {
    if (open + this.pending >= this.maxConnections) {
      refuseUpgrade(socket, { status: 503, body: `too many connections (maxConnections ${this.maxConnections})` });
      return undefined;
    }
    if (!this.origins && !this.authenticate) return { user: undefined, release: () => {} }; // nothing to wait for
    this.pending++;
    // Between Node's 'upgrade' event and ws's handleUpgrade nobody listens for socket errors: a
    // client that resets the connection while authenticate() runs would crash the process.
    const onSocketError = (): void => {};
    socket.on('error', onSocketError);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.pending--;
      socket.off('error', onSocketError);
    };
    let timer: Timer | undefined;
    let answerNow: ((refusal: Refusal) => void) | undefined;
    try {
      const checks = this.check(request);
      const cutShort = new Promise<{ now: Refusal }>((resolve) => {
        answerNow = (refusal) => resolve({ now: refusal });
        this.waiting.add(answerNow);
      });
      const limited = this.handshakeTimeout > 0 && this.handshakeTimeout !== Infinity;
      const outcome = await Promise.race([
        checks,
        cutShort,
        ...(limited ? [new Promise<'timeout'>((resolve) => (timer = startTimer(this.handshakeTimeout, () => resolve('timeout'))))] : []),
      ]);
      if (outcome === 'timeout') {
        checks.catch(() => {}); // settles later, if ever: nobody is waiting for it any more
        this.report(
          new Error(`the checks of an upgrade (allowedOrigins, authenticate) did not finish within handshakeTimeout (${this.handshakeTimeout} ms); it was refused with 503`),
        );
        refuseUpgrade(socket, { status: 503, body: `the upgrade was not completed within ${this.handshakeTimeout} ms` });
        release();
        return undefined;
      }
      if ('now' in outcome) {
        checks.catch(() => {}); // settles later, if ever: the socket has its answer, what it says is ignored
        refuseUpgrade(socket, outcome.now);
        release();
        return undefined;
      }
      if ('status' in outcome) {
        refuseUpgrade(socket, outcome);
        release();
        return undefined;
      }
      return { user: outcome.user, release };
    } catch (e) {
      release();
      throw e;
    } finally {
      timer?.cancel();
      if (answerNow) this.waiting.delete(answerNow);
    }
  }

  /** Origin, then authentication: resolves with the identity, or with the refusal to send. */
  private async check(request: IncomingMessage): Promise<{ user: unknown } | Refusal> {
    if (this.origins) {
      const origin = originOf(request);
      let allowed: unknown;
      try {
        allowed = await this.origins(origin, request);
      } catch (e) {
        return this.failure(e, 'allowedOrigins()');
      }
      if (!allowed) return { status: 403, body: `origin not allowed: ${origin ?? '(none)'}` };
    }
    if (!this.authenticate) return { user: undefined };
    let identity: unknown;
    try {
      identity = await this.authenticate(request);
    } catch (e) {
      return this.failure(e, 'authenticate()');
    }
    if (identity === undefined || identity === null || identity === false) return { status: 401, body: 'Unauthorized' };
    return { user: identity };
  }

  /** A throw: a deliberate refusal when it carries a status, otherwise a failure reported as 500. */
  private failure(e: unknown, what: string): Refusal {
    if (e instanceof WsMsgpackUpgradeError) return { status: e.status, body: e.message, headers: e.headers };
    const status = (e as { status?: unknown } | null)?.status;
    if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) {
      return { status, body: STATUS_CODES[status] ?? `HTTP ${status}` };
    }
    this.report(new Error(`${what} threw; the upgrade was refused with 500: ${asError(e).message}`, { cause: e }));
    return { status: 500, body: STATUS_CODES[500]! };
  }
}

/**
 * Answers an upgrade request with an HTTP error and closes the socket once the answer is out.
 * `body` is plain text.
 */
export function refuseUpgrade(socket: Duplex, refusal: Refusal): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.on('error', () => {}); // a client that resets while the answer goes out: nothing left to do
  const body = Buffer.from(refusal.body, 'utf8');
  let head = `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n`;
  for (const [name, value] of Object.entries(refusal.headers ?? {})) head += `${name}: ${value}\r\n`;
  socket.once('finish', () => socket.destroy());
  socket.end(Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body]));
}

/** The Origin the upgrade request claims (`Sec-WebSocket-Origin` for protocol version 8). */
function originOf(request: IncomingMessage): string | undefined {
  const h = request.headers['sec-websocket-version'] === '8' ? request.headers['sec-websocket-origin'] : request.headers.origin;
  return typeof h === 'string' ? h : undefined;
}

/** The check `allowedOrigins` describes: a list matches exact origins, and lets requests without one through. */
function originCheck(allowed: WsMsgpackAllowedOrigins | undefined): ((origin: string | undefined, request: IncomingMessage) => unknown) | undefined {
  if (allowed === undefined) return undefined;
  if (typeof allowed === 'function') return allowed;
  if (!Array.isArray(allowed)) throw new TypeError('nestjs-ws-msgpack: option allowedOrigins must be an array of origins or a function');
  const set = new Set<string>();
  for (const entry of allowed) {
    let origin: string;
    try {
      origin = new URL(String(entry)).origin;
    } catch {
      origin = 'null';
    }
    if (origin === 'null') {
      throw new TypeError(`nestjs-ws-msgpack: allowedOrigins entry ${JSON.stringify(entry)} is not an origin (scheme://host[:port], e.g. 'https://app.example.com')`);
    }
    set.add(origin);
  }
  return (origin) => {
    if (origin === undefined) return true; // not a browser: no Origin to forge a session with (see README, Security)
    try {
      return set.has(new URL(origin).origin);
    } catch {
      return false;
    }
  };
}

function checkCount(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (value === Infinity || (Number.isInteger(value) && value > 0)) return value;
  throw new TypeError(`nestjs-ws-msgpack: option ${name} must be a positive integer or Infinity, got ${String(value)}`);
}

/** The subprotocol to accept from those offered: ours, else the peer's own first offer (never a bearer-token entry), so the close reason can tell it why it is refused. */
export function pickProtocol(offered: Set<string>): string | false {
  for (const p of SUPPORTED_SUBPROTOCOLS) if (offered.has(p)) return p;
  // Accept with the peer's own first offer only to tell it, in the close reason, why it is refused
  // (never a bearer-token entry: a token is not echoed back).
  for (const p of offered) if (!p.startsWith(BEARER_PROTOCOL_PREFIX)) return p;
  return false;
}
