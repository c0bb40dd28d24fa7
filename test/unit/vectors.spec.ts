import { readFileSync } from 'node:fs';
import { FrameCodec } from '../../src/protocol/codec.js';
import { ProtocolViolation } from '../../src/protocol/errors.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';

/** A frame every implementation must decode to `frame` and (unless `canonicalHex` is given) encode to exactly `hex`. */
interface ValidVector {
  name: string;
  hex: string;
  frame: Frame;
  /** Set for inputs that are valid but not in the form this implementation writes; `encode(frame)` gives this. */
  canonicalHex?: string;
}

/** Bytes that must be rejected with a ProtocolViolation whose message contains `error` and whose id is `id`. */
interface InvalidVector {
  name: string;
  hex: string;
  error: string;
  id: number;
}

type Vector = ValidVector | InvalidVector;

const vectors = JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url), 'utf8')) as Vector[];
const valid = vectors.filter((v): v is ValidVector => 'frame' in v);
const invalid = vectors.filter((v): v is InvalidVector => 'error' in v);

const bytes = (hex: string): Buffer => Buffer.from(hex, 'hex');
const hexOf = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

/** Node mode (bin as Buffer) and browser mode (bin as Uint8Array) must agree on every vector. */
const codecs: [string, () => FrameCodec][] = [
  ['binaryAsBuffer: true', () => new FrameCodec({ binaryAsBuffer: true })],
  ['binaryAsBuffer: false', () => new FrameCodec({ binaryAsBuffer: false })],
];

describe('docs/vectors.json', () => {
  it('is well formed: every vector is either valid or invalid, with lowercase hex and unique names', () => {
    expect(valid.length + invalid.length).toBe(vectors.length);
    const names = new Set<string>();
    for (const v of vectors) {
      expect(v.hex).toMatch(/^([0-9a-f]{2})*$/);
      expect(names.has(v.name)).toBe(false);
      names.add(v.name);
      if ('canonicalHex' in v && v.canonicalHex !== undefined) expect(v.canonicalHex).toMatch(/^([0-9a-f]{2})+$/);
      if ('error' in v) {
        expect(typeof v.error).toBe('string');
        expect(Number.isInteger(v.id)).toBe(true);
      }
    }
  });

  it('covers every frame type and variant', () => {
    const canonical = valid.filter((v) => v.canonicalHex === undefined).map((v) => v.frame);
    const has = (pred: (f: Frame) => boolean): boolean => canonical.some(pred);
    for (const type of Object.values(FrameType)) expect(has((f) => f.type === type)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && f.headers === undefined && f.credit === undefined && f.timeout === undefined && !f.stream)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && f.headers !== undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && f.credit !== undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && f.timeout !== undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && f.stream)).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && typeof f.pattern === 'object')).toBe(true);
    expect(has((f) => f.type === FrameType.REQUEST && typeof f.pattern === 'number')).toBe(true);
    expect(has((f) => f.type === FrameType.EVENT && f.headers === undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.EVENT && f.headers !== undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.COMPLETE && f.hasValue)).toBe(true);
    expect(has((f) => f.type === FrameType.COMPLETE && !f.hasValue)).toBe(true);
    expect(has((f) => f.type === FrameType.ERROR && f.data !== undefined)).toBe(true);
    expect(has((f) => f.type === FrameType.ERROR && f.data === undefined && f.id !== 0)).toBe(true);
    expect(has((f) => f.type === FrameType.ERROR && f.id === 0)).toBe(true);
    expect(valid.some((v) => v.canonicalHex !== undefined)).toBe(true);
    expect(invalid.some((v) => v.id !== 0)).toBe(true);
  });
});

/**
 * Every message FrameCodec.decode can fail with (src/protocol/validate.ts and codec.ts), as the table in
 * docs/PROTOCOL.md section 14 lists it; `<...>` is a placeholder. Each must be produced by at least one
 * invalid vector, and each invalid vector must produce one of them.
 */
const DECODE_MESSAGES = [
  'frame is not valid msgpack: <decoder message>',
  'frame must be a msgpack array of at least 2 elements',
  'EVENT: expected at least 3 elements, got <N>',
  'EVENT: pattern must be a string, number or map',
  'EVENT: meta must be a map',
  'EVENT: meta.h (headers) must be a map',
  'frame type <T>: call id must be an integer in 1..2^53-1',
  'REQUEST: expected at least 4 elements, got <N>',
  'REQUEST: pattern must be a string, number or map',
  'REQUEST: meta must be a map',
  'REQUEST: meta.n (credit) must be a non-negative integer',
  'REQUEST: meta.t (timeout) must be a positive integer of milliseconds',
  'REQUEST: meta.s (stream) must be a boolean',
  'REQUEST: meta.o (overflow) must be one of "error", "drop-newest", "drop-oldest", "latest"',
  'REQUEST: meta.h (headers) must be a map',
  'NEXT: expected at least 3 elements, got <N>',
  'ERROR: expected at least 4 elements, got <N>',
  'ERROR: code and message must be strings',
  'CREDIT: expected at least 3 elements, got <N>',
  'CREDIT: credit must be a positive integer',
  'unknown frame type <T>',
];

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const asPattern = (template: string): RegExp =>
  new RegExp(
    `^${template
      .split(/<[^>]+>/)
      .map(escapeRegExp)
      .join('.+')}$`,
  );

describe('decode error messages (docs/PROTOCOL.md section 14)', () => {
  const codec = new FrameCodec();
  const actual = invalid.map((v) => {
    try {
      codec.decode(bytes(v.hex));
    } catch (e) {
      return { name: v.name, message: (e as Error).message };
    }
    return { name: v.name, message: '(decoded)' };
  });

  it.each(DECODE_MESSAGES)('an invalid vector produces: %s', (template) => {
    const pattern = asPattern(template);
    expect(actual.filter((a) => pattern.test(a.message)).map((a) => a.name)).not.toEqual([]);
  });

  it('every invalid vector produces one of the listed messages', () => {
    const patterns = DECODE_MESSAGES.map(asPattern);
    expect(actual.filter((a) => !patterns.some((p) => p.test(a.message)))).toEqual([]);
  });

  it('the protocol document lists every message verbatim', () => {
    const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
    expect(DECODE_MESSAGES.filter((m) => !doc.includes(`\`${m}\``))).toEqual([]);
  });
});

describe.each(codecs)('valid vectors (%s)', (_mode, make) => {
  const codec = make();

  it.each(valid.map((v) => [v.name, v] as const))('decodes: %s', (_name, v) => {
    expect(codec.decode(bytes(v.hex))).toEqual(v.frame);
  });

  it.each(valid.map((v) => [v.name, v] as const))('encodes byte for byte: %s', (_name, v) => {
    expect(hexOf(codec.encode(v.frame))).toBe(v.canonicalHex ?? v.hex);
  });

  it.each(valid.filter((v) => v.canonicalHex !== undefined).map((v) => [v.name, v] as const))(
    'the canonical form of a decode-only vector decodes to the same frame: %s',
    (_name, v) => {
      expect(codec.decode(bytes(v.canonicalHex!))).toEqual(v.frame);
    },
  );
});

describe.each(codecs)('invalid vectors (%s)', (_mode, make) => {
  const codec = make();

  it.each(invalid.map((v) => [v.name, v] as const))('rejects: %s', (_name, v) => {
    let caught: unknown;
    try {
      codec.decode(bytes(v.hex));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ProtocolViolation);
    const pv = caught as ProtocolViolation;
    expect(pv.message).toContain(v.error);
    expect(pv.id).toBe(v.id);
  });
});
