/**
 * Error codes carried in ERROR frames (docs/PROTOCOL.md, "Error codes").
 * `APPLICATION_ERROR` carries a Nest error payload unchanged (what `RpcException` or an
 * exception filter produced); every other code is raised by the transport itself.
 */
export const WsMsgpackErrorCode = {
  /** A handler's error, after Nest's exception filters. The payload is delivered as-is. */
  APPLICATION_ERROR: 'APPLICATION_ERROR',
  /** No handler matches the pattern. */
  UNIMPLEMENTED: 'UNIMPLEMENTED',
  /** The call was cancelled (the caller unsubscribed). */
  CANCELLED: 'CANCELLED',
  /** The call's deadline passed before it completed. */
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  /** The connection is closed or could not be opened; the call may be retried. */
  UNAVAILABLE: 'UNAVAILABLE',
  /** A limit was hit: concurrent calls, buffered items, payload size. */
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  /** The peer sent something the protocol does not allow. */
  PROTOCOL_ERROR: 'PROTOCOL_ERROR',
  /** A value could not be encoded, or another local failure. */
  INTERNAL: 'INTERNAL',
  /**
   * Not an error of a call: sent as a connection-level ERROR (id 0) by a peer that is shutting
   * down. Start no new calls on this connection; those under way may finish (docs/PROTOCOL.md §15.1).
   */
  GOING_AWAY: 'GOING_AWAY',
} as const;

/** One of the {@link WsMsgpackErrorCode} values. */
export type WsMsgpackErrorCode = (typeof WsMsgpackErrorCode)[keyof typeof WsMsgpackErrorCode];

/**
 * A transport error: the call failed for a reason other than the handler's own error.
 * Check `code` (a {@link WsMsgpackErrorCode}); `details` carries optional extra data sent by the peer.
 */
export class WsMsgpackError extends Error {
  /** The error code. Unknown codes from a newer peer are kept as sent. */
  readonly code: WsMsgpackErrorCode | (string & {});
  /** Extra data sent with the error, if any. */
  readonly details?: unknown;

  constructor(code: WsMsgpackErrorCode | (string & {}), message: string, details?: unknown) {
    super(message);
    this.name = 'WsMsgpackError';
    this.code = code;
    if (details !== undefined) this.details = details;
  }
}

/**
 * The transport errors this side raises, one maker per code (in the manner of `ws`'s
 * `createError`), so that each code is made in one way wherever it is raised.
 */
export const unavailable = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, message, details);
/** See {@link unavailable}. */
export const deadlineExceeded = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.DEADLINE_EXCEEDED, message, details);
/** See {@link unavailable}. */
export const cancelled = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.CANCELLED, message, details);
/** See {@link unavailable}. */
export const resourceExhausted = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.RESOURCE_EXHAUSTED, message, details);
/** See {@link unavailable}. */
export const unimplemented = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.UNIMPLEMENTED, message, details);
/** See {@link unavailable}. */
export const internalError = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.INTERNAL, message, details);
/** See {@link unavailable}. */
export const goingAway = (message: string, details?: unknown): WsMsgpackError => new WsMsgpackError(WsMsgpackErrorCode.GOING_AWAY, message, details);

/**
 * Raised by frame validation; carries the call id when the frame had a readable one, and the code
 * the call fails with: PROTOCOL_ERROR for a frame the protocol does not allow, RESOURCE_EXHAUSTED
 * for a valid frame over a limit of the receiver's (`maxInboundBytes`).
 */
export class ProtocolViolation extends Error {
  constructor(
    message: string,
    /** The call id of the offending frame, or 0 when it could not be read. */
    readonly id: number = 0,
    /** The frame type, when it could be read. */
    readonly frameType?: number,
    /** The code the call (or the connection-level ERROR) carries. */
    readonly code: WsMsgpackErrorCode = WsMsgpackErrorCode.PROTOCOL_ERROR,
  ) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}
