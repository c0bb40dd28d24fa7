import { Logger } from '@nestjs/common';
import { isObservable, tap } from 'rxjs';
import type { IncomingCall } from '../connection/incoming.js';
import type { OutboundSource } from '../connection/outbound-types.js';
import { ReportLimiter } from '../connection/report-limiter.js';
import { WsMsgpackError, unimplemented } from '../protocol/errors.js';
import { shown } from './patterns.js';

/** Where calls are logged: Nest's `debug` or `verbose` level. */
export type WsMsgpackCallLogLevel = 'debug' | 'verbose';

/**
 * Per-call logging (option `logCalls`): one line per call once it has ended, with its id, pattern,
 * peer, outcome and duration, at `debug` (or `verbose`) level through Nest's `Logger`, so the
 * app's log levels decide whether it is printed:
 *
 * `call 7 "orders.create" from peer 3f2a…: ok in 2.1 ms`
 * `call 8 "orders.get" from peer 3f2a…: error UNIMPLEMENTED in 0.1 ms`
 * `call 9 "report" from peer 3f2a…: CANCELLED in 1520.4 ms`
 */
export class CallLog {
  private readonly logger = new Logger('WsMsgpackServer');

  constructor(private readonly level: WsMsgpackCallLogLevel) {}

  /** Starts watching `call`; returns what the handler's result becomes (its error noted). */
  watch(call: IncomingCall, pattern: string, peerId: string): (result: Promise<OutboundSource> | OutboundSource) => Promise<OutboundSource> | OutboundSource {
    const started = performance.now();
    let outcome = 'ok';
    call.onEnd(() => {
      const ms = (performance.now() - started).toFixed(1);
      const ended = call.signal.aborted ? codeOf(call.signal.reason) : outcome;
      this.write(`call ${call.id} ${shown(pattern, call.pattern)} from peer ${peerId}: ${ended} in ${ms} ms`);
    });
    const noteError = (e: unknown): void => void (outcome = `error ${codeOf(e)}`);
    const watched = (source: OutboundSource): OutboundSource => (isObservable(source) ? source.pipe(tap({ error: noteError })) : source);
    return (result) =>
      result instanceof Promise
        ? result.then(watched, (e: unknown) => {
            noteError(e);
            throw e;
          })
        : watched(result);
  }

  /** A call refused before any handler ran (no handler for its pattern). */
  refused(call: IncomingCall, pattern: string | undefined, peerId: string, error: unknown): void {
    this.write(`call ${call.id} ${shown(pattern, call.pattern)} from peer ${peerId}: error ${codeOf(error)} (no handler)`);
  }

  private write(line: string): void {
    if (this.level === 'verbose') this.logger.verbose(line);
    else this.logger.debug(line);
  }
}

/**
 * The unhandled events a dispatcher logs: Nest's own line, once per pattern, and at most 10 lines
 * a second (the rest summed up in one line), so a peer sending ever new patterns can neither
 * flood the log nor grow memory: the patterns already logged are at most 1,000, then forgotten.
 */
export class UnhandledEventLog {
  private readonly logged = new Set<string>();
  private readonly limiter: ReportLimiter;

  constructor(write: (line: string) => void) {
    this.limiter = new ReportLimiter((e) => write(e.message));
  }

  /** An event whose pattern (as patternAsString made it) no handler takes. */
  offer(pattern: string | undefined, original: unknown): void {
    const key = shown(pattern, original);
    if (this.logged.has(key)) return;
    if (this.logged.size >= MAX_LOGGED_PATTERNS) this.logged.clear();
    this.logged.add(key);
    this.limiter.offer(() => unimplemented(`There is no matching event handler defined in the remote service. Event pattern: ${key} (logged once per pattern)`));
  }
}

/** Most distinct unhandled event patterns remembered as logged (then forgotten, and logged again). */
const MAX_LOGGED_PATTERNS = 1000;

/** The code of a transport error; `APPLICATION_ERROR` for what a handler threw or errored with. */
function codeOf(e: unknown): string {
  return e instanceof WsMsgpackError ? e.code : 'APPLICATION_ERROR';
}

/** The CallLog of option `logCalls`, or none. */
export function callLogOf(option: boolean | WsMsgpackCallLogLevel | undefined): CallLog | undefined {
  if (option === undefined || option === false) return undefined;
  if (option !== true && option !== 'debug' && option !== 'verbose') {
    throw new TypeError(`nestjs-ws-msgpack: option logCalls must be true, false, 'debug' or 'verbose', got ${JSON.stringify(option)}`);
  }
  return new CallLog(option === 'verbose' ? 'verbose' : 'debug');
}

/** `host:port` of a listening server's address (`[::1]:3001`), wrapped in `prefix`/`suffix`; '' when not listening. */
export function describeAddress(address: { address: string; port: number; family?: string } | string | null, prefix = '', suffix = ''): string {
  if (!address) return '';
  if (typeof address === 'string') return `${prefix}${address}${suffix}`;
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${prefix}${host}:${address.port}${suffix}`;
}
