/**
 * Patches of `@msgpack/msgpack` internals (not its public API), checked against 3.1.x: the
 * package is pinned to `~3.1` in package.json, and `test/unit/codec-guard.spec.ts` fails when the
 * internals these read change shape. Each patch checks the shape first and, when it does not
 * match, changes nothing (the codec then falls back: depth checked after decoding, plain
 * `Uint8Array` binaries, the library's own Map/Set/bigint handling).
 *
 * - `guardDecoder`: `maxDepth` and the declared-size check inside the Decoder's
 *   `pushArrayState` / `pushMapState`, before anything is allocated;
 * - `wrapBinaryAsBuffer`: `decodeBinary` returns a Node `Buffer` over the same memory;
 * - `extendEncoder`: `encodeMap` / `encodeBigInt64`, so a Map, a Set and an out-of-range bigint
 *   are not silently lost.
 */
import { DecodeError, type Decoder, type Encoder } from '@msgpack/msgpack';

/** Node's `Buffer.from(arrayBuffer, offset, length)`, where there is one. */
export type BufferCtor = { from(ab: ArrayBufferLike, offset: number, length: number): Uint8Array };

/** The message of a frame deeper than `maxDepth`; `depth` is the depth of its deepest value. */
export function depthMessage(depth: number, maxDepth: number): string {
  return `Max depth exceeded: nesting depth (${depth}) > maxDepth (${maxDepth})`;
}

/** What guardDecoder needs of `@msgpack/msgpack` 3.x's Decoder (not public API). */
interface DecoderInternals {
  pushArrayState?: (size: number) => void;
  pushMapState?: (size: number) => void;
  /** The StackPool of arrays and maps being decoded. */
  stack?: { stack?: unknown; stackHeadPosition?: unknown };
  view?: unknown;
  pos?: unknown;
  maxArrayLength?: unknown;
  maxMapLength?: unknown;
}

/** One entry of the StackPool: an array or map being decoded. */
interface StackState {
  type?: unknown;
  size?: unknown;
  position?: unknown;
  readCount?: unknown;
}

type GuardedDecoder = Required<DecoderInternals> & {
  stack: { stack: StackState[]; stackHeadPosition: number };
  view: DataView;
  pos: number;
  maxArrayLength: number;
  maxMapLength: number;
};

/**
 * Declared sizes up to this are not checked against the bytes left (the decoder would allocate at
 * most this many slots per level, maxDepth levels at most): the check costs nothing on the arrays
 * and maps of ordinary frames, and such a frame still fails, later, as truncated.
 */
const SMALL_CONTAINER = 64;
/** Enclosing containers looked at, at most, when checking a declared size (more only makes the check weaker, never wrong). */
const MAX_WALK = 256;

/**
 * Builds the `maxDepth` limit and the declared-size check (see {@link DecoderLimits}) into a
 * `@msgpack/msgpack` Decoder, so that both fail a frame when its header is read, before anything is
 * allocated: the decoder calls `pushArrayState` / `pushMapState` for every non-empty array and map
 * it meets (after checking `maxArrayLength` / `maxMapLength`), with its stack of open containers in
 * `stack`. Returns false, changing nothing, when the library internals are not as expected; the
 * caller then checks depth after decoding. How the guards behave on the installed library is
 * checked by test/unit/codec-guard.spec.ts; `@msgpack/msgpack` is pinned to the patch releases of
 * the minor version those tests ran against (`~3.1`), since this reaches into its internals.
 */
export function guardDecoder(decoder: object, maxDepth: number): boolean {
  if (!internalsLookRight(decoder)) return false;
  install(decoder, maxDepth);
  return true;
}

function internalsLookRight(decoder: object): decoder is GuardedDecoder {
  const d = decoder as DecoderInternals;
  const pool = d.stack;
  return (
    typeof d.pushArrayState === 'function' &&
    typeof d.pushMapState === 'function' &&
    typeof pool === 'object' &&
    pool !== null &&
    Array.isArray(pool.stack) &&
    typeof pool.stackHeadPosition === 'number' &&
    d.view instanceof DataView &&
    typeof d.pos === 'number' &&
    typeof d.maxArrayLength === 'number' &&
    typeof d.maxMapLength === 'number'
  );
}

function install(d: GuardedDecoder, maxDepth: number): void {
  const { pushArrayState, pushMapState } = d;
  // Hot path: one comparison per array or map. The new container is at depth stackHeadPosition + 2
  // (stackHeadPosition is -1 for an empty stack), its elements one deeper.
  d.pushArrayState = function (this: GuardedDecoder, size: number): void {
    if (this.stack.stackHeadPosition + 3 > maxDepth) throw new DecodeError(depthMessage(this.stack.stackHeadPosition + 3, maxDepth));
    if (size > SMALL_CONTAINER && size <= this.maxArrayLength) checkDeclaredSize(this, size, 1, 'array');
    pushArrayState.call(this, size);
  };
  d.pushMapState = function (this: GuardedDecoder, size: number): void {
    if (this.stack.stackHeadPosition + 3 > maxDepth) throw new DecodeError(depthMessage(this.stack.stackHeadPosition + 3, maxDepth));
    if (size > SMALL_CONTAINER && size <= this.maxMapLength) checkDeclaredSize(this, size, 2, 'map');
    pushMapState.call(this, size);
  };
}

/**
 * Throws when the bytes left cannot hold the `size` elements of a new array or map (at least
 * `bytesPerElement` each) and what the open containers around it still need.
 */
function checkDeclaredSize(d: GuardedDecoder, size: number, bytesPerElement: number, kind: string): void {
  const left = d.view.byteLength - d.pos;
  let need = size * bytesPerElement;
  const states = d.stack.stack;
  for (let i = d.stack.stackHeadPosition, n = 0; i >= 0 && n < MAX_WALK && need <= left; i--, n++) need += stillDue(states[i]);
  if (need > left) {
    throw new DecodeError(`Insufficient data: ${kind} length (${size}) and the values still due around it need at least ${need} bytes, ${left} left`);
  }
}

/**
 * Bytes an open container still needs after the value being decoded in it (at least one per
 * element, two per map entry). A state of an unknown shape counts 0: the check gets weaker, not wrong.
 */
function stillDue(state: StackState | undefined): number {
  if (state === undefined || typeof state.size !== 'number') return 0;
  if (state.type === 'array' && typeof state.position === 'number') return Math.max(0, state.size - state.position - 1);
  if (typeof state.readCount !== 'number') return 0;
  if (state.type === 'map_key') return Math.max(0, 2 * (state.size - state.readCount) - 1);
  if (state.type === 'map_value') return Math.max(0, 2 * (state.size - state.readCount - 1));
  return 0;
}

/**
 * `@msgpack/msgpack` returns `bin` as a `Uint8Array` view of the input. Node users expect the
 * `Buffer` they sent; wrapping the same memory costs no copy.
 */
export function wrapBinaryAsBuffer(decoder: Decoder, B: BufferCtor): void {
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
export function extendEncoder(encoder: Encoder): void {
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
