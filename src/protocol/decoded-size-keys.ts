/**
 * What the keys of a decoded map cost, for the decoded-size estimate (decoded-size.ts;
 * docs/PROTOCOL.md, "Limits": the cost table). V8 keeps a plain object's integer keys in an
 * elements store, or in a dictionary when that store would be far too large, and its named keys as
 * fast properties (a new string and hidden class for each key not seen before), or in a dictionary
 * past {@link MAX_FAST_PROPERTIES}. A key's cost therefore depends on the keys before it: in its
 * map (the store's capacity, how many keys of each kind) and in the frame (which key bytes were
 * already seen).
 *
 * Kept apart from the walk over msgpack headers (decoded-size.ts), which asks this module what each
 * key costs; both are for the Node side only (the browser bundle includes neither).
 */

import {
  STORE,
  NEW_KEY,
  MAX_FAST_PROPERTIES,
  DICTIONARY_PROPERTY,
  STRING,
  ELEMENT,
  MAX_ELEMENT_GAP,
  MAX_UNCHECKED_ELEMENTS,
  DICTIONARY_ENTRY,
  MAX_REMEMBERED_KEY,
  KEY_TABLE_SIZE,
  MAX_INDEX,
} from './decoded-size-costs.js';

/**
 * The key accounting of one scan: the state of each open container, by its position on the scan's
 * stack (`top`), and the keys seen so far in the frame. It reuses its arrays and its key table
 * from one frame to the next (no allocation per frame).
 */
export class MapKeyCosts {
  /** Element capacity V8 would have given each open map (integer keys). */
  private capacity = new Float64Array(16);
  /** Integer keys, and named keys, of each open map so far. */
  private indexKeys = new Float64Array(16);
  private namedKeys = new Float64Array(16);
  /** 1 for an open map whose integer keys V8 moved into a dictionary. */
  private dictionary = new Uint8Array(16);
  /** Remembered keys: offset + 1 into the frame (0: empty), the key's length, the generation it belongs to. */
  private readonly keyAt = new Int32Array(KEY_TABLE_SIZE);
  private readonly keyLength = new Int32Array(KEY_TABLE_SIZE);
  private readonly keyGeneration = new Int32Array(KEY_TABLE_SIZE);
  private generation = 0;
  private keysRemembered = 0;

  /** A new frame: forgets the keys seen in the frames before (a new generation of the key table). */
  newFrame(): void {
    this.generation = (this.generation + 1) | 0;
    if (this.generation === 0) {
      this.keyGeneration.fill(0);
      this.generation = 1;
    }
    this.keysRemembered = 0;
  }

  /** A container opens at stack position `at`: no keys yet, no element store. */
  open(at: number): void {
    if (at >= this.capacity.length) this.grow();
    this.capacity[at] = 0;
    this.indexKeys[at] = 0;
    this.namedKeys[at] = 0;
    this.dictionary[at] = 0;
  }

  /** After a frame that grew the stack far: give the memory back (a deep frame must not keep it for the connection's life). */
  shrink(): void {
    if (this.capacity.length <= 1024) return;
    this.capacity = new Float64Array(16);
    this.indexKeys = new Float64Array(16);
    this.namedKeys = new Float64Array(16);
    this.dictionary = new Uint8Array(16);
  }

  private grow(): void {
    const n = this.capacity.length * 2;
    this.capacity = widen(this.capacity, n);
    this.indexKeys = widen(this.indexKeys, n);
    this.namedKeys = widen(this.namedKeys, n);
    const dictionary = new Uint8Array(n);
    dictionary.set(this.dictionary);
    this.dictionary = dictionary;
  }

  /**
   * An integer key `index` of the map at stack position `top`, as V8 stores it: in an elements
   * store that grows to `index * 1.5 + 16` slots, unless the key is far beyond the store's
   * capacity, or the store would be large and mostly empty; then in a dictionary.
   */
  indexKey(top: number, index: number): number {
    if (index > MAX_INDEX) return this.namedKey(top, true, 0);
    const used = ++this.indexKeys[top]!;
    if (this.dictionary[top]) return DICTIONARY_ENTRY;
    const capacity = this.capacity[top]!;
    if (index < capacity) return 0;
    const grown = index + 1 + Math.floor((index + 1) / 2) + 16;
    if (index - capacity >= MAX_ELEMENT_GAP || (grown > MAX_UNCHECKED_ELEMENTS && 9 * dictionaryCapacity(used) <= grown)) {
      this.dictionary[top] = 1;
      return DICTIONARY_ENTRY * 4;
    }
    this.capacity[top] = grown;
    return (grown - capacity) * ELEMENT + (capacity === 0 ? STORE : 0);
  }

  /**
   * A named key of the map at stack position `top`: `isNew` when its bytes were not seen before
   * in the frame (its string and a new hidden class), `str` its string's cost. Past
   * {@link MAX_FAST_PROPERTIES} keys the object's properties live in a dictionary, whatever the keys.
   */
  namedKey(top: number, isNew: boolean, str: number): number {
    const n = ++this.namedKeys[top]!;
    if (n <= MAX_FAST_PROPERTIES) return isNew ? NEW_KEY + str : 0;
    // The 17th key moves the first 16 into the dictionary too.
    return (n === MAX_FAST_PROPERTIES + 1 ? (MAX_FAST_PROPERTIES + 1) * DICTIONARY_PROPERTY : DICTIONARY_PROPERTY) + (isNew ? str : 0);
  }

  /** A string key of `n` bytes at `at`: an integer key when it spells one, else a named one. */
  stringKey(bytes: Uint8Array, at: number, n: number, top: number): number {
    if (at + n > bytes.byteLength) return this.namedKey(top, true, stringCost(bytes.byteLength - at));
    const index = arrayIndexOf(bytes, at, n);
    if (index >= 0) return this.indexKey(top, index);
    const isNew = n > MAX_REMEMBERED_KEY || !this.seenBefore(bytes, at, n);
    return this.namedKey(top, isNew, stringCost(n));
  }

  /** True when the key bytes at `at` (n bytes) were seen earlier in this frame; remembers them otherwise. */
  private seenBefore(bytes: Uint8Array, at: number, n: number): boolean {
    let h = 0x811c9dc5 ^ n;
    for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[at + i]!, 0x01000193);
    const mask = KEY_TABLE_SIZE - 1;
    for (let probe = 0, slot = (h >>> 0) & mask; probe < 8; probe++, slot = (slot + 1) & mask) {
      if (this.keyGeneration[slot] !== this.generation) {
        if (this.keysRemembered < KEY_TABLE_SIZE / 2) {
          this.keyGeneration[slot] = this.generation;
          this.keyAt[slot] = at + 1;
          this.keyLength[slot] = n;
          this.keysRemembered++;
        }
        return false;
      }
      if (this.keyLength[slot] === n && sameBytes(bytes, this.keyAt[slot]! - 1, at, n)) return true;
    }
    return false;
  }
}

/** What a string of `n` UTF-8 bytes costs besides its slot (one non-Latin-1 character makes V8 store it two bytes per character). */
export function stringCost(n: number): number {
  return n < 2 ? 0 : STRING + 2 * n;
}

/** The capacity of V8's dictionary for `n` entries (NumberDictionary::ComputeCapacity). */
function dictionaryCapacity(n: number): number {
  let c = 4;
  while (c < n + (n >> 1)) c *= 2;
  return c;
}

function widen(a: Float64Array, n: number): Float64Array<ArrayBuffer> {
  const b = new Float64Array(n);
  b.set(a);
  return b;
}

function sameBytes(bytes: Uint8Array, a: number, b: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (bytes[a + i] !== bytes[b + i]) return false;
  return true;
}

/** The array index a key string spells ("0", "17"; not "017" or "-1"), or -1. */
function arrayIndexOf(bytes: Uint8Array, at: number, n: number): number {
  if (n === 0 || n > 10) return -1;
  const first = bytes[at]!;
  if (first < 0x30 || first > 0x39 || (first === 0x30 && n > 1)) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[at + i]!;
    if (c < 0x30 || c > 0x39) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v <= MAX_INDEX ? v : -1;
}
