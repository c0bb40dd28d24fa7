/**
 * The decoded-size estimate (src/protocol/decoded-size.ts) against what decoding really allocates
 * on this V8: at or near the measured heap growth for the shapes an attacker picks (empty maps,
 * integer keys, unique keys, tiny binaries), within a few times of it for ordinary data, and never
 * a throw or a hang on arbitrary bytes. If a Node upgrade changes V8's costs, these say so.
 */
import { Decoder, encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { DecodedSizeEstimator, TOO_DEEP } from '../../src/protocol/decoded-size.js';

const decoder = new Decoder({ useBigInt64: true, maxArrayLength: 1e9, maxMapLength: 1e9 });

/** Heap growth of decoding `bytes` (kept alive while measured), after full collections. */
function measured(bytes: Uint8Array): number {
  global.gc!();
  const before = process.memoryUsage().heapUsed;
  const value = decoder.decode(bytes);
  global.gc!();
  const grown = process.memoryUsage().heapUsed - before;
  expect(value).toBeDefined(); // keeps it alive until here
  return grown;
}

function array32(n: number, element: number[]): Uint8Array {
  const b = new Uint8Array(5 + n * element.length);
  b[0] = 0xdd;
  new DataView(b.buffer).setUint32(1, n);
  for (let i = 0; i < n; i++) b.set(element, 5 + i * element.length);
  return b;
}

const estimate = (bytes: Uint8Array): number => new DecodedSizeEstimator(100).estimate(bytes);

describe('decoded-size estimate vs the heap decoding really takes', () => {
  const attacks: [string, Uint8Array][] = [
    ['empty maps', array32(500_000, [0x80])],
    ['empty arrays', array32(500_000, [0x90])],
    ['one-entry maps {0: 0}', array32(300_000, [0x81, 0x00, 0x00])],
    ['{"1023": 0}: an integer key gives each object a 1,024-slot store', array32(5_000, [0x81, 0xa4, 0x31, 0x30, 0x32, 0x33, 0x00])],
    ['{1023: 0} as a uint 16 key', array32(5_000, [0x81, 0xcd, 0x03, 0xff, 0x00])],
    ['empty binaries', array32(300_000, [0xc4, 0x00])],
    ['1-byte extensions', array32(300_000, [0xd4, 0x05, 0x00])],
    ['one-element arrays', array32(300_000, [0x91, 0x00])],
    ['unique keys {k<i>: 1}', encode(Array.from({ length: 100_000 }, (_, i) => ({ [`k${i}`]: 1 })))],
  ];
  for (const [name, bytes] of attacks) {
    it(`an attacker's shape: ${name} (the estimate is at least 0.75x what it takes)`, () => {
      const actual = measured(bytes);
      expect(actual).toBeGreaterThan(8 * bytes.length); // each is a real amplification
      expect(estimate(bytes)).toBeGreaterThanOrEqual(0.75 * actual);
    });
  }

  const ordinary: [string, unknown][] = [
    ['records {id, name, active}', Array.from({ length: 100_000 }, (_, i) => ({ id: i, name: `user${i}`, active: true }))],
    ['records of eight fields', Array.from({ length: 50_000 }, () => ({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8 }))],
    ['small integers', Array.from({ length: 500_000 }, (_, i) => i % 100)],
    ['10-character strings', Array.from({ length: 200_000 }, () => 'abcdefghij')],
    ['a map of 100,000 keys', Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i]))],
    ['records keyed by id', Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [String(10_000 + i), { a: 1 }]))],
  ];
  for (const [name, value] of ordinary) {
    it(`ordinary data: ${name} (the estimate is within 0.75x-3x of what it takes)`, () => {
      const bytes = encode(value);
      const actual = measured(bytes);
      const e = estimate(bytes);
      expect(e).toBeGreaterThanOrEqual(0.75 * actual);
      expect(e).toBeLessThanOrEqual(3 * actual);
    });
  }
});

describe('the scan', () => {
  it('stops as soon as the estimate passes the limit', () => {
    // 1,000 arrays of 1,000 empty maps: about 64 MB in all, 64 KB per array.
    const inner = array32(1000, [0x80]);
    const bytes = new Uint8Array(5 + 1000 * inner.length);
    bytes.set(array32(1000, []).subarray(0, 5));
    for (let i = 0; i < 1000; i++) bytes.set(inner, 5 + i * inner.length);
    expect(estimate(bytes)).toBeGreaterThan(60 * 1024 * 1024);
    const e = new DecodedSizeEstimator(100).estimate(bytes, 1024 * 1024);
    expect(e).toBeGreaterThan(1024 * 1024);
    expect(e).toBeLessThan(2 * 1024 * 1024);
  });

  it('reports a value deeper than maxDepth, counted as the decoder counts it', () => {
    const est = new DecodedSizeEstimator(3);
    expect(est.estimate(Uint8Array.of(0x91, 0x91, 0x01))).toBeGreaterThan(0); // elements at depth 3
    expect(est.estimate(Uint8Array.of(0x91, 0x91, 0x91, 0x01))).toBe(TOO_DEEP);
    expect(est.deepest).toBe(4);
    expect(est.estimate(Uint8Array.of(0x91, 0x91, 0x90))).toBeGreaterThan(0); // an empty array has no elements
  });

  it('never trusts a declared length beyond the bytes that are there', () => {
    const est = new DecodedSizeEstimator(100);
    expect(est.estimate(Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff))).toBeLessThan(100); // str 32 of 4 GB, no bytes
    expect(est.estimate(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01))).toBeLessThan(100); // array 32 of 4 G, one element
  });

  it('never throws, and ends, on arbitrary bytes; the same bytes give the same estimate', () => {
    const est = new DecodedSizeEstimator(100);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const a = est.estimate(bytes);
        expect(Number.isFinite(a)).toBe(true);
        expect(est.estimate(bytes)).toBe(a);
      }),
      { numRuns: 3000 },
    );
  });

  it('is not fooled by keys that collide in its table: different keys cost as new ones', () => {
    // 600 distinct one-entry maps with distinct 2-byte keys: more than the table remembers.
    const maps = Array.from({ length: 600 }, (_, i) => ({ [String.fromCharCode(97 + (i % 26), 65 + Math.floor(i / 26))]: 0 }));
    const distinct = estimate(encode(maps));
    const same = estimate(encode(maps.map(() => ({ ab: 0 }))));
    expect(distinct).toBeGreaterThan(same + 500 * 100);
  });
});
