import { DecodeError, Decoder, Encoder, ExtData } from '@msgpack/msgpack';
import { depthMessage, extendEncoder, guardDecoder, wrapBinaryAsBuffer, type BufferCtor } from '../patches/msgpack.js';
import { TOO_DEEP } from './decoded-size-costs.js';
import type { DecodedSizeEstimator } from './decoded-size.js';
import { extensionCodecOf, type ExtensionOptions } from './extensions.js';
import { ProtocolViolation, WsMsgpackErrorCode } from './errors.js';
import { FrameType, toWire, type Frame } from './frames.js';
import { parseFrame, peekHeader } from './validate.js';

/**
 * Decoder limits. A msgpack header can claim a length far larger than the frame; these caps make
 * such frames fail fast instead of allocating (docs/PROTOCOL.md, "Limits").
 *
 * Beyond these, an array or map header of more than 64 elements may not declare more than the rest
 * of the frame can hold (each element takes at least one byte, each map entry two, counting the
 * elements still due in the arrays and maps around it): the decoder allocates an array's slots
 * when it reads the header, so without this check a 5 KB frame of nested `array 32` headers each
 * claiming 1,000,000 elements allocated 8 MB per level and exhausted the heap.
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
  /**
   * Deepest nesting in a frame, counted as the msgpack encoder counts it: the frame array is at
   * depth 1, its elements (a payload, the meta map) at depth 2, and each array or map puts its
   * elements one deeper. A frame with a value deeper than this fails to decode (a protocol error
   * for its call), before the deeper arrays and maps are allocated. Default 100, the encoder's own
   * `maxDepth`: a value this side accepts can be sent back in the same place of a frame (an echo
   * handler), and code that walks decoded values recursively (`JSON.stringify` of a pattern, user
   * code, the encoder) cannot overflow the stack. At least 2 (a frame's own elements are at depth
   * 2); `Infinity` disables the limit.
   */
  maxDepth: number;
}

/** Defaults for {@link DecoderLimits}. */
export const DEFAULT_DECODER_LIMITS: Readonly<DecoderLimits> = Object.freeze({
  maxStrLength: 16 * 1024 * 1024,
  maxBinLength: 16 * 1024 * 1024,
  maxArrayLength: 1_000_000,
  maxMapLength: 100_000,
  maxExtLength: 1024 * 1024,
  maxDepth: 100,
});

/** Options of {@link FrameCodec}. */
export interface FrameCodecOptions extends Partial<DecoderLimits>, ExtensionOptions {
  /**
   * Deliver msgpack `bin` as Node `Buffer` (a zero-copy view of the received frame) instead of a
   * plain `Uint8Array`. Default: true where `Buffer` exists (Node), false elsewhere.
   */
  binaryAsBuffer?: boolean;
  /**
   * @internal What estimates each frame's decoded size before it is decoded (the server and the
   * Nest client pass `sharedEstimator`). Without it a frame is charged its own bytes only, and the
   * decoder's limits alone bound it (the browser client: its bundle stays small).
   */
  estimator?: DecodedSizeEstimator;
}

const NodeBuffer: BufferCtor | undefined = (globalThis as { Buffer?: BufferCtor }).Buffer;

/**
 * Encodes frames to msgpack bytes and decodes bytes back to validated frames.
 * One instance per connection: it reuses its encoder and decoder buffers.
 */
export class FrameCodec {
  private readonly encoder: Encoder;
  private readonly decoder: Decoder;
  /** The depth check, when {@link guardDecoder} could not build it into the decoder. */
  private readonly checkDecoded: ((value: unknown) => void) | undefined;
  private readonly maxDepth: number;
  private readonly estimator: DecodedSizeEstimator | undefined;
  /**
   * What the frame {@link decode} returned last takes, in bytes: its own bytes plus what decoding
   * it allocated, as docs/PROTOCOL.md "Limits" estimates it. What the receiver charges while it
   * holds the frame's values.
   */
  lastCost = 0;

  constructor(options: FrameCodecOptions = {}) {
    const limits = { ...DEFAULT_DECODER_LIMITS };
    for (const key of Object.keys(DEFAULT_DECODER_LIMITS) as (keyof DecoderLimits)[]) {
      const v = options[key];
      if (v !== undefined) limits[key] = v;
    }
    const { maxDepth, ...lengths } = limits;
    this.maxDepth = maxDepth;
    this.estimator = options.estimator;
    const extensionCodec = extensionCodecOf(options);
    this.encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true, extensionCodec });
    this.decoder = new Decoder({ useBigInt64: true, extensionCodec, ...lengths });
    if (!guardDecoder(this.decoder, maxDepth)) {
      // Library internals changed: check the depth of each decoded value instead (after the fact).
      this.checkDecoded = (value) => checkDepth(value, maxDepth);
    }
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
   * Decodes and validates one frame. Throws {@link ProtocolViolation}; its `id` names the call
   * when the frame header was readable even though the body was not.
   *
   * `budget`: the most memory the frame may take once decoded (its bytes, and the values decoding
   * allocates, as docs/PROTOCOL.md "Limits" estimates them). The estimate is made from the bytes
   * before anything is decoded; a frame above the budget is refused with a RESOURCE_EXHAUSTED
   * violation naming `budgetName`, and nothing of it is allocated.
   */
  decode(bytes: Uint8Array, budget: number = Infinity, budgetName = 'maxInboundBytes'): Frame {
    let cost = this.estimator ? this.estimator.estimate(bytes, budget, this.maxDepth) : 0;
    if (cost === TOO_DEEP) {
      // The guarded decoder refuses the frame at that point or earlier (naming the first thing
      // wrong with it); everything before that point was estimated. Unguarded, refuse it here.
      if (this.checkDecoded) {
        const header = peekHeader(bytes);
        throw new ProtocolViolation(`frame is not valid msgpack: ${depthMessage(this.estimator!.deepest, this.maxDepth)}`, header?.id ?? 0, header?.type);
      }
      cost = 0;
    }
    // The frame's own bytes count too: binaries and extensions decode into views of them.
    cost += bytes.byteLength;
    if (cost > budget && !endsSomething(bytes, cost)) {
      const header = peekHeader(bytes);
      throw new ProtocolViolation(
        `a frame of ${bytes.byteLength} bytes would take about ${formatBytes(cost)} once decoded, more than the ${formatBytes(budget)} this side can still take (${budgetName})`,
        header?.id ?? 0,
        header?.type,
        WsMsgpackErrorCode.RESOURCE_EXHAUSTED,
      );
    }
    this.lastCost = cost;
    let value: unknown;
    try {
      value = this.decoder.decode(bytes);
      this.checkDecoded?.(value);
    } catch (err) {
      this.releaseFailedFrame();
      const header = peekHeader(bytes);
      const reason = err instanceof Error ? err.message : String(err);
      throw new ProtocolViolation(`frame is not valid msgpack: ${reason}`, header?.id ?? 0, header?.type);
    }
    return parseFrame(value);
  }

  /**
   * A decode that fails leaves the decoder holding the frame and the arrays and maps it had begun;
   * decoding one byte resets it, so an idle connection does not keep a bad frame's memory.
   */
  private releaseFailedFrame(): void {
    try {
      this.decoder.decode(NIL);
    } catch {
      // cannot fail; the next decode resets the decoder anyway
    }
  }
}

const NIL = Uint8Array.of(0xc0);

/** Small frames that end or pace a call are never refused for the budget: they free memory, not take it. */
const SMALL_FRAME_COST = 4096;

function endsSomething(bytes: Uint8Array, cost: number): boolean {
  if (cost > SMALL_FRAME_COST) return false;
  const t = peekHeader(bytes)?.type;
  return t === FrameType.COMPLETE || t === FrameType.ERROR || t === FrameType.CANCEL || t === FrameType.CREDIT;
}

/** `n` bytes for a message: "512 bytes", "3.2 MiB". */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * The depth limit checked on a decoded value (the fallback of {@link guardDecoder}): throws the
 * same error the guard throws while decoding. Iterative, so any depth is safe to check.
 */
export function checkDepth(value: unknown, maxDepth: number): void {
  if (!(maxDepth < Infinity)) return;
  const stack: { v: unknown; depth: number }[] = [{ v: value, depth: 1 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const children = containerChildren(top.v);
    if (children === undefined || children.length === 0) continue;
    const depth = top.depth + 1;
    if (depth > maxDepth) throw new DecodeError(depthMessage(depth, maxDepth));
    for (const v of children) stack.push({ v, depth });
  }
}

/** The elements of a decoded array or map; undefined for any other value. */
function containerChildren(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (typeof v !== 'object' || v === null || ArrayBuffer.isView(v) || v instanceof Date || v instanceof ExtData) return undefined;
  return Object.values(v);
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
