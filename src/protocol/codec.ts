import { Decoder, Encoder } from '@msgpack/msgpack';
import { ProtocolViolation } from './errors.js';
import { FrameType, toWire, type Frame } from './frames.js';
import { parseFrame, peekHeader } from './validate.js';

/**
 * Decoder limits. A msgpack header can claim a length far larger than the frame; these caps make
 * such frames fail fast instead of allocating (docs/PROTOCOL.md, "Limits").
 */
export interface DecoderLimits {
  /** Longest string, in bytes. Default 16 MiB. */
  maxStrLength: number;
  /** Longest binary, in bytes. Default 16 MiB. */
  maxBinLength: number;
  /** Most elements in one array. Default 1,000,000. */
  maxArrayLength: number;
  /** Most entries in one map. Default 100,000. */
  maxMapLength: number;
  /** Longest extension payload, in bytes. Default 1 MiB. */
  maxExtLength: number;
}

/** Defaults for {@link DecoderLimits}. */
export const DEFAULT_DECODER_LIMITS: Readonly<DecoderLimits> = Object.freeze({
  maxStrLength: 16 * 1024 * 1024,
  maxBinLength: 16 * 1024 * 1024,
  maxArrayLength: 1_000_000,
  maxMapLength: 100_000,
  maxExtLength: 1024 * 1024,
});

/** Options of {@link FrameCodec}. */
export interface FrameCodecOptions extends Partial<DecoderLimits> {
  /**
   * Deliver msgpack `bin` as Node `Buffer` (a zero-copy view of the received frame) instead of a
   * plain `Uint8Array`. Default: true where `Buffer` exists (Node), false elsewhere.
   */
  binaryAsBuffer?: boolean;
}

type BufferCtor = { from(ab: ArrayBufferLike, offset: number, length: number): Uint8Array };
const NodeBuffer: BufferCtor | undefined = (globalThis as { Buffer?: BufferCtor }).Buffer;

/**
 * Encodes frames to msgpack bytes and decodes bytes back to validated frames.
 * One instance per connection: it reuses its encoder and decoder buffers.
 */
export class FrameCodec {
  private readonly encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true });
  private readonly decoder: Decoder;

  constructor(options: FrameCodecOptions = {}) {
    const limits = { ...DEFAULT_DECODER_LIMITS };
    for (const key of Object.keys(DEFAULT_DECODER_LIMITS) as (keyof DecoderLimits)[]) {
      const v = options[key];
      if (v !== undefined) limits[key] = v;
    }
    this.decoder = new Decoder({ useBigInt64: true, ...limits });
    extendEncoder(this.encoder);
    if ((options.binaryAsBuffer ?? NodeBuffer !== undefined) && NodeBuffer) {
      wrapBinaryAsBuffer(this.decoder, NodeBuffer);
    }
  }

  /** Encodes one frame. Throws if a value in it cannot be encoded (e.g. a function or symbol). */
  encode(frame: Frame): Uint8Array {
    return this.encoder.encode(toWire(frame));
  }

  /**
   * Encodes one frame into the encoder's own buffer and returns a view of it, valid only until the
   * next encode on this codec: copy it before encoding again (no allocation per frame).
   */
  encodeShared(frame: Frame): Uint8Array {
    return this.encoder.encodeSharedRef(toWire(frame));
  }

  /**
   * The bytes that precede a binary value in `[type, id, <bin>]` (NEXT or COMPLETE with a value):
   * array header, type, id and a bin 32 header for `length` bytes. Followed by the value's bytes it
   * is exactly a frame (bin 32 is valid for any length, if not the shortest form), so a large
   * binary can be sent without copying it into an encoder buffer.
   */
  valueFrameHead(type: number, id: number, length: number): Uint8Array {
    const prefix = this.encoder.encode([type, id]); // fixarray(2) type id
    const head = new Uint8Array(prefix.byteLength + 5);
    head.set(prefix);
    head[0] = 0x93; // fixarray(3): the value follows
    const at = prefix.byteLength;
    head[at] = 0xc6; // bin 32
    new DataView(head.buffer, head.byteOffset + at + 1, 4).setUint32(0, length);
    return head;
  }

  /**
   * Decodes and validates one frame. Throws {@link ProtocolViolation}; its `id` names the call
   * when the frame header was readable even though the body was not.
   */
  decode(bytes: Uint8Array): Frame {
    let value: unknown;
    try {
      value = this.decoder.decode(bytes);
    } catch (err) {
      const header = peekHeader(bytes);
      const reason = err instanceof Error ? err.message : String(err);
      throw new ProtocolViolation(`frame is not valid msgpack: ${reason}`, header?.id ?? 0, header?.type);
    }
    return parseFrame(value);
  }
}

/**
 * `@msgpack/msgpack` returns `bin` as a `Uint8Array` view of the input. Node users expect the
 * `Buffer` they sent; wrapping the same memory costs no copy.
 */
function wrapBinaryAsBuffer(decoder: Decoder, B: BufferCtor): void {
  const target = decoder as unknown as { decodeBinary?: (len: number, head: number) => Uint8Array };
  const original = target.decodeBinary;
  if (typeof original !== 'function') return; // library internals changed: keep plain Uint8Array
  target.decodeBinary = function (this: unknown, len: number, head: number): Uint8Array {
    const view = original.call(this, len, head);
    return B.from(view.buffer, view.byteOffset, view.byteLength);
  };
}

const INT64_MIN = -(2n ** 63n);
const UINT64_END = 2n ** 64n;

/**
 * `@msgpack/msgpack` 3.x writes a `Map` or `Set` as an empty map and wraps bigints outside 64 bits
 * silently: data loss with no error. Fix both on this encoder instance: a Map encodes as a msgpack
 * map (keys as the object keys `Object.fromEntries` gives), a Set as an array, and an out-of-range
 * bigint throws (the call then fails with INTERNAL).
 */
function extendEncoder(encoder: Encoder): void {
  type Internals = {
    encodeMap?: (object: object, depth: number) => void;
    encodeArray?: (object: unknown[], depth: number) => void;
    encodeBigInt64?: (object: bigint) => void;
  };
  const target = encoder as unknown as Internals;
  const { encodeMap, encodeArray, encodeBigInt64 } = target;
  if (typeof encodeMap !== 'function' || typeof encodeArray !== 'function' || typeof encodeBigInt64 !== 'function') return;
  target.encodeMap = function (this: unknown, object: object, depth: number): void {
    if (object instanceof Map) return encodeMap.call(this, Object.fromEntries(object), depth);
    if (object instanceof Set) return encodeArray.call(this, [...(object as Set<unknown>)], depth);
    return encodeMap.call(this, object, depth);
  };
  target.encodeBigInt64 = function (this: unknown, object: bigint): void {
    if (object < INT64_MIN || object >= UINT64_END) {
      throw new RangeError(`bigint ${object} does not fit in 64 bits`);
    }
    encodeBigInt64.call(this, object);
  };
}

/**
 * Turns encoded NEXT bytes `[3, id, value]` into COMPLETE with the value, `[4, id, value]`, in
 * place: both are a fixarray of 3 whose second byte is the frame type as a positive fixint.
 * Returns false (and changes nothing) for bytes of any other shape.
 */
export function nextToCompleteInPlace(frame: Uint8Array): boolean {
  if (frame[0] !== 0x93 || frame[1] !== FrameType.NEXT) return false;
  frame[1] = FrameType.COMPLETE;
  return true;
}
