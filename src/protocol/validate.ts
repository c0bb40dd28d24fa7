import { ExtData } from '@msgpack/msgpack';
import { ProtocolViolation, WsMsgpackErrorCode } from './errors.js';
import {
  FrameType,
  MAX_CALL_ID,
  MetaKey,
  OVERFLOW_STRATEGIES,
  type EventFrame,
  type Frame,
  type WsMsgpackCallHeaders,
  type OverflowStrategy,
  type RequestFrame,
} from './frames.js';

const isCallId = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0 && v <= MAX_CALL_ID;

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_CALL_ID;

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Date) && !(v instanceof ExtData);

const isPattern = (v: unknown): boolean => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || isMap(v);

/**
 * Checks a decoded msgpack value against the protocol v1 frame grammar and returns the typed
 * frame. Throws {@link ProtocolViolation} (with the call id when one was readable) otherwise.
 * Elements past the ones a frame type defines are ignored, so later minor versions can append.
 */
export function parseFrame(value: unknown): Frame {
  if (!Array.isArray(value) || value.length < 2) {
    throw new ProtocolViolation('frame must be a msgpack array of at least 2 elements');
  }
  const type: unknown = value[0];
  if (type === FrameType.EVENT) return parseEvent(value);
  const id: unknown = value[1];
  if (!isCallId(id)) {
    // id 0 is allowed for connection-level ERROR frames only.
    if (type === FrameType.ERROR && id === 0) return parseError(value, 0);
    throw new ProtocolViolation(`frame type ${String(type)}: call id must be an integer in 1..2^53-1`, 0, numberOr(type));
  }
  switch (type) {
    case FrameType.REQUEST:
      return parseRequest(value, id);
    case FrameType.NEXT:
      need(value, 3, 'NEXT', id, type);
      return { type, id, value: value[2] };
    case FrameType.COMPLETE:
      return value.length >= 3 ? { type, id, hasValue: true, value: value[2] } : { type, id, hasValue: false };
    case FrameType.ERROR:
      return parseError(value, id);
    case FrameType.CANCEL:
      // A third element is the reason; only DEADLINE_EXCEEDED means anything (else a plain cancel).
      return value[2] === WsMsgpackErrorCode.DEADLINE_EXCEEDED ? { type, id, reason: WsMsgpackErrorCode.DEADLINE_EXCEEDED } : { type, id };
    case FrameType.CREDIT: {
      need(value, 3, 'CREDIT', id, type);
      const credit: unknown = value[2];
      if (!isCount(credit) || credit === 0) throw new ProtocolViolation('CREDIT: credit must be a positive integer', id, type);
      return { type, id, credit };
    }
    default:
      throw new ProtocolViolation(`unknown frame type ${typeof type === 'string' ? JSON.stringify(type) : String(type)}`, id, numberOr(type));
  }
}

function parseRequest(value: unknown[], id: number): Frame {
  need(value, 4, 'REQUEST', id, FrameType.REQUEST);
  const pattern: unknown = value[2];
  if (!isPattern(pattern)) throw new ProtocolViolation('REQUEST: pattern must be a string, number or map', id, FrameType.REQUEST);
  const meta = readMeta(value[4], 'REQUEST', id);
  const credit = meta[MetaKey.CREDIT];
  if (credit !== undefined && !isCount(credit)) throw new ProtocolViolation('REQUEST: meta.n (credit) must be a non-negative integer', id, FrameType.REQUEST);
  const timeout = meta[MetaKey.TIMEOUT];
  if (timeout !== undefined && !(isCount(timeout) && timeout > 0))
    throw new ProtocolViolation('REQUEST: meta.t (timeout) must be a positive integer of milliseconds', id, FrameType.REQUEST);
  const stream = meta[MetaKey.STREAM];
  if (stream !== undefined && typeof stream !== 'boolean') throw new ProtocolViolation('REQUEST: meta.s (stream) must be a boolean', id, FrameType.REQUEST);
  const overflow = meta[MetaKey.OVERFLOW];
  if (overflow !== undefined && overflow !== null && !OVERFLOW_STRATEGIES.includes(overflow as OverflowStrategy)) {
    throw new ProtocolViolation(`REQUEST: meta.o (overflow) must be one of ${OVERFLOW_STRATEGIES.map((o) => `"${o}"`).join(', ')}`, id, FrameType.REQUEST);
  }
  const frame: RequestFrame = { type: FrameType.REQUEST, id, pattern, payload: stream === true ? undefined : value[3], stream: stream === true };
  const headers = readHeaders(meta, 'REQUEST', id);
  if (headers !== undefined) frame.headers = headers;
  if (credit !== undefined) frame.credit = credit;
  if (timeout !== undefined) frame.timeout = timeout;
  if (overflow !== undefined && overflow !== null) frame.overflow = overflow as OverflowStrategy;
  return frame;
}

function parseEvent(value: unknown[]): Frame {
  need(value, 3, 'EVENT', 0, FrameType.EVENT);
  const pattern: unknown = value[1];
  if (!isPattern(pattern)) throw new ProtocolViolation('EVENT: pattern must be a string, number or map', 0, FrameType.EVENT);
  const meta = readMeta(value[3], 'EVENT', 0);
  const frame: EventFrame = { type: FrameType.EVENT, pattern, payload: value[2] };
  const headers = readHeaders(meta, 'EVENT', 0);
  if (headers !== undefined) frame.headers = headers;
  return frame;
}

function parseError(value: unknown[], id: number): Frame {
  need(value, 4, 'ERROR', id, FrameType.ERROR);
  const code: unknown = value[2];
  const message: unknown = value[3];
  if (typeof code !== 'string' || typeof message !== 'string') {
    throw new ProtocolViolation('ERROR: code and message must be strings', id, FrameType.ERROR);
  }
  return value.length >= 5 ? { type: FrameType.ERROR, id, code, message, data: value[4] } : { type: FrameType.ERROR, id, code, message };
}

function readMeta(meta: unknown, kind: string, id: number): Record<string, unknown> {
  if (meta === undefined || meta === null) return {};
  if (!isMap(meta)) throw new ProtocolViolation(`${kind}: meta must be a map`, id, kind === 'EVENT' ? FrameType.EVENT : FrameType.REQUEST);
  return meta;
}

function readHeaders(meta: Record<string, unknown>, kind: string, id: number): WsMsgpackCallHeaders | undefined {
  const headers = meta[MetaKey.HEADERS];
  if (headers === undefined || headers === null) return undefined;
  if (!isMap(headers)) throw new ProtocolViolation(`${kind}: meta.h (headers) must be a map`, id, kind === 'EVENT' ? FrameType.EVENT : FrameType.REQUEST);
  return headers;
}

function need(value: unknown[], n: number, kind: string, id: number, type: number): void {
  if (value.length < n) throw new ProtocolViolation(`${kind}: expected at least ${n} elements, got ${value.length}`, id, type);
}

function numberOr(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

/**
 * Reads the frame type and call id from the first bytes of a frame without decoding the rest,
 * so a frame whose body is truncated, has trailing bytes or breaks a decoder limit can still be
 * answered with an ERROR for its call. Returns undefined when the header itself is unreadable.
 *
 * It reads the id encodings a decodable frame accepts, no more, so whether a bad frame is blamed on
 * a call does not depend on whether its body decodes (docs/PROTOCOL.md, "Bad input"): an array of 2
 * or more elements whose first element is a number and whose second is an integer 1..2^53-1, both in
 * a format the decoder returns as a number (fixint, uint/int 8/16/32, float 32, float 64). 64-bit
 * integer formats are never read: the decoder returns them as bigint, which no call id accepts.
 * An EVENT (type 2) has no call id: its header gives id 0.
 */
export function peekHeader(bytes: Uint8Array): { type: number; id: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const b0 = bytes[0];
  let pos: number;
  if (b0 === undefined) return undefined;
  if (b0 >= 0x92 && b0 <= 0x9f) {
    pos = 1; // fixarray of 2..15
  } else if (b0 === 0xdc && bytes.length >= 3 && view.getUint16(1) >= 2) {
    pos = 3;
  } else if (b0 === 0xdd && bytes.length >= 5 && view.getUint32(1) >= 2) {
    pos = 5;
  } else {
    return undefined;
  }
  const type = peekNumber(bytes, view, pos);
  if (type === undefined) return undefined;
  if (type.value === FrameType.EVENT) return { type: type.value, id: 0 }; // events carry no call id
  const id = peekNumber(bytes, view, type.end);
  return id !== undefined && isCallId(id.value) ? { type: type.value, id: id.value } : undefined;
}

/**
 * The msgpack number at `pos`, in the formats `@msgpack/msgpack` decodes as a JavaScript number;
 * undefined for anything else (other types, uint 64 / int 64, too few bytes).
 */
function peekNumber(bytes: Uint8Array, view: DataView, pos: number): { value: number; end: number } | undefined {
  const b = bytes[pos];
  if (b === undefined) return undefined;
  if (b <= 0x7f) return { value: b, end: pos + 1 }; // positive fixint
  if (b >= 0xe0) return { value: b - 0x100, end: pos + 1 }; // negative fixint
  const width = NUMBER_WIDTH[b];
  if (width === undefined || pos + 1 + width > bytes.length) return undefined;
  const at = pos + 1;
  const value =
    b === 0xcc
      ? view.getUint8(at)
      : b === 0xcd
        ? view.getUint16(at)
        : b === 0xce
          ? view.getUint32(at)
          : b === 0xd0
            ? view.getInt8(at)
            : b === 0xd1
              ? view.getInt16(at)
              : b === 0xd2
                ? view.getInt32(at)
                : b === 0xca
                  ? view.getFloat32(at)
                  : view.getFloat64(at); // 0xcb
  return { value, end: at + width };
}

/** Payload bytes of the msgpack number formats {@link peekNumber} reads (fixints aside). */
const NUMBER_WIDTH: Readonly<Record<number, number>> = { 0xcc: 1, 0xcd: 2, 0xce: 4, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xca: 4, 0xcb: 8 };
