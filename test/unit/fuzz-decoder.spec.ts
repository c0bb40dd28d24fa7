/**
 * Property and fuzz tests of the frame decoder and validator (FrameCodec.decode: @msgpack/msgpack's
 * Decoder, the guards codec.ts builds into it, parseFrame, peekHeader), with fast-check:
 *
 * - round trip: encode then decode gives the frame back, for arbitrary valid frames (ids up to
 *   2^53-1, any value msgpack carries, mapped as docs/PROTOCOL.md section 18 says);
 * - over 100,000 random and mutated frames per run (random bytes; bit flips, truncation,
 *   insertion, deletion, length-field corruption and type confusion of the test vectors and of
 *   encoded arbitrary frames): decode returns a well-formed frame that re-encodes to itself, or
 *   throws a ProtocolViolation with a documented message and an id that is 0 or a valid call id
 *   (for an undecodable frame: the id its header gives, section 14.1), and the same codec instance
 *   then still decodes valid frames correctly;
 * - the maxDepth limit and the declared-size check (src/protocol/codec.ts, DecoderLimits).
 *
 * fast-check picks a new seed each run and prints it with any counterexample; set FUZZ_SEED to
 * replay one.
 */
import { readFileSync } from 'node:fs';
import { Decoder, Encoder, ExtData } from '@msgpack/msgpack';
import fc from 'fast-check';
import { DEFAULT_DECODER_LIMITS, FrameCodec, checkDepth } from '../../src/protocol/codec.js';
import { guardDecoder } from '../../src/patches/msgpack.js';
import { ProtocolViolation } from '../../src/protocol/errors.js';
import { FrameType, MAX_CALL_ID, OVERFLOW_STRATEGIES, type Frame } from '../../src/protocol/frames.js';
import { peekHeader } from '../../src/protocol/validate.js';
import { bytes, hex, violation } from '../support/protocol.js';

const seedFromEnv = process.env['FUZZ_SEED'];
/**
 * numRuns, and a bound on the whole run (shrinking included: a counterexample of a big frame can take
 * minutes to shrink, and the message of every failure below already names the input's bytes).
 */
const params = <T>(numRuns: number): fc.Parameters<T> => ({
  numRuns,
  interruptAfterTimeLimit: 60_000,
  markInterruptAsFailure: true,
  ...(seedFromEnv === undefined ? {} : { seed: Number(seedFromEnv) }),
});

// ---------------------------------------------------------------------------------------------
// Values and frames
// ---------------------------------------------------------------------------------------------

/** Map keys: anything but `__proto__`, which the decoder refuses (section 18; checked below). */
const keyArb = fc.string({ unit: 'binary', maxLength: 6 }).filter((k) => k !== '__proto__');

const leafArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.integer({ min: 0, max: 2 ** 32 - 1 }),
  fc.maxSafeInteger(),
  fc.double(), // NaN, -0 and the infinities included
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.string({ unit: 'binary', minLength: 50, maxLength: 90 }), // long: the TextEncoder/TextDecoder paths
  fc.uint8Array({ maxLength: 24 }),
  fc.date({ noInvalidDate: true }),
  fc.record({ type: fc.integer({ min: 0, max: 127 }), data: fc.uint8Array({ maxLength: 20 }) }).map(({ type, data }) => new ExtData(type, data)),
);

/** Any value FrameCodec can encode, nested a few levels (arrays, plain objects, Maps, Sets). */
const { value: valueArb } = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown>; map: Map<string, unknown>; set: Set<unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: 5 }, leafArb, tie('array'), tie('object'), tie('map'), tie('set')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(keyArb, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  map: fc.array(fc.tuple(keyArb, tie('value')), { maxLength: 3 }).map((entries) => new Map(entries)),
  set: fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
}));

const headersArb = fc.dictionary(keyArb, valueArb, { maxKeys: 3, noNullPrototype: true });
const objectArb = fc.dictionary(keyArb, valueArb, { minKeys: 0, maxKeys: 3, noNullPrototype: true });
const patternArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 16 }), fc.double({ noNaN: true, noDefaultInfinity: true }), objectArb);

/** Call ids: small, around every msgpack integer-format boundary, and anywhere up to 2^53-1. */
const idArb = fc.oneof(
  fc.integer({ min: 1, max: 300 }),
  fc.constantFrom(127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 52, MAX_CALL_ID - 1, MAX_CALL_ID),
  fc.integer({ min: 1, max: MAX_CALL_ID }),
);
const countArb = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: MAX_CALL_ID }), fc.constant(MAX_CALL_ID));
const positiveArb = fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: MAX_CALL_ID }), fc.constant(MAX_CALL_ID));

/** Drops the keys whose value is undefined (optional fields that fc.record left out or set to undefined). */
function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const requestArb: fc.Arbitrary<Frame> = fc
  .record(
    {
      id: idArb,
      pattern: patternArb,
      payload: valueArb,
      stream: fc.boolean(),
      headers: headersArb,
      credit: countArb,
      timeout: positiveArb,
      overflow: fc.constantFrom(...OVERFLOW_STRATEGIES),
    },
    { requiredKeys: ['id', 'pattern', 'payload', 'stream'] },
  )
  .map((r) => ({ ...compact(r), type: FrameType.REQUEST, payload: r.stream ? undefined : r.payload }) as Frame);

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  requestArb,
  fc
    .record({ pattern: patternArb, payload: valueArb, headers: headersArb }, { requiredKeys: ['pattern', 'payload'] })
    .map((r) => ({ ...compact(r), type: FrameType.EVENT, payload: r.payload }) as Frame),
  fc.record({ id: idArb, value: valueArb }).map((r) => ({ type: FrameType.NEXT, ...r }) as Frame),
  fc.record({ id: idArb }).map((r) => ({ type: FrameType.COMPLETE, id: r.id, hasValue: false }) as Frame),
  fc.record({ id: idArb, value: valueArb }).map((r) => ({ type: FrameType.COMPLETE, id: r.id, hasValue: true, value: r.value }) as Frame),
  fc
    .record(
      { id: fc.oneof(fc.constant(0), idArb), code: fc.string({ maxLength: 20 }), message: fc.string({ unit: 'binary', maxLength: 40 }), data: valueArb },
      { requiredKeys: ['id', 'code', 'message'] },
    )
    .map((r) => ({ ...compact(r), type: FrameType.ERROR }) as Frame),
  fc.record({ id: idArb }).map((r) => ({ type: FrameType.CANCEL, id: r.id }) as Frame),
  fc.record({ id: idArb, credit: positiveArb }).map((r) => ({ type: FrameType.CREDIT, ...r }) as Frame),
);

/**
 * What the receiver gets for a value that was sent (docs/PROTOCOL.md section 18): undefined at the
 * top level or in an array becomes nil, as a property it is left out; -0 is sent as the integer 0;
 * a Map becomes a plain object, a Set an array, a typed array its bytes.
 */
function received(v: unknown): unknown {
  if (v === undefined) return null;
  if (typeof v === 'number') return Object.is(v, -0) ? 0 : v;
  if (typeof v !== 'object' || v === null || v instanceof Date || v instanceof ExtData) return v;
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(received);
  if (v instanceof Set) return [...(v as Set<unknown>)].map(received);
  const entries = v instanceof Map ? [...(v as Map<string, unknown>)] : Object.entries(v);
  return Object.fromEntries(entries.filter(([, x]) => x !== undefined).map(([k, x]) => [k, received(x)]));
}

/** The frame the receiver decodes for a frame that was sent. */
function receivedFrame(f: Frame): Frame {
  switch (f.type) {
    case FrameType.REQUEST:
      return compact({ ...f, pattern: received(f.pattern), payload: f.stream ? undefined : received(f.payload), headers: f.headers && received(f.headers) }) as Frame;
    case FrameType.EVENT:
      return compact({ ...f, pattern: received(f.pattern), payload: received(f.payload), headers: f.headers && received(f.headers) }) as Frame;
    case FrameType.NEXT:
      return { ...f, value: received(f.value) };
    case FrameType.COMPLETE:
      return f.hasValue ? { ...f, value: received(f.value) } : f;
    case FrameType.ERROR:
      return f.data === undefined ? f : { ...f, data: received(f.data) };
    default:
      return f;
  }
}

const show = (v: unknown): string => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * Where `a` and `b` differ, or undefined when they are the same value: numbers by Object.is except
 * that 0 and -0 are equal (msgpack writes -0 as the integer 0), Dates by time, binary and ExtData by
 * bytes (a Buffer equals a Uint8Array with the same bytes), objects by their defined properties.
 */
/** `s` with every lone surrogate replaced by U+FFFD, as TextEncoder writes it. */
function wellFormed(s: string): string {
  return (s as string & { toWellFormed(): string }).toWellFormed();
}

function difference(a: unknown, b: unknown, path = '$'): string | undefined {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b) || (a === 0 && b === 0) ? undefined : `${path}: ${a} != ${b}`;
  // A string with a lone surrogate (what the decoder makes of some invalid UTF-8) is sent as
  // U+FFFD by the encoder when it uses TextEncoder (long strings): equal up to that replacement.
  if (typeof a === 'string' && typeof b === 'string') return wellFormed(a) === wellFormed(b) ? undefined : `${path}: ${show(a)} != ${show(b)}`;
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return a === b ? undefined : `${path}: ${show(a)} != ${show(b)}`;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && Object.is(a.getTime(), b.getTime()) ? undefined : `${path}: dates ${show(a)} != ${show(b)}`;
  }
  if (a instanceof ExtData || b instanceof ExtData) {
    if (!(a instanceof ExtData && b instanceof ExtData) || a.type !== b.type) return `${path}: ext ${show(a)} != ${show(b)}`;
    return difference(a.data, b.data, `${path}.data`);
  }
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!(ArrayBuffer.isView(a) && ArrayBuffer.isView(b))) return `${path}: binary vs not binary`;
    const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    return x.equals(y) ? undefined : `${path}: bytes ${x.toString('hex')} != ${y.toString('hex')}`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs not array`;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} != ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = difference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  // Keys up to the same lone-surrogate replacement as string values.
  const entries = (o: object): Map<string, unknown> =>
    new Map(
      Object.entries(o)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [wellFormed(k), v]),
    );
  const ma = entries(a);
  const mb = entries(b);
  const ka = [...ma.keys()].sort();
  const kb = [...mb.keys()].sort();
  if (ka.join('\u0000') !== kb.join('\u0000')) return `${path}: keys ${JSON.stringify(ka)} != ${JSON.stringify(kb)}`;
  for (const k of ka) {
    const d = difference(ma.get(k), mb.get(k), `${path}.${k}`);
    if (d) return d;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------------------------

describe('round trip: decode(encode(frame)) is the frame, for arbitrary valid frames', () => {
  const codecs = [new FrameCodec(), new FrameCodec({ binaryAsBuffer: false })];

  it('any frame type, ids up to 2^53-1, any msgpack value (section 18 mapping); encodeShared writes the same bytes; the header peeks as the frame', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const want = receivedFrame(frame);
        for (const codec of codecs) {
          const wire = codec.encode(frame);
          expect(hex(codec.encodeShared(frame))).toBe(hex(wire));
          const problem = difference(codec.decode(wire), want);
          if (problem) throw new Error(`${problem} (wire ${hex(wire)})`);
        }
        const id = frame.type === FrameType.EVENT ? 0 : frame.id;
        const header = peekHeader(codecs[0]!.encode(frame));
        if (frame.type === FrameType.ERROR && id === 0)
          expect(header).toBeUndefined(); // id 0 is no call id
        else expect(header).toEqual({ type: frame.type, id });
      }),
      params(3000),
    );
  });

  it('the largest call id, 2^53-1, survives every frame type that carries one (as float 64)', () => {
    const codec = new FrameCodec();
    for (const frame of [
      { type: FrameType.REQUEST, id: MAX_CALL_ID, pattern: 'p', payload: 1, stream: false, credit: MAX_CALL_ID, timeout: MAX_CALL_ID },
      { type: FrameType.NEXT, id: MAX_CALL_ID, value: MAX_CALL_ID },
      { type: FrameType.COMPLETE, id: MAX_CALL_ID, hasValue: false },
      { type: FrameType.ERROR, id: MAX_CALL_ID, code: 'X', message: 'm' },
      { type: FrameType.CANCEL, id: MAX_CALL_ID },
      { type: FrameType.CREDIT, id: MAX_CALL_ID, credit: MAX_CALL_ID },
    ] satisfies Frame[]) {
      const wire = codec.encode(frame);
      expect(hex(wire).slice(4, 22)).toBe('cb433fffffffffffff'); // [type, 2^53-1 as float 64, …]
      expect(codec.decode(wire)).toEqual(frame);
    }
  });

  it('an Invalid Date cannot be encoded (it went out as 1970-01-01); a timestamp beyond the range of Date decodes as an Invalid Date', () => {
    const codec = new FrameCodec();
    expect(() => codec.encode({ type: FrameType.NEXT, id: 1, value: { when: new Date(Number.NaN) } })).toThrow('an Invalid Date cannot be encoded as a msgpack timestamp');
    expect(hex(codec.encode({ type: FrameType.NEXT, id: 1, value: new Date(0) }))).toBe('930301d6ff00000000');
    // timestamp 96 (ext 8, type -1): nsec 0, sec 2^62, far beyond the ±8.64e15 ms of a Date
    const far = (codec.decode(bytes('930301c70cff000000004000000000000000')) as { value: unknown }).value;
    expect(far).toBeInstanceOf(Date);
    expect(Number.isNaN((far as Date).getTime())).toBe(true);
  });

  it('a map key __proto__ is refused (section 18), with a ProtocolViolation for the call', () => {
    const codec = new FrameCodec();
    const value = JSON.parse('{"__proto__": 1}') as unknown; // an own property named __proto__
    const v = violation(() => codec.decode(codec.encode({ type: FrameType.NEXT, id: 9, value })));
    expect(v.message).toBe('frame is not valid msgpack: The key __proto__ is not allowed');
    expect(v.id).toBe(9);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz
// ---------------------------------------------------------------------------------------------

/** Every message decode may fail with (docs/PROTOCOL.md section 14.1 and 14.2). */
const DECODE_MESSAGES = [
  /^frame must be a msgpack array of at least 2 elements$/,
  /^EVENT: expected at least 3 elements, got \d+$/,
  /^EVENT: pattern must be a string, number or map$/,
  /^EVENT: meta must be a map$/,
  /^EVENT: meta\.h \(headers\) must be a map$/,
  /^frame type .*: call id must be an integer in 1\.\.2\^53-1$/s,
  /^REQUEST: expected at least 4 elements, got \d+$/,
  /^REQUEST: pattern must be a string, number or map$/,
  /^REQUEST: meta must be a map$/,
  /^REQUEST: meta\.n \(credit\) must be a non-negative integer$/,
  /^REQUEST: meta\.t \(timeout\) must be a positive integer of milliseconds$/,
  /^REQUEST: meta\.s \(stream\) must be a boolean$/,
  /^REQUEST: meta\.o \(overflow\) must be one of "error", "drop-newest", "drop-oldest", "latest"$/,
  /^REQUEST: meta\.h \(headers\) must be a map$/,
  /^NEXT: expected at least 3 elements, got \d+$/,
  /^ERROR: expected at least 4 elements, got \d+$/,
  /^ERROR: code and message must be strings$/,
  /^CREDIT: expected at least 3 elements, got \d+$/,
  /^CREDIT: credit must be a positive integer$/,
  /^unknown frame type .*$/s,
];

/**
 * The decoder messages after `frame is not valid msgpack: `: @msgpack/msgpack's own, the DataView's
 * bounds error, and the two of codec.ts's guards. Anything else (a TypeError text, say) would be a
 * crash inside the decoder dressed up as a protocol error.
 */
const DECODER_REASONS = [
  /^Insufficient data$/,
  /^Offset is outside the bounds of the DataView$/,
  /^Extra \d+ of \d+ byte\(s\) found at buffer\[\d+\]$/,
  /^Unrecognized type byte: 0xc1$/,
  /^The type of key must be string or number but \w+$/,
  /^The key __proto__ is not allowed$/,
  /^Max length exceeded: (UTF-8 byte|bin|array|map|ext) length \(\d+\) > max\w+ \(\d+\)$/,
  /^Unrecognized data size for timestamp \(expected 4, 8, or 12\): \d+$/,
  /^Max depth exceeded: nesting depth \(\d+\) > maxDepth \(\d+\)$/,
  /^Insufficient data: (array|map) length \(\d+\) and the values still due around it need at least \d+ bytes, \d+ left$/,
];

const NOT_MSGPACK = 'frame is not valid msgpack: ';
const isCallId = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;

/** Why a decoded frame is not one the connection layer can rely on, or undefined. */
function shapeProblem(f: Frame): string | undefined {
  const isMap = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Date) && !(v instanceof ExtData);
  const isPattern = (v: unknown): boolean => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || isMap(v);
  switch (f.type) {
    case FrameType.REQUEST:
      if (!isCallId(f.id) || typeof f.stream !== 'boolean' || !isPattern(f.pattern)) return 'REQUEST shape';
      if (f.stream && f.payload !== undefined) return 'request-stream REQUEST with a payload';
      if (f.credit !== undefined && !(Number.isSafeInteger(f.credit) && f.credit >= 0)) return 'REQUEST credit';
      if (f.timeout !== undefined && !(Number.isSafeInteger(f.timeout) && f.timeout > 0)) return 'REQUEST timeout';
      if (f.overflow !== undefined && !OVERFLOW_STRATEGIES.includes(f.overflow)) return 'REQUEST overflow';
      if (f.headers !== undefined && !isMap(f.headers)) return 'REQUEST headers';
      return undefined;
    case FrameType.EVENT:
      if ('id' in f) return 'EVENT has an id';
      return isPattern(f.pattern) && (f.headers === undefined || isMap(f.headers)) ? undefined : 'EVENT shape';
    case FrameType.NEXT:
    case FrameType.CANCEL:
      return isCallId(f.id) ? undefined : 'id';
    case FrameType.COMPLETE:
      return isCallId(f.id) && typeof f.hasValue === 'boolean' ? undefined : 'COMPLETE shape';
    case FrameType.ERROR:
      return (f.id === 0 || isCallId(f.id)) && typeof f.code === 'string' && typeof f.message === 'string' ? undefined : 'ERROR shape';
    case FrameType.CREDIT:
      return isCallId(f.id) && Number.isSafeInteger(f.credit) && f.credit >= 1 ? undefined : 'CREDIT shape';
    default:
      return `unknown type ${String((f as { type: unknown }).type)}`;
  }
}

/** Valid frames decoded after every failure: the codec must still get them exactly right. */
const CANARIES: Frame[] = [
  { type: FrameType.REQUEST, id: 2 ** 32 + 1, pattern: { cmd: 'sum' }, payload: [1, 2, 3], stream: false, headers: { t: 'ab' }, credit: 256 },
  { type: FrameType.NEXT, id: 5, value: { a: [new Uint8Array([1, 2, 3]), 1.5, 7n] } },
  { type: FrameType.CREDIT, id: MAX_CALL_ID, credit: 128 },
];

interface CodecUnderTest {
  name: string;
  codec: FrameCodec;
  /** Whether every frame it decodes can be encoded (false above the encoder's maxDepth of 100). */
  reencodes: boolean;
  canaries: Uint8Array[];
  next: number;
}

const underTest = (name: string, codec: FrameCodec, reencodes = true): CodecUnderTest => ({
  name,
  codec,
  reencodes,
  canaries: CANARIES.map((f) => new FrameCodec().encode(f)),
  next: 0,
});

const fuzzCodecs: CodecUnderTest[] = [
  underTest('default', new FrameCodec()),
  underTest('tight limits', new FrameCodec({ maxStrLength: 8, maxBinLength: 8, maxArrayLength: 8, maxMapLength: 4, maxExtLength: 8, maxDepth: 5 })),
  underTest('binaryAsBuffer false, maxDepth Infinity', new FrameCodec({ binaryAsBuffer: false, maxDepth: Infinity }), false),
];

const redecoder = new FrameCodec();
let inputs = 0;
const reasons = new Set<string>();

/** Throws an Error saying what went wrong when `input` is not handled as section 14 says. */
function checkInput(input: Uint8Array): void {
  inputs++;
  for (const c of fuzzCodecs) {
    let frame: Frame;
    try {
      frame = c.codec.decode(input);
    } catch (e) {
      checkViolation(c, input, e);
      checkCanary(c);
      continue;
    }
    const problem = shapeProblem(frame);
    if (problem) throw new Error(`[${c.name}] ${hex(input)} decoded to a malformed frame (${problem})`);
    if (!c.reencodes) continue;
    // A frame this side accepted can be sent back: it encodes, and decodes to itself.
    let wire: Uint8Array;
    try {
      wire = c.codec.encode(frame);
    } catch (e) {
      // A timestamp beyond the range of Date decodes as an Invalid Date, which is not sent (as 1970) but refused.
      if (e instanceof RangeError && e.message.includes('Invalid Date') && hasInvalidDate(frame)) continue;
      throw new Error(`[${c.name}] ${hex(input)} decoded to a frame that cannot be encoded: ${String(e)}`, { cause: e });
    }
    // (Decoded by default limits: a string of invalid UTF-8 comes back longer, with U+FFFD for each bad sequence.)
    const again = difference(redecoder.decode(wire), frame);
    if (again) throw new Error(`[${c.name}] ${hex(input)} re-encoded as ${hex(wire)} decodes differently: ${again}`);
  }
}

function hasInvalidDate(root: unknown): boolean {
  const todo: unknown[] = [root];
  while (todo.length > 0) {
    const v = todo.pop();
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) return true;
    } else if (typeof v === 'object' && v !== null && !ArrayBuffer.isView(v) && !(v instanceof ExtData)) {
      todo.push(...Object.values(v));
    }
  }
  return false;
}

function checkViolation(c: CodecUnderTest, input: Uint8Array, e: unknown): void {
  const where = `[${c.name}] ${hex(input)}`;
  if (!(e instanceof ProtocolViolation) || e.name !== 'ProtocolViolation') {
    throw new Error(`${where} threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, not a ProtocolViolation`);
  }
  if (!(e.id === 0 || isCallId(e.id))) throw new Error(`${where}: ProtocolViolation with id ${String(e.id)}`);
  if (e.frameType !== undefined && typeof e.frameType !== 'number') throw new Error(`${where}: frameType ${String(e.frameType)}`);
  if (e.message.startsWith(NOT_MSGPACK)) {
    const reason = e.message.slice(NOT_MSGPACK.length);
    if (!DECODER_REASONS.some((r) => r.test(reason))) throw new Error(`${where}: unexpected decoder message ${JSON.stringify(reason)}`);
    reasons.add(reason.replace(/\d+/g, 'N'));
    const header = peekHeader(input);
    if (e.id !== (header?.id ?? 0) || !Object.is(e.frameType, header?.type)) {
      throw new Error(`${where}: undecodable frame attributed to id ${e.id} type ${String(e.frameType)}, its header says ${JSON.stringify(header)}`);
    }
  } else if (!DECODE_MESSAGES.some((r) => r.test(e.message))) {
    throw new Error(`${where}: undocumented message ${JSON.stringify(e.message)}`);
  }
}

function checkCanary(c: CodecUnderTest): void {
  const i = c.next++ % CANARIES.length;
  const problem = difference(c.codec.decode(c.canaries[i]!), CANARIES[i]);
  if (problem) throw new Error(`[${c.name}] after a failure, a valid frame decodes wrongly: ${problem}`);
}

/** One msgpack value's head in a byte string: where it is, and where its length field is. */
interface Token {
  at: number;
  head: number;
  /** Offset and width of the length field; width 0: the length is in the head byte (fix types). */
  lengthAt?: number;
  lengthWidth?: 0 | 1 | 2 | 4;
}

/** Lists the head of every value in `b`, in order (msgpack is a prefix code; a valid frame is walked completely). */
function tokens(b: Uint8Array): Token[] {
  const out: Token[] = [];
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const lengthAt = (at: number, w: 1 | 2 | 4): number => (at + w > b.length ? 0 : w === 1 ? view.getUint8(at) : w === 2 ? view.getUint16(at) : view.getUint32(at));
  const WIDTH = [1, 2, 4] as const;
  let pos = 0;
  while (pos < b.length) {
    const h = b[pos]!;
    const t: Token = { at: pos, head: h };
    out.push(t);
    let size = FIXED_SIZE[h] ?? 1;
    if (h >= 0x80 && h <= 0xbf) {
      t.lengthAt = pos; // fixmap, fixarray, fixstr: the length is in the head byte
      t.lengthWidth = 0;
      if (h >= 0xa0) size = 1 + (h & 0x1f);
    } else if ((h >= 0xc4 && h <= 0xc9) || (h >= 0xd9 && h <= 0xdf)) {
      const w = h <= 0xc9 ? WIDTH[(h - 0xc4) % 3]! : h <= 0xdb ? WIDTH[h - 0xd9]! : h === 0xdc || h === 0xde ? 2 : 4;
      t.lengthAt = pos + 1;
      t.lengthWidth = w;
      const n = lengthAt(pos + 1, w);
      size = h >= 0xdc ? 1 + w : 1 + w + (h >= 0xc7 && h <= 0xc9 ? 1 : 0) + n; // arrays and maps: their elements follow as values
    } else if (h === 0xc1) {
      size = b.length; // never used: stop
    }
    pos += size;
  }
  return out;
}

/** Sizes of the msgpack formats whose size the head byte fixes (those of size 1 left out). */
const FIXED_SIZE: Readonly<Record<number, number>> = {
  0xca: 5,
  0xcb: 9,
  0xcc: 2,
  0xcd: 3,
  0xce: 5,
  0xcf: 9,
  0xd0: 2,
  0xd1: 3,
  0xd2: 5,
  0xd3: 9,
  0xd4: 3,
  0xd5: 4,
  0xd6: 6,
  0xd7: 10,
  0xd8: 18,
};

/** Head bytes of another family than a value's own, with the same (or a similar) layout after it. */
const CONFUSIONS: Record<string, number[]> = {
  fixarray: [0x80, 0xa0, 0xc0, 0x00], // -> fixmap / fixstr / nil / int (low bits kept for fix types)
  fixmap: [0x90, 0xa0],
  fixstr: [0x90, 0x80, 0xc4],
  sized: [0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf],
  scalar: [0xc0, 0xc2, 0xc3, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc1, 0x7f, 0xff],
};

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; n: number }
  | { op: 'duplicate'; at: number; n: number }
  | { op: 'length'; token: number; how: number; raw: number }
  | { op: 'confuse'; token: number; family: number; pick: number }
  | { op: 'splice'; token: number; snippet: number };

/** Values that stress the decoder, spliced in place of a value: deep nesting, huge declared sizes, odd formats. */
const SNIPPETS = [
  '91'.repeat(120) + 'c0',
  '81a161'.repeat(120) + 'c0',
  'dd000f4240'.repeat(40),
  'dcffff'.repeat(30),
  'dfffffffff',
  'dbffffffff',
  'c6ffffffff',
  'c9ffffffff01',
  'd6ff00000000',
  'c7030100ff00',
  'c70cff' + '00'.repeat(12),
  'd4ff00',
  'cf0000000000000005',
  'd3ffffffffffffffff',
  'cb7ff8000000000000',
  'cb8000000000000000',
  'ca7f800000',
  '81c0c0',
  '8191c0c0',
  '81a95f5f70726f746f5f5f01',
  'a3eda080',
  'c1',
  '',
].map((h) => bytes(h));

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 12 }) }),
  fc.record({ op: fc.constant('length' as const), token: fc.nat(), how: fc.nat(6), raw: fc.nat() }),
  fc.record({ op: fc.constant('confuse' as const), token: fc.nat(), family: fc.nat(4), pick: fc.nat() }),
  fc.record({ op: fc.constant('splice' as const), token: fc.nat(), snippet: fc.nat(SNIPPETS.length - 1) }),
);

const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

function writeLength(b: Uint8Array, t: Token, how: number, raw: number): void {
  const w = t.lengthWidth!;
  const at = t.lengthAt!;
  if (w === 0) {
    const mask = t.head >= 0xa0 ? 0x1f : 0x0f; // fixstr: 5 bits; fixarray/fixmap: 4 bits
    b[at] = (t.head & ~mask) | (raw & mask);
    return;
  }
  if (at + w > b.length) return;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const old = w === 1 ? view.getUint8(at) : w === 2 ? view.getUint16(at) : view.getUint32(at);
  const max = 2 ** (8 * w) - 1;
  const value = [0, 1, old + 1, Math.max(0, old - 1), max, max >>> 1, raw][how]! % (max + 1);
  if (w === 1) view.setUint8(at, value);
  else if (w === 2) view.setUint16(at, value);
  else view.setUint32(at, value);
}

function mutate(seed: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b: Uint8Array = Uint8Array.from(seed);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : 'at' in m ? m.at % (b.length + 1) : 0;
    switch (m.op) {
      case 'flip':
        if (at < b.length) b[at] = b[at]! ^ (1 << m.bit);
        break;
      case 'set':
        if (at < b.length) b[at] = m.byte;
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
      case 'insert':
        b = cat(b.subarray(0, at), m.bytes, b.subarray(at));
        break;
      case 'delete':
        b = cat(b.subarray(0, at), b.subarray(at + m.n));
        break;
      case 'duplicate':
        b = cat(b.subarray(0, at + m.n), b.subarray(at));
        break;
      default: {
        const ts = tokens(b);
        if (ts.length === 0) break;
        const t = ts[m.token % ts.length]!;
        if (m.op === 'length') {
          if (t.lengthWidth !== undefined) writeLength(b, t, m.how, m.raw);
          else b[t.at] = 0x90 | (m.raw & 0x0f);
        } else if (m.op === 'confuse') {
          const family = Object.values(CONFUSIONS)[m.family]!;
          const head = family[m.pick % family.length]!;
          b[t.at] = head < 0xc0 && t.head < 0xc0 ? head | (t.head & (head >= 0xa0 ? 0x1f : 0x0f)) : head;
        } else {
          const end = ts[(m.token % ts.length) + 1]?.at ?? b.length; // replaces the head (and, for a scalar, the value)
          b = cat(b.subarray(0, t.at), SNIPPETS[m.snippet]!, b.subarray(end));
        }
      }
    }
  }
  return b;
}

const vectors = (JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url), 'utf8')) as { hex: string }[]).map((v) => bytes(v.hex));
const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

describe('fuzz: random and mutated frames get a frame or a typed ProtocolViolation, and the codec keeps working', () => {
  // Most inputs fail, and an Error's stack trace costs more than the decode itself under Jest: none
  // is read here (failures are reported by message).
  const stackTraceLimit = Error.stackTraceLimit;
  beforeAll(() => {
    Error.stackTraceLimit = 0;
  });
  afterAll(() => {
    Error.stackTraceLimit = stackTraceLimit;
  });

  it('30,000 random byte strings (half of them starting like a frame)', () => {
    const plausible = fc
      .tuple(fc.integer({ min: 0x92, max: 0x9f }), fc.integer({ min: 0, max: 9 }), fc.uint8Array({ maxLength: 40 }))
      .map(([a, t, rest]) => cat(Uint8Array.of(a, t), rest));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 48 }), plausible), (input) => checkInput(input)),
      params(30_000),
    );
  });

  it('30,000 mutations of the test vectors (docs/vectors.json)', () => {
    fc.assert(
      fc.property(fc.nat(vectors.length - 1), mutationsArb, (i, ms) => checkInput(mutate(vectors[i]!, ms))),
      params(30_000),
    );
  });

  /** Encoded arbitrary frames to mutate: drawn once per run (a new sample each run, or FUZZ_SEED's). */
  let pool: Uint8Array[] = [];
  beforeAll(() => {
    const encoder = new FrameCodec();
    pool = fc.sample(frameArb, { numRuns: 3000, ...(seedFromEnv === undefined ? {} : { seed: Number(seedFromEnv) }) }).map((f) => encoder.encode(f));
  });

  it('30,000 mutations of 3,000 arbitrary valid frames encoded by FrameCodec', () => {
    fc.assert(
      fc.property(fc.nat(pool.length - 1), mutationsArb, (i, ms) => checkInput(mutate(pool[i]!, ms))),
      params(30_000),
    );
  });

  it('10,000 length-field corruptions and type confusions of any value of those frames', () => {
    const targeted = fc.oneof(
      fc.record({ op: fc.constant('length' as const), token: fc.nat(), how: fc.nat(6), raw: fc.nat() }),
      fc.record({ op: fc.constant('confuse' as const), token: fc.nat(), family: fc.nat(4), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.nat(pool.length - 1), fc.array(targeted, { minLength: 1, maxLength: 2 }), (i, ms) => checkInput(mutate(pool[i]!, ms))),
      params(10_000),
    );
  });

  it('checked at least 100,000 inputs in all', () => {
    expect(inputs).toBeGreaterThanOrEqual(100_000);
  });

  it('the mutations reach the decoder limits and guards, not only the first checks', () => {
    // Not a property: evidence that the inputs above exercised the interesting failures.
    const seen = [...reasons].join('\n');
    for (const reason of ['Insufficient data', 'Max depth exceeded', 'Insufficient data: array length', 'Max length exceeded', 'Extra N of N', 'Unrecognized type byte']) {
      expect(seen).toContain(reason);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// maxDepth and the declared-size check
// ---------------------------------------------------------------------------------------------

/** `n` nested one-element arrays around nil: nil is at depth n + 1 counting from the value. */
const nestedArrays = (n: number): string => '91'.repeat(n) + 'c0';
/** `n` nested one-entry maps {"a": …} around nil. */
const nestedMaps = (n: number): string => '81a161'.repeat(n) + 'c0';

const nest = (n: number, inner: unknown = null): unknown => (n === 0 ? inner : [nest(n - 1, inner)]);

describe('maxDepth', () => {
  it('defaults to 100, the encoder maxDepth', () => {
    expect(DEFAULT_DECODER_LIMITS.maxDepth).toBe(100);
  });

  it.each([
    ['arrays', nestedArrays],
    ['maps', nestedMaps],
  ])('accepts a NEXT value of %s nested to depth 100 exactly, and refuses depth 101 with a precise message for the call', (_kind, nested) => {
    const codec = new FrameCodec();
    // [3, 5, v]: the frame is depth 1, v depth 2; 98 containers put the nil at depth 100.
    expect(codec.decode(bytes(`930305${nested(98)}`))).toMatchObject({ type: FrameType.NEXT, id: 5 });
    const v = violation(() => codec.decode(bytes(`930305${nested(99)}`)));
    expect(v.message).toBe('frame is not valid msgpack: Max depth exceeded: nesting depth (101) > maxDepth (100)');
    expect(v.id).toBe(5);
    expect(v.frameType).toBe(FrameType.NEXT);
    expect(codec.decode(bytes('920603'))).toEqual({ type: FrameType.CANCEL, id: 3 });
  });

  it('counts depth as the encoder does: what decodes can be encoded back in the same place, and nothing else', () => {
    const codec = new FrameCodec();
    const anyDepth = new Encoder({ maxDepth: 10_000 });
    const shape = fc.array(fc.constantFrom('array', 'map', 'wide'), { minLength: 90, maxLength: 110 });
    fc.assert(
      fc.property(shape, fc.constantFrom(null, [], {}, 1), fc.constantFrom(FrameType.NEXT, FrameType.REQUEST, FrameType.ERROR), (levels, inner, type) => {
        let value: unknown = inner;
        for (const level of levels) value = level === 'array' ? [value] : level === 'map' ? { k: value } : [1, value];
        const frame: unknown[] = type === FrameType.NEXT ? [3, 7, value] : type === FrameType.REQUEST ? [1, 7, 'p', null, { h: { x: value } }] : [5, 7, 'C', 'm', value];
        const wire = anyDepth.encode(frame);
        let decoded: Frame | undefined;
        try {
          decoded = codec.decode(wire);
        } catch (e) {
          expect((e as Error).message).toMatch(/Max depth exceeded: nesting depth \(101\) > maxDepth \(100\)$/);
        }
        let encodable = true;
        try {
          new Encoder().encode(frame); // the encoder's default maxDepth, 100
        } catch {
          encodable = false;
        }
        expect(decoded !== undefined).toBe(encodable);
        if (decoded) expect(() => codec.encode(decoded)).not.toThrow();
      }),
      params(500),
    );
  });

  it('applies to every part of a frame: pattern, payload, meta, headers, error data', () => {
    const codec = new FrameCodec({ maxDepth: 4 });
    const deep = nest(3); // [[[null]]]: at depth 2, its nil is at depth 5
    const frames: unknown[][] = [
      [1, 1, { a: deep }, null],
      [1, 3, 'p', deep],
      [1, 5, 'p', null, { h: { a: deep } }],
      [2, 'e', deep],
      [3, 7, deep],
      [4, 9, deep],
      [5, 11, 'C', 'm', deep],
    ];
    for (const frame of frames) {
      const v = violation(() => codec.decode(new Encoder().encode(frame)));
      expect(v.message).toMatch(/Max depth exceeded: nesting depth \(5\) > maxDepth \(4\)$/);
      expect(v.id).toBe(frame[0] === 2 ? 0 : frame[1]);
    }
    expect(codec.decode(new Encoder().encode([3, 7, nest(2)]))).toEqual({ type: FrameType.NEXT, id: 7, value: nest(2) });
  });

  it('maxDepth 2 allows flat frames only; Infinity disables the limit', () => {
    const flat = new FrameCodec({ maxDepth: 2 });
    expect(flat.decode(bytes('930305a161'))).toEqual({ type: FrameType.NEXT, id: 5, value: 'a' });
    expect(flat.decode(bytes('93030590'))).toEqual({ type: FrameType.NEXT, id: 5, value: [] }); // empty: nothing at depth 3
    expect(violation(() => flat.decode(bytes('9303059101'))).message).toContain('nesting depth (3) > maxDepth (2)');
    const unlimited = new FrameCodec({ maxDepth: Infinity });
    const frame = unlimited.decode(bytes(`930305${nestedArrays(100_000)}`));
    let depth = 0;
    for (let v = (frame as { value: unknown }).value; Array.isArray(v); v = v[0] as unknown) depth++;
    expect(depth).toBe(100_000);
  });

  it('fails a frame of a million nested arrays at the limit, fast and without building them', () => {
    const codec = new FrameCodec();
    const input = bytes(`930305${nestedArrays(1_000_000)}`);
    const v = violation(() => codec.decode(input));
    expect(v.message).toContain('Max depth exceeded: nesting depth (101) > maxDepth (100)');
    expect(v.id).toBe(5);
  });

  it('the fallback check of decoded values (for other library internals) agrees with the built-in guard', () => {
    expect(guardDecoder(new Decoder(), 100)).toBe(true);
    expect(guardDecoder({}, 100)).toBe(false); // not a Decoder as codec.ts knows it: nothing is wrapped
    const anyDepth = new Encoder({ maxDepth: 10_000 });
    const levels = fc.array(fc.constantFrom('array', 'map', 'empty-array', 'pair'), { minLength: 0, maxLength: 14 });
    fc.assert(
      fc.property(levels, fc.integer({ min: 2, max: 12 }), (shape, maxDepth) => {
        let value: unknown = 0;
        for (const level of shape) value = level === 'array' ? [value] : level === 'map' ? { k: value } : level === 'pair' ? [[], value] : [];
        const wire = anyDepth.encode([3, 1, value]);
        const guarded = new Decoder();
        guardDecoder(guarded, maxDepth);
        const outcome = (fn: () => unknown): string => {
          try {
            fn();
            return 'ok';
          } catch (e) {
            return (e as Error).message;
          }
        };
        expect(outcome(() => checkDepth(new Decoder().decode(wire), maxDepth))).toBe(outcome(() => guarded.decode(wire)));
      }),
      params(2000),
    );
  });
});

describe('declared sizes the frame cannot hold', () => {
  it('a 5 KB frame of nested array 32 headers claiming 1,000,000 elements each fails at once, allocating nothing (it exhausted the heap)', () => {
    for (const codec of [new FrameCodec(), new FrameCodec({ maxDepth: Infinity })]) {
      const input = bytes(`930305${'dd000f4240'.repeat(1000)}`);
      global.gc?.();
      const before = process.memoryUsage().heapUsed;
      const v = violation(() => codec.decode(input));
      const grown = process.memoryUsage().heapUsed - before;
      expect(v.message).toBe('frame is not valid msgpack: Insufficient data: array length (1000000) and the values still due around it need at least 1000000 bytes, 4995 left');
      expect(v.id).toBe(5);
      expect(grown).toBeLessThan(20 * 1024 * 1024); // before the check: 8 MB per level, 8 GB in all
    }
  });

  it('counts the elements still due in the enclosing arrays and maps', () => {
    const codec = new FrameCodec();
    const inner = 'dc0041' + '01'.repeat(65); // an array of 65 elements, complete
    // [3, 5, [<inner>, 1]]: the inner array leaves exactly one byte for the outer one's last element
    expect(codec.decode(bytes(`930305 92 ${inner} 01`.replace(/ /g, '')))).toMatchObject({ type: FrameType.NEXT, id: 5 });
    const v = violation(() => codec.decode(bytes(`930305 92 ${inner}`.replace(/ /g, ''))));
    expect(v.message).toBe('frame is not valid msgpack: Insufficient data: array length (65) and the values still due around it need at least 66 bytes, 65 left');
    expect(v.id).toBe(5);
    // in a map: the value of the entry being read and the entries after it (two bytes each at least)
    const m = violation(() => codec.decode(bytes(`930305 82 a161 ${inner}`.replace(/ /g, ''))));
    expect(m.message).toBe('frame is not valid msgpack: Insufficient data: array length (65) and the values still due around it need at least 67 bytes, 65 left');
    expect(codec.decode(bytes(`930305 82 a161 ${inner} a162 01`.replace(/ /g, '')))).toMatchObject({ type: FrameType.NEXT, id: 5 });
  });

  it('refuses a map that declares more entries than the bytes left can hold (two per entry), and keeps the length limits first', () => {
    const codec = new FrameCodec();
    const v = violation(() => codec.decode(bytes('930305de0041a161')));
    expect(v.message).toBe('frame is not valid msgpack: Insufficient data: map length (65) and the values still due around it need at least 130 bytes, 2 left');
    // up to 64 elements, a header is not checked (64 slots per level cost nothing): such a frame fails later, as truncated
    expect(violation(() => codec.decode(bytes('930305de0040a161'))).message).toBe('frame is not valid msgpack: Offset is outside the bounds of the DataView');
    expect(violation(() => codec.decode(bytes('930305ddffffffff'))).message).toContain('maxArrayLength (1000000)');
    expect(violation(() => codec.decode(bytes('930305dfffffffff'))).message).toContain('maxMapLength');
  });

  it('never refuses a valid frame: every encoded arbitrary frame decodes (see the round trip), including large flat arrays', () => {
    const codec = new FrameCodec();
    for (const n of [64, 65, 1000, 65_536, 1_000_000]) {
      const value = new Array<number>(n).fill(1);
      expect((codec.decode(codec.encode({ type: FrameType.NEXT, id: 1, value })) as { value: unknown[] }).value).toHaveLength(n);
    }
  });

  it('the frame array itself: a header declaring more elements than follow fails as insufficient data, still naming the call', () => {
    const v = violation(() => new FrameCodec().decode(bytes('dc00ff0305')));
    expect(v.message).toBe('frame is not valid msgpack: Insufficient data: array length (255) and the values still due around it need at least 255 bytes, 2 left');
    expect(v.id).toBe(5);
  });
});
