/**
 * An upper estimate of the JavaScript memory a msgpack value takes once decoded, computed from its
 * bytes without decoding them (docs/PROTOCOL.md, "Limits": the cost table).
 *
 * Why: every msgpack value needs at least one byte, but some cost a hundred or a thousand times
 * that once decoded. An empty map (`0x80`, one byte) becomes an object of about 64 bytes; a map
 * whose key is a small integer (`{1023: 0}`, five bytes) makes V8 allocate a backing store for
 * 1,024 elements (8 KiB). A frame within every length limit can therefore decode into gigabytes.
 * The receiver estimates first and refuses a frame whose estimate does not fit its budget
 * (`maxInboundBytes`), before anything is allocated.
 *
 * The estimate follows V8 (64-bit) as `@msgpack/msgpack` builds values: it is meant to be at or
 * above what decoding really allocates for the shapes an attacker would pick (checked by
 * test/unit/decoded-size.spec.ts against measured heap growth), and within a few times of it for
 * ordinary data (records with repeated keys, arrays of numbers or strings).
 */

import { SLOT, ARRAY, STORE, MAP, BOXED, BIGINT, BINARY, EXTENSION, TOO_DEEP } from './decoded-size-costs.js';
import { MapKeyCosts, stringCost } from './decoded-size-keys.js';

export { TOO_DEEP } from './decoded-size-costs.js';

/** Flags of an open container on the scan stack. */
const IS_MAP = 1;
const EXPECT_KEY = 2;

/**
 * Estimates decoded sizes: walks the msgpack headers of a frame, charging each value its cost and
 * each map key what {@link MapKeyCosts} says it costs. It reuses its stack and its key table (no
 * allocation per frame), and a scan runs to its end synchronously, so one instance serves every
 * connection of a process ({@link sharedEstimator}): its tables cost no memory per connection.
 */
export class DecodedSizeEstimator {
  /** Values still due in each open container (a map counts keys and values). */
  private remaining = new Float64Array(16);
  private flags = new Uint8Array(16);
  /** What the keys of the open maps cost, and the keys seen so far in the frame. */
  private readonly keys = new MapKeyCosts();

  /** The `maxDepth` of the scan under way. */
  private maxDepth = Infinity;

  constructor(
    /** Deepest nesting allowed by default, counted as `DecoderLimits.maxDepth` counts it; Infinity: no limit. */
    private readonly defaultMaxDepth: number = Infinity,
  ) {}

  /** After {@link estimate} returned {@link TOO_DEEP}: the depth of the elements that were too deep. */
  deepest = 0;

  /**
   * The estimated decoded size of the one msgpack value in `bytes`, in bytes. Stops as soon as
   * the estimate exceeds `limit` (and returns a number above it), or returns {@link TOO_DEEP}
   * for a value nested deeper than `maxDepth`. Malformed or truncated input is scanned as far as
   * it goes (the decoder reports what is wrong with it); the scan never throws, and never looks
   * past the first complete value (the decoder refuses trailing bytes).
   */
  estimate(bytes: Uint8Array, limit: number = Infinity, maxDepth: number = this.defaultMaxDepth): number {
    this.maxDepth = maxDepth;
    const cost = this.scan(bytes, limit);
    this.shrink();
    return cost;
  }

  private scan(bytes: Uint8Array, limit: number): number {
    const end = bytes.byteLength;
    const keys = this.keys;
    keys.newFrame();
    let depth = 0;
    let cost = SLOT;
    let pos = 0;
    while (pos < end) {
      if (cost > limit) return cost;
      let key = false;
      let top = depth - 1;
      if (top >= 0) {
        const f = this.flags[top]!;
        key = (f & EXPECT_KEY) !== 0;
        if (f & IS_MAP) this.flags[top] = f ^ EXPECT_KEY;
      }
      const head = bytes[pos]!;
      let size = 0; // elements of a new container
      let isMap = false;
      let next = pos + 1;
      if (head <= 0x7f) {
        if (key) cost += keys.indexKey(top, head);
      } else if (head <= 0x8f) {
        size = (head - 0x80) * 2;
        isMap = true;
        cost += MAP;
      } else if (head <= 0x9f) {
        size = head - 0x90;
        cost += size > 0 ? ARRAY + STORE : ARRAY;
      } else if (head <= 0xbf) {
        next += head - 0xa0;
        cost += key ? keys.stringKey(bytes, pos + 1, head - 0xa0, top) : stringCost(Math.min(head - 0xa0, end - pos - 1));
      } else if (head >= 0xe0) {
        if (key) cost += keys.namedKey(top, true, 0); // a negative key is a named property
      } else {
        switch (head) {
          case 0xc0:
          case 0xc2:
          case 0xc3:
            if (key) cost += keys.namedKey(top, true, 0);
            break;
          case 0xc4:
          case 0xc5:
          case 0xc6: {
            const w = 1 << (head - 0xc4);
            next += w + readLength(bytes, pos + 1, w, end);
            cost += BINARY;
            break;
          }
          case 0xc7:
          case 0xc8:
          case 0xc9: {
            const w = 1 << (head - 0xc7);
            const n = readLength(bytes, pos + 1, w, end);
            next += w + 1 + n;
            cost += EXTENSION + Math.min(n, Math.max(0, end - pos - 2 - w));
            break;
          }
          case 0xca:
          case 0xcb: {
            next += head === 0xca ? 4 : 8;
            if (!key) {
              cost += BOXED;
              break;
            }
            // The decoder keeps number keys as numbers: 1023.0 is the integer key 1023.
            const v = next > end ? NaN : readFloat(bytes, pos + 1, head === 0xca ? 4 : 8);
            cost += Number.isInteger(v) && v >= 0 ? keys.indexKey(top, v) : keys.namedKey(top, true, 0);
            break;
          }
          case 0xcc:
          case 0xcd:
          case 0xce: {
            const w = 1 << (head - 0xcc);
            const v = readLength(bytes, pos + 1, w, end);
            next += w;
            if (key) cost += keys.indexKey(top, v);
            else if (v > 0x7fffffff) cost += BOXED;
            break;
          }
          case 0xcf:
          case 0xd3:
            next += 8;
            cost += BIGINT;
            break;
          case 0xd0:
          case 0xd1:
          case 0xd2: {
            const w = 1 << (head - 0xd0);
            const v = readSigned(bytes, pos + 1, w, end);
            next += w;
            if (key) cost += v >= 0 ? keys.indexKey(top, v) : keys.namedKey(top, true, 0);
            break;
          }
          case 0xd4:
          case 0xd5:
          case 0xd6:
          case 0xd7:
          case 0xd8: {
            const n = 1 << (head - 0xd4);
            next += 1 + n;
            cost += EXTENSION + Math.min(n, Math.max(0, end - pos - 2));
            break;
          }
          case 0xd9:
          case 0xda:
          case 0xdb: {
            const w = 1 << (head - 0xd9);
            const n = readLength(bytes, pos + 1, w, end);
            next += w + n;
            // A declared length beyond the frame costs no more than the bytes there (the decoder refuses it).
            cost += key ? keys.stringKey(bytes, pos + 1 + w, n, top) : stringCost(Math.min(n, Math.max(0, end - pos - 1 - w)));
            break;
          }
          case 0xdc:
          case 0xdd: {
            const w = head === 0xdc ? 2 : 4;
            size = readLength(bytes, pos + 1, w, end);
            next += w;
            cost += size > 0 ? ARRAY + STORE : ARRAY;
            break;
          }
          case 0xde:
          case 0xdf: {
            const w = head === 0xde ? 2 : 4;
            size = readLength(bytes, pos + 1, w, end) * 2;
            next += w;
            isMap = true;
            cost += MAP;
            break;
          }
          default:
            return cost; // 0xc1 is never used: the decoder refuses the frame
        }
      }
      pos = next;
      if (size > 0) {
        // A new container: its elements (at depth + 2, the frame's own being at 2) are due next.
        if (depth + 2 > this.maxDepth) {
          this.deepest = depth + 2;
          return TOO_DEEP;
        }
        // Each element takes at least one byte: a declared size beyond the bytes left is a lie
        // (the decoder refuses the frame), and costs no more than the bytes that are there.
        cost += Math.min(isMap ? size / 2 : size, end - pos) * SLOT;
        this.push(depth++, size, isMap);
        continue;
      }
      // A complete value: it fills one place in each container it completes.
      while (depth > 0) {
        top = depth - 1;
        const left = this.remaining[top]! - 1;
        if (left > 0) {
          this.remaining[top] = left;
          break;
        }
        depth--; // that container is complete too: it fills a place in its parent
      }
      if (depth === 0) return cost;
    }
    return cost;
  }

  /** After a frame that grew the stack far: give the memory back (a deep frame must not keep it for the connection's life). */
  private shrink(): void {
    this.keys.shrink();
    if (this.remaining.length <= 1024) return;
    this.remaining = new Float64Array(16);
    this.flags = new Uint8Array(16);
  }

  private push(at: number, size: number, isMap: boolean): void {
    if (at >= this.remaining.length) this.grow();
    this.remaining[at] = size;
    this.flags[at] = isMap ? IS_MAP | EXPECT_KEY : 0;
    this.keys.open(at);
  }

  private grow(): void {
    const n = this.remaining.length * 2;
    const remaining = new Float64Array(n);
    remaining.set(this.remaining);
    const flags = new Uint8Array(n);
    flags.set(this.flags);
    this.remaining = remaining;
    this.flags = flags;
  }
}

/** The float 32 or 64 at `at` (a rare map key: no view is kept). */
function readFloat(bytes: Uint8Array, at: number, size: 4 | 8): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset + at, size);
  return size === 4 ? v.getFloat32(0) : v.getFloat64(0);
}

/** An unsigned big-endian number of `w` (1, 2 or 4) bytes at `at`; beyond `end`: larger than anything left. */
function readLength(bytes: Uint8Array, at: number, w: number, end: number): number {
  if (at + w > end) return end;
  if (w === 1) return bytes[at]!;
  if (w === 2) return (bytes[at]! << 8) | bytes[at + 1]!;
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** A signed big-endian number of `w` (1, 2 or 4) bytes at `at` (-1 when truncated). */
function readSigned(bytes: Uint8Array, at: number, w: number, end: number): number {
  if (at + w > end) return -1;
  const u = readLength(bytes, at, w, end);
  if (w === 1) return (u << 24) >> 24;
  if (w === 2) return (u << 16) >> 16;
  return u | 0;
}

/** The estimator every codec of this process uses (a scan never yields, so they cannot interleave). */
export const sharedEstimator = new DecodedSizeEstimator();
