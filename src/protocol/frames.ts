import type { WsMsgpackErrorCode } from './errors.js';
/**
 * Frame types of protocol v1. Every WebSocket message is one msgpack array whose first element
 * is one of these numbers (docs/PROTOCOL.md, "Frames").
 */
export const FrameType = {
  REQUEST: 1,
  EVENT: 2,
  NEXT: 3,
  COMPLETE: 4,
  ERROR: 5,
  CANCEL: 6,
  CREDIT: 7,
} as const;

/** One of the {@link FrameType} numbers. */
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Per-call headers: a msgpack map with string keys. */
export type WsMsgpackCallHeaders = Record<string, unknown>;

/**
 * What a sender does with push-stream items it cannot send yet (no credit, or a congested socket)
 * once its buffer is full (docs/PROTOCOL.md, "Overflow"):
 * - `'error'`: the stream fails with RESOURCE_EXHAUSTED and the source is unsubscribed;
 * - `'drop-newest'`: items that arrive while the buffer is full are dropped;
 * - `'drop-oldest'`: the oldest buffered items are dropped to make room;
 * - `'latest'`: only the most recent item waits (each new one replaces it), whatever its size.
 */
export type OverflowStrategy = 'error' | 'drop-newest' | 'drop-oldest' | 'latest';

/** Every {@link OverflowStrategy}, in the order the documentation lists them. */
export const OVERFLOW_STRATEGIES: readonly OverflowStrategy[] = Object.freeze(['error', 'drop-newest', 'drop-oldest', 'latest']);

/** Starts a call. `id` is odd when the client starts it, even when the server does. */
export interface RequestFrame {
  type: typeof FrameType.REQUEST;
  id: number;
  pattern: unknown;
  /** The request data; `undefined` when `stream` is true (items follow as NEXT frames). */
  payload: unknown;
  headers?: WsMsgpackCallHeaders;
  /** Initial credit for response items; absent means unlimited. */
  credit?: number;
  /** Deadline, in milliseconds from when the responder receives the frame. */
  timeout?: number;
  /** The requester's overflow strategy for the response stream (meta `o`); absent: the responder's own. */
  overflow?: OverflowStrategy;
  /** True when the request data is a stream of NEXT frames from the requester. */
  stream: boolean;
}

/** A fire-and-forget event: no id, no answer. */
export interface EventFrame {
  type: typeof FrameType.EVENT;
  pattern: unknown;
  payload: unknown;
  headers?: WsMsgpackCallHeaders;
}

/** One stream item (a response item, or a request-stream item from the requester). */
export interface NextFrame {
  type: typeof FrameType.NEXT;
  id: number;
  value: unknown;
}

/** End of a stream; `hasValue` marks a final item carried in the same frame. */
export interface CompleteFrame {
  type: typeof FrameType.COMPLETE;
  id: number;
  hasValue: boolean;
  value?: unknown;
}

/** A stream ended with an error. `id` 0 is a connection-level error not tied to a call. */
export interface ErrorFrame {
  type: typeof FrameType.ERROR;
  id: number;
  code: string;
  message: string;
  /** The Nest error payload for APPLICATION_ERROR; optional details otherwise. */
  data?: unknown;
}

/** The requester no longer wants the call. */
export interface CancelFrame {
  type: typeof FrameType.CANCEL;
  id: number;
  /**
   * Why, when it is not a plain cancel: `DEADLINE_EXCEEDED` when the requester's deadline timer
   * fired (`[6, id, "DEADLINE_EXCEEDED"]`), so the responder's handler sees that reason.
   */
  reason?: typeof WsMsgpackErrorCode.DEADLINE_EXCEEDED;
}

/** The receiver of a stream grants `credit` more items. */
export interface CreditFrame {
  type: typeof FrameType.CREDIT;
  id: number;
  credit: number;
}

/** Any protocol v1 frame. */
export type Frame = RequestFrame | EventFrame | NextFrame | CompleteFrame | ErrorFrame | CancelFrame | CreditFrame;

/** Keys of the REQUEST/EVENT meta map on the wire. */
export const MetaKey = { HEADERS: 'h', CREDIT: 'n', TIMEOUT: 't', STREAM: 's', OVERFLOW: 'o' } as const;

/** Largest call id; ids are never reused on a connection. */
export const MAX_CALL_ID = Number.MAX_SAFE_INTEGER;

/** Turns a frame into its wire array (before msgpack encoding). */
export function toWire(frame: Frame): unknown[] {
  switch (frame.type) {
    case FrameType.REQUEST: {
      const meta = requestMeta(frame);
      return meta === undefined ? [frame.type, frame.id, frame.pattern, frame.payload] : [frame.type, frame.id, frame.pattern, frame.payload, meta];
    }
    case FrameType.EVENT:
      return frame.headers === undefined ? [frame.type, frame.pattern, frame.payload] : [frame.type, frame.pattern, frame.payload, { [MetaKey.HEADERS]: frame.headers }];
    case FrameType.NEXT:
      return [frame.type, frame.id, frame.value];
    case FrameType.COMPLETE:
      return frame.hasValue ? [frame.type, frame.id, frame.value] : [frame.type, frame.id];
    case FrameType.ERROR:
      return frame.data === undefined ? [frame.type, frame.id, frame.code, frame.message] : [frame.type, frame.id, frame.code, frame.message, frame.data];
    case FrameType.CANCEL:
      return frame.reason === undefined ? [frame.type, frame.id] : [frame.type, frame.id, frame.reason];
    case FrameType.CREDIT:
      return [frame.type, frame.id, frame.credit];
    default:
      return assertNever(frame, 'frame type');
  }
}

/**
 * For the `default` of a switch that covers every case of a union: a compile error when a case is
 * added to the union and not to the switch; a TypeError if a value outside it comes anyway.
 */
export function assertNever(value: never, what: string): never {
  throw new TypeError(`unexpected ${what}: ${JSON.stringify((value as { type?: unknown } | null)?.type ?? value)}`);
}

function requestMeta(frame: RequestFrame): Record<string, unknown> | undefined {
  let meta: Record<string, unknown> | undefined;
  if (frame.headers !== undefined) (meta ??= {})[MetaKey.HEADERS] = frame.headers;
  if (frame.credit !== undefined) (meta ??= {})[MetaKey.CREDIT] = frame.credit;
  if (frame.timeout !== undefined) (meta ??= {})[MetaKey.TIMEOUT] = frame.timeout;
  if (frame.stream) (meta ??= {})[MetaKey.STREAM] = true;
  if (frame.overflow !== undefined) (meta ??= {})[MetaKey.OVERFLOW] = frame.overflow;
  return meta;
}
