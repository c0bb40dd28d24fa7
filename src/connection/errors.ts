import { WsMsgpackError, WsMsgpackErrorCode, type ProtocolViolation, unavailable, resourceExhausted } from '../protocol/errors.js';
import type { ErrorFrame } from '../protocol/frames.js';

/** The code, message and data an error travels as in an ERROR frame. */
export interface ErrorDescription {
  code: string;
  message: string;
  data?: unknown;
}

/**
 * How a local error goes on the wire:
 * - {@link WsMsgpackError}: its code, message and details.
 * - an `Error`: APPLICATION_ERROR with its message (no data: stack traces stay home).
 * - anything else (a Nest error payload such as `{ status: 'error', message }`, a string):
 *   APPLICATION_ERROR with the value itself as data, delivered unchanged to the caller.
 */
export function describeError(error: unknown): ErrorDescription {
  if (error instanceof WsMsgpackError) {
    return error.details === undefined ? { code: error.code, message: error.message } : { code: error.code, message: error.message, data: error.details };
  }
  if (error instanceof Error) return { code: WsMsgpackErrorCode.APPLICATION_ERROR, message: error.message };
  if (typeof error === 'string') return { code: WsMsgpackErrorCode.APPLICATION_ERROR, message: error, data: error };
  const m = (error as { message?: unknown } | null)?.message;
  return { code: WsMsgpackErrorCode.APPLICATION_ERROR, message: typeof m === 'string' ? m : 'application error', data: error };
}

/** The value a received ERROR frame surfaces as: APPLICATION_ERROR data as-is, else a {@link WsMsgpackError}. */
export function errorFromFrame(frame: ErrorFrame): unknown {
  if (frame.code === WsMsgpackErrorCode.APPLICATION_ERROR && frame.data !== undefined) return frame.data;
  const error = new WsMsgpackError(frame.code, frame.message, frame.data);
  FROM_PEER.add(error);
  return error;
}

/** Transport errors made from a peer's ERROR frame: their code, message and details are the peer's words. */
const FROM_PEER = new WeakSet<object>();

/** Whether `error` was made from a peer's ERROR frame (see {@link errorFromFrame}). */
export function isFromPeer(error: unknown): boolean {
  return typeof error === 'object' && error !== null && FROM_PEER.has(error);
}

/** What the calls of a closed connection fail with (UNAVAILABLE, naming the close code and reason). */
export function closedError(code: number, reason: string): WsMsgpackError {
  return unavailable(`connection closed (code ${code}${reason ? `: ${reason}` : ''})`, {
    closeCode: code,
    closeReason: reason,
  });
}

/** The report of a peer cut for letting more than `maxSendBufferSize` bytes pile up unread. */
export function sendOverflowError(waiting: number, maxSendBufferSize: number): WsMsgpackError {
  return resourceExhausted(
    `the peer is not reading: ${waiting} bytes wait to be sent, more than maxSendBufferSize (${maxSendBufferSize}), and it took none of them for a second; the connection was cut`,
    { bufferedBytes: waiting },
  );
}

/** A new event or call refused: the peer has not read what already waits for it. */
export function sendBufferFull(waiting: number, maxSendBufferSize: number): WsMsgpackError {
  return resourceExhausted(
    `not sent: ${waiting} bytes already wait for the peer, more than maxSendBufferSize (${maxSendBufferSize}); it is not reading as fast as this side sends`,
    { bufferedBytes: waiting, maxSendBufferSize },
  );
}

/** True for the refusal of {@link sendBufferFull} (a peer that does not keep up, not bad data). */
export function isSendBufferFull(e: unknown): boolean {
  return e instanceof WsMsgpackError && (e.details as { maxSendBufferSize?: unknown } | undefined)?.maxSendBufferSize !== undefined;
}

/** The report of a frame the peer got wrong (PROTOCOL_ERROR) or that is over a limit (RESOURCE_EXHAUSTED). */
export function violationReport(v: ProtocolViolation): WsMsgpackError {
  const what = v.code === WsMsgpackErrorCode.PROTOCOL_ERROR ? 'an invalid frame' : 'a frame over a limit';
  return new WsMsgpackError(v.code, `the peer sent ${what}${v.id ? ` (call ${v.id})` : ''}: ${v.message}`, { callId: v.id, frameType: v.frameType });
}

/** Errors a requester sent on its own request stream (ERROR frames in the requester's direction). */
const REQUEST_STREAM_ERRORS = new WeakSet<object>();

/** Marks `error` as the requester's own, sent on its request stream. */
export function fromRequestStream(error: unknown): unknown {
  if (typeof error === 'object' && error !== null) REQUEST_STREAM_ERRORS.add(error);
  return error;
}

/**
 * Whether `error` is one a requester sent on its request stream: a handler that lets it propagate
 * answers as for any error of its own (Nest's filters), not by echoing the requester's code back.
 */
export function isFromRequestStream(error: unknown): boolean {
  return typeof error === 'object' && error !== null && REQUEST_STREAM_ERRORS.has(error);
}

/**
 * Sets `error.cause` as `new Error(message, { cause })` would (not enumerable): what a transport
 * error wraps, such as Node's `ECONNREFUSED` error of a refused connection.
 */
export function withCause<E extends Error>(error: E, cause: unknown): E {
  Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  return error;
}
