/**
 * The decoded-size estimate (src/protocol/decoded-size.ts) against what decoding really allocates
 * on this Node's V8: at or above the measured heap growth (within a margin) for the shapes an
 * attacker picks (empty maps, integer keys, float keys, unique keys, wide records, tiny binaries),
 * within a few times of it for ordinary data, and never a throw or a hang on arbitrary bytes.
 *
 * Each shape is written as bytes by hand and decoded in a fresh process
 * (test/support/heap-of-decode.mjs): no object of that shape exists there before, as on a server
 * receiving it (objects built in this process first would warm V8's transitions and hide costs).
 * If a Node upgrade changes V8's costs, these say so.
 */
import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DecodedSizeEstimator, TOO_DEEP } from '../../src/protocol/decoded-size.js';

const PROBE = fileURLToPath(new URL('../support/heap-of-decode.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'decoded-size-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Heap growth of decoding `bytes` in a fresh process. */
function measured(bytes: Uint8Array): number {
  const file = join(dir, 'frame.bin');
  writeFileSync(file, bytes);
  return Number(execFileSync(process.execPath, ['--expose-gc', PROBE, file], { encoding: 'utf8' }).trim());
}

const estimate = (bytes: Uint8Array): number => new DecodedSizeEstimator(100).estimate(bytes);

const str = (s: string): number[] => {
  const b = Buffer.from(s);
  return [0xa0 + b.length, ...b];
};
function array32(n: number, element: ArrayLike<number>): Uint8Array {
  const b = new Uint8Array(5 + n * element.length);
  b[0] = 0xdd;
  new DataView(b.buffer).setUint32(1, n);
  for (let i = 0; i < n; i++) b.set(element, 5 + i * element.length);
  return b;
}
function array32Of(parts: number[][]): Uint8Array {
  const flat = parts.flat();
  const b = new Uint8Array(5 + flat.length);
  b[0] = 0xdd;
  new DataView(b.buffer).setUint32(1, parts.length);
  b.set(flat, 5);
  return b;
}
/** `m` records of `k` fields named by `key(i)`, each field 1. */
function records(k: number, m: number, key: (i: number) => string = (i) => `field${i}`): Uint8Array {
  const one = [...(k < 16 ? [0x80 + k] : [0xde, 0, k])];
  for (let i = 0; i < k; i++) one.push(...str(key(i)), 0x01);
  return array32(m, one);
}

describe('decoded-size estimate vs the heap decoding takes in a fresh process', () => {
  const attacks: [string, Uint8Array][] = [
    ['empty maps', array32(500_000, [0x80])],
    ['empty arrays', array32(500_000, [0x90])],
    ['one-entry maps {0: 0}', array32(300_000, [0x81, 0x00, 0x00])],
    ['{"1023": 0}: an integer key gives each object a 1,024-slot store', array32(5_000, [0x81, ...str('1023'), 0x00])],
    ['{1023: 0} as a uint 16 key', array32(5_000, [0x81, 0xcd, 0x03, 0xff, 0x00])],
    ['{1023.0: 0} as a float 32 key', array32(5_000, [0x81, 0xca, 0x44, 0x7f, 0xc0, 0x00, 0x00])],
    ['{1023.0: 0} as a float 64 key', array32(5_000, [0x81, 0xcb, 0x40, 0x8f, 0xf8, 0, 0, 0, 0, 0, 0x00])],
    ['empty binaries', array32(300_000, [0xc4, 0x00])],
    ['1-byte extensions', array32(300_000, [0xd4, 0x05, 0x00])],
    ['one-element arrays', array32(300_000, [0x91, 0x00])],
    ['unique keys {k<i>: 1}', array32Of(Array.from({ length: 100_000 }, (_, i) => [0x81, ...str(`k${i}`), 0x01]))],
    ['records of 20 fields (a dictionary past 16)', records(20, 20_000)],
    ['records of 84 one-character keys', records(84, 4_000, (i) => String.fromCharCode(33 + i))],
    ['strings with one non-Latin-1 character (two bytes per character)', array32(100_000, str('abcdefghijklmnopqrstuvw€'))],
    [
      'integer keys far apart (a dictionary of numbers)',
      array32Of(Array.from({ length: 5_000 }, () => [0xde, 0, 50, ...Array.from({ length: 50 }, (_, i) => [0xcd, ((i * 5000) >> 8) & 255, (i * 5000) & 255, 0x01]).flat()])),
    ],
  ];
  for (const [name, bytes] of attacks) {
    it(`an attacker's shape: ${name} (the estimate is at least 0.8x what it takes)`, () => {
      const actual = measured(bytes);
      expect(actual).toBeGreaterThan(2 * bytes.length); // each decodes into more than it weighs
      expect(estimate(bytes)).toBeGreaterThanOrEqual(0.8 * actual);
    });
  }

  const ordinary: [string, Uint8Array][] = [
    ['records {id, name, active}', encode(Array.from({ length: 100_000 }, (_, i) => ({ id: i, name: `user${i}`, active: true })))],
    ['records of eight fields', records(8, 50_000)],
    ['records of 100 fields', records(100, 4_000)],
    ['small integers', encode(Array.from({ length: 500_000 }, (_, i) => i % 100))],
    ['10-character strings', encode(Array.from({ length: 200_000 }, () => 'abcdefghij'))],
    ['a map of 100,000 keys', encode(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])))],
    ['records keyed by id', encode(Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [String(10_000 + i), { a: 1 }])))],
  ];
  for (const [name, bytes] of ordinary) {
    it(`ordinary data: ${name} (the estimate is within 0.8x-3x of what it takes)`, () => {
      const actual = measured(bytes);
      const e = estimate(bytes);
      expect(e).toBeGreaterThanOrEqual(0.8 * actual);
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

  it('a deep frame (maxDepth Infinity) does not leave its stack behind', () => {
    const est = new DecodedSizeEstimator(Infinity);
    const deep = new Uint8Array(100_001).fill(0x91, 0, 100_000);
    expect(est.estimate(deep)).toBeGreaterThan(100_000);
    expect((est as unknown as { remaining: Float64Array }).remaining.length).toBeLessThanOrEqual(1024);
  });
});
