/**
 * The messages of remote calls: what one replica sends another so that a call to a peer held by
 * another replica works as a call to a local peer (see {@link RemoteCalls}). Plain data (each
 * crosses the bus msgpack-encoded), a discriminated union on `t`, with short field names. Control
 * fields that are absent may also come as nil (null); values (`d`, `v`) are kept as they come.
 *
 * | `t` | direction | fields | meaning |
 * |---|---|---|---|
 * | `call` | caller → holder | `i` id, `p` peer id, `k` pattern, `d` payload, `h?` headers, `ms?` deadline (ms), `n?` initial credit (absent: unlimited), `o?` overflow | start a call on the holder's local peer |
 * | `credit` | caller → holder | `i`, `n` (≥ 1) | the caller's subscriber took items: `n` more may be sent |
 * | `cancel` | caller → holder | `i`, `r?` (`'DEADLINE_EXCEEDED'`) | the caller unsubscribed (or its deadline guard fired): stop, answer nothing |
 * | `emit` | caller → holder | `i`, `p`, `k`, `d`, `h?` | emit an event to the local peer; answered by `ack` or `error` |
 * | `close` | caller → holder | `p`, `c?` close code, `r?` reason | close the local peer's connection (no answer) |
 * | `join` / `leave` | caller → holder | `p`, `r` rooms | put the local peer in rooms / take it out (no answer) |
 * | `read` | caller → holder | `b` bytes (≥ 1) | the caller received `b` more bytes of answers from the holder (frees room under the holder's `maxBytesInFlight`) |
 * | `reset` | caller → holder | | the caller's link dropped (answers may have been lost, reads were not all told): count its unread bytes from zero |
 * | `next` | holder → caller | `i`, `v` value, `e?` (true: the last item, the response completed with it) | one item of the response (uses one unit of credit); with `e`, no `done` follows |
 * | `done` | holder → caller | `i` | the response completed |
 * | `error` | holder → caller | `i`, `c` code, `m` message, `d?` details (APPLICATION_ERROR: the payload), `g?` (true: the peer is not connected there) | the call (or emit) failed |
 * | `ack` | holder → caller | `i` | the event was handed to the local peer's socket |
 *
 * Bytes: the holder counts the encoded size of every answer it sends a replica, and stops sending
 * `next` items to it (the calls wait, holding one pulled item each) while what it sent and has not
 * heard read reaches its budget; the caller adds up the size of every answer it receives from a
 * replica and sends `read` each time that reaches {@link READ_STEP}. A budget above READ_STEP can
 * therefore never deadlock: what stays unacknowledged on the caller is below READ_STEP. When the
 * caller's link drops (answers lost in the engine, reads untold), it sends `reset` to the replicas
 * it called, which then count from zero; an answer the holder could not send is not counted.
 *
 * Ids (`i`) are unique per caller replica (calls and emits share one sequence): the holder keys
 * what it serves by (caller replica, id). Messages from one replica to another must arrive in the
 * order they were sent (one Redis connection does that); one that is lost stalls or fails a call,
 * which is why a link that drops must say so ({@link RemoteCalls.linkDown}).
 */
import { withCause } from '../connection/errors.js';
import { asError } from '../connection/frame-writer.js';
import { WsMsgpackError, WsMsgpackErrorCode, unavailable } from '../protocol/errors.js';
import { OVERFLOW_STRATEGIES, type OverflowStrategy, type WsMsgpackCallHeaders } from '../protocol/frames.js';

/** Starts a call on the holder's local peer `p`. */
export interface RemoteCallMessage {
  readonly t: 'call';
  readonly i: number;
  readonly p: string;
  readonly k: unknown;
  readonly d: unknown;
  readonly h?: WsMsgpackCallHeaders;
  readonly ms?: number;
  readonly n?: number;
  readonly o?: OverflowStrategy;
}
/** Grants `n` more items to call `i`. */
export interface RemoteCreditMessage {
  readonly t: 'credit';
  readonly i: number;
  readonly n: number;
}
/** Cancels call `i`; `r` says why when it is the caller's deadline. */
export interface RemoteCancelMessage {
  readonly t: 'cancel';
  readonly i: number;
  readonly r?: string;
}
/** Emits an event to the holder's local peer `p` (answered by `ack` or `error`). */
export interface RemoteEmitMessage {
  readonly t: 'emit';
  readonly i: number;
  readonly p: string;
  readonly k: unknown;
  readonly d: unknown;
  readonly h?: WsMsgpackCallHeaders;
}
/** Closes the holder's local peer `p`. */
export interface RemoteCloseMessage {
  readonly t: 'close';
  readonly p: string;
  readonly c?: number;
  readonly r?: string;
}
/** Puts the holder's local peer `p` in rooms `r`, or takes it out of them. */
export interface RemoteRoomsMessage {
  readonly t: 'join' | 'leave';
  readonly p: string;
  readonly r: readonly string[];
}
/** The caller received `b` more bytes of answers (see the module notes). */
export interface RemoteReadMessage {
  readonly t: 'read';
  readonly b: number;
}
/** The caller's link dropped: the holder counts its unread bytes from zero. */
export interface RemoteResetMessage {
  readonly t: 'reset';
}
/** One item of call `i`'s response; `e`: the last one (the response completed with it). */
export interface RemoteNextMessage {
  readonly t: 'next';
  readonly i: number;
  readonly v: unknown;
  readonly e?: true;
}
/** Call `i` completed. */
export interface RemoteDoneMessage {
  readonly t: 'done';
  readonly i: number;
}
/** Call (or emit) `i` failed: code, message, details; `g` when the peer is not connected to the holder. */
export interface RemoteErrorMessage {
  readonly t: 'error';
  readonly i: number;
  readonly c: string;
  readonly m: string;
  readonly d?: unknown;
  readonly g?: boolean;
}
/** Emit `i` was handed to the peer's socket. */
export interface RemoteAckMessage {
  readonly t: 'ack';
  readonly i: number;
}

/** A message of remote calls (the table above). */
export type RemoteMessage =
  | RemoteCallMessage
  | RemoteCreditMessage
  | RemoteCancelMessage
  | RemoteEmitMessage
  | RemoteCloseMessage
  | RemoteRoomsMessage
  | RemoteReadMessage
  | RemoteResetMessage
  | RemoteNextMessage
  | RemoteDoneMessage
  | RemoteErrorMessage
  | RemoteAckMessage;

/** The messages a caller sends to the replica holding the peer. */
export type RemoteRequestMessage =
  RemoteCallMessage | RemoteCreditMessage | RemoteCancelMessage | RemoteEmitMessage | RemoteCloseMessage | RemoteRoomsMessage | RemoteReadMessage | RemoteResetMessage;
/** The messages the holder answers a caller with. */
export type RemoteAnswerMessage = RemoteNextMessage | RemoteDoneMessage | RemoteErrorMessage | RemoteAckMessage;

/** What a message that is not one of {@link RemoteMessage} is reported as. */
export function badMessage(from: string, why: string): WsMsgpackError {
  return protocolError(`cluster: dropped a message from replica ${from}: ${why}`);
}

type Fields = Record<string, unknown>;

/** `message` as a {@link RemoteMessage}, or why it is not one. Optional fields may be absent or null (msgpack's nil). */
export function parseMessage(message: unknown): RemoteMessage | string {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return 'not a map';
  const m = message as Fields;
  const t = m.t;
  if (t === 'close' || t === 'join' || t === 'leave') return parsePeerMessage(t, m);
  if (t === 'read') return isId(m.b) ? { t, b: m.b } : 'read: b (bytes) must be a positive integer';
  if (t === 'reset') return { t };
  if (typeof t !== 'string' || !MESSAGE_TYPES.has(t)) return `unknown type ${JSON.stringify(t)}`;
  if (!isId(m.i)) return `${t}: i (id) must be a positive integer`;
  const i = m.i;
  switch (t) {
    case 'call':
    case 'emit': {
      if (typeof m.p !== 'string') return `${t}: p (peer id) must be a string`;
      if (!('k' in m)) return `${t}: k (pattern) is missing`;
      const h = opt(m.h);
      if (h !== undefined && (typeof h !== 'object' || Array.isArray(h))) return `${t}: h (headers) must be a map`;
      const base = { i, p: m.p, k: m.k, d: m.d, ...(h === undefined ? {} : { h: h as WsMsgpackCallHeaders }) };
      if (t === 'emit') return { t, ...base };
      const ms = opt(m.ms);
      if (ms !== undefined && !(typeof ms === 'number' && ms > 0 && Number.isFinite(ms))) return 'call: ms (deadline) must be a positive number';
      const n = opt(m.n);
      if (n !== undefined && !isId(n)) return 'call: n (credit) must be a positive integer';
      const o = opt(m.o);
      if (o !== undefined && !OVERFLOW_STRATEGIES.includes(o as OverflowStrategy)) return `call: o (overflow) must be one of ${OVERFLOW_STRATEGIES.join(', ')}`;
      return { t, ...base, ...(ms === undefined ? {} : { ms }), ...(n === undefined ? {} : { n }), ...(o === undefined ? {} : { o: o as OverflowStrategy }) };
    }
    case 'credit':
      return isId(m.n) ? { t, i, n: m.n } : 'credit: n must be a positive integer';
    case 'cancel': {
      const r = opt(m.r);
      if (r !== undefined && typeof r !== 'string') return 'cancel: r (reason) must be a string';
      return r === undefined ? { t, i } : { t, i, r };
    }
    case 'next':
      return m.e === true ? { t, i, v: m.v, e: true } : { t, i, v: m.v };
    case 'error': {
      if (typeof m.c !== 'string' || typeof m.m !== 'string') return 'error: c (code) and m (message) must be strings';
      return { t, i, c: m.c, m: m.m, ...(m.d === undefined ? {} : { d: m.d }), ...(m.g === true ? { g: true } : {}) };
    }
    default: // done, ack
      return { t: t as 'done' | 'ack', i };
  }
}

const MESSAGE_TYPES = new Set(['call', 'credit', 'cancel', 'emit', 'next', 'done', 'error', 'ack']);

function parsePeerMessage(t: 'close' | 'join' | 'leave', m: Fields): RemoteMessage | string {
  if (typeof m.p !== 'string') return `${t}: p (peer id) must be a string`;
  if (t !== 'close') {
    const r = m.r;
    if (!Array.isArray(r) || !r.every((room) => typeof room === 'string' && room !== '')) return `${t}: r (rooms) must be a list of non-empty strings`;
    return { t, p: m.p, r: r as string[] };
  }
  const c = opt(m.c);
  if (c !== undefined && !Number.isInteger(c)) return 'close: c (code) must be an integer';
  const r = opt(m.r);
  if (r !== undefined && typeof r !== 'string') return 'close: r (reason) must be a string';
  return { t, p: m.p, ...(c === undefined ? {} : { c: c as number }), ...(r === undefined ? {} : { r }) };
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
}

/** An optional field: null (msgpack's nil, what `undefined` may become on the way) is absent. */
function opt(v: unknown): unknown {
  return v === null ? undefined : v;
}

/** How many bytes of answers a caller receives from one replica before it sends `read` (64 KiB). */
export const READ_STEP = 64 * 1024;

/**
 * How the multiplexer reaches another replica (the cluster adapter implements it over its engine).
 * `message` is plain data; the link encodes it (msgpack) and delivers it to that replica's
 * `RemoteCalls.receive(from, message, bytes)`, at most once, in the order sent to that replica.
 */
export interface ClusterLink {
  /**
   * Sends `message` to `replica`. Rejects with UNAVAILABLE when the engine is unreachable,
   * RESOURCE_EXHAUSTED when the message is too large or (for `call` and `emit`) the link's queue
   * is full, INTERNAL when it cannot be encoded. `sized`, when given, is called before `send`
   * returns with the number of bytes the message takes on the engine (what the receiver is given
   * as `bytes`); a link that cannot tell does not call it (nothing is then bounded in bytes).
   */
  send(replica: string, message: RemoteMessage, sized?: (bytes: number) => void): Promise<void>;
}

/**
 * Sends `message` on `link`; the promise rejects with a {@link WsMsgpackError}: the link's own
 * (UNAVAILABLE; RESOURCE_EXHAUSTED or INTERNAL when the link is fine but the message could not go), or UNAVAILABLE wrapping anything
 * else it failed with (also a synchronous throw).
 */
export function sendOn(link: ClusterLink, replica: string, message: RemoteMessage, sized?: (bytes: number) => void): Promise<void> {
  let sent: Promise<void>;
  try {
    sent = Promise.resolve(link.send(replica, message, sized));
  } catch (e) {
    sent = Promise.reject(e);
  }
  return sent.catch((e: unknown) => {
    throw e instanceof WsMsgpackError ? e : withCause(unavailable(`cluster: could not reach replica ${replica}: ${asError(e).message}`), e);
  });
}

/** A message that breaks the rules of remote calls (malformed, or an answer of the wrong kind): PROTOCOL_ERROR. */
export function protocolError(message: string): WsMsgpackError {
  return new WsMsgpackError(WsMsgpackErrorCode.PROTOCOL_ERROR, message);
}

/** What to report when a message could not be sent: the link's error (its code and details), with what was not sent. */
export function notSent(what: string, error: WsMsgpackError): WsMsgpackError {
  return withCause(new WsMsgpackError(error.code, `cluster: ${what} not sent: ${error.message}`, error.details), error);
}
