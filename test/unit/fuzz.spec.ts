import { readFileSync } from 'node:fs';
import { FrameCodec } from '../../src/protocol/codec.js';
import { ProtocolViolation } from '../../src/protocol/errors.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';
import { seeded as prng } from '../support/prng.js';

const vectorHex = (JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url), 'utf8')) as { hex: string }[]).map((v) => v.hex);
const seeds = vectorHex.map((h) => Uint8Array.from(Buffer.from(h, 'hex')));

const codecs = [
  new FrameCodec(),
  new FrameCodec({ binaryAsBuffer: false }),
  new FrameCodec({ maxStrLength: 8, maxBinLength: 8, maxArrayLength: 8, maxMapLength: 4, maxExtLength: 8 }),
];

const isId = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** A decoded frame must have the shape its type promises. */
function shapeProblem(f: Frame): string | undefined {
  switch (f.type) {
    case FrameType.REQUEST:
      if (!isId(f.id) || typeof f.stream !== 'boolean') return 'REQUEST shape';
      if (f.credit !== undefined && !(Number.isSafeInteger(f.credit) && f.credit >= 0)) return 'REQUEST credit';
      if (f.timeout !== undefined && !(Number.isSafeInteger(f.timeout) && f.timeout > 0)) return 'REQUEST timeout';
      return undefined;
    case FrameType.EVENT:
      return 'id' in f ? 'EVENT has an id' : undefined;
    case FrameType.NEXT:
    case FrameType.CANCEL:
      return isId(f.id) ? undefined : 'id';
    case FrameType.COMPLETE:
      return isId(f.id) && typeof f.hasValue === 'boolean' ? undefined : 'COMPLETE shape';
    case FrameType.ERROR:
      return (f.id === 0 || isId(f.id)) && typeof f.code === 'string' && typeof f.message === 'string' ? undefined : 'ERROR shape';
    case FrameType.CREDIT:
      return isId(f.id) && Number.isSafeInteger(f.credit) && f.credit >= 1 ? undefined : 'CREDIT shape';
    default:
      return `unknown type ${String((f as { type: unknown }).type)}`;
  }
}

/** Feeds `input` to every codec; returns a description of anything other than a frame or a ProtocolViolation. */
function check(input: Uint8Array): string | undefined {
  for (const codec of codecs) {
    let frame: Frame;
    try {
      frame = codec.decode(input);
    } catch (e) {
      if (!(e instanceof ProtocolViolation)) return `${e instanceof Error ? e.name : typeof e}: ${e instanceof Error ? e.message : String(e)}`;
      if (!(Number.isSafeInteger(e.id) && e.id >= 0)) return `ProtocolViolation with id ${String(e.id)}`;
      continue;
    }
    const problem = shapeProblem(frame);
    if (problem) return `decoded a malformed frame (${problem})`;
  }
  return undefined;
}

function run(inputs: Iterable<Uint8Array>): { count: number; failures: string[] } {
  let count = 0;
  const failures: string[] = [];
  for (const input of inputs) {
    count++;
    const problem = check(input);
    if (problem && failures.length < 10) failures.push(`${Buffer.from(input).toString('hex')}: ${problem}`);
  }
  return { count, failures };
}

function* randomBytes(n: number, seed: number): Generator<Uint8Array> {
  const r = prng(seed);
  for (let i = 0; i < n; i++) {
    const len = Math.floor(r() * 40);
    const b = new Uint8Array(len);
    for (let j = 0; j < len; j++) b[j] = Math.floor(r() * 256);
    // Half the time start with a plausible frame header so the input gets past the first checks.
    if (len >= 3 && r() < 0.5) {
      b[0] = 0x92 + Math.floor(r() * 4);
      b[1] = 1 + Math.floor(r() * 8);
    }
    yield b;
  }
}

function* mutations(n: number, seed: number): Generator<Uint8Array> {
  const r = prng(seed);
  const int = (max: number): number => Math.floor(r() * max);
  for (let i = 0; i < n; i++) {
    let b = Uint8Array.from(seeds[int(seeds.length)]!);
    const rounds = 1 + int(3);
    for (let k = 0; k < rounds; k++) {
      const op = int(7);
      const at = b.length === 0 ? 0 : int(b.length);
      if (op === 0 && b.length > 0)
        b[at] = b[at]! ^ (1 << int(8)); // flip a bit
      else if (op === 1 && b.length > 0)
        b[at] = int(256); // overwrite a byte
      else if (op === 2)
        b = b.slice(0, at); // truncate
      else if (op === 3)
        b = Uint8Array.from([...b.slice(0, at), int(256), ...b.slice(at)]); // insert
      else if (op === 4 && b.length > 0)
        b = Uint8Array.from([...b.slice(0, at), ...b.slice(at + 1)]); // delete
      else if (op === 5)
        b = Uint8Array.from([...b, ...b.slice(at)]); // duplicate a tail
      else if (op === 6 && b.length > 0) b[0] = 0x90 + int(16); // change the array length
    }
    yield b;
  }
}

/** msgpack snippets that show up in frames, including the awkward ones (64-bit ints, floats, ext, bin). */
const snippets = [
  '01',
  '02',
  '03',
  '04',
  '05',
  '06',
  '07',
  '00',
  '7f',
  'ff',
  'e0',
  'cc80',
  'cd012c',
  'ce00011171',
  'cf0000000000000001',
  'cf0000000000000007',
  'd3ffffffffffffffff',
  'd0ff',
  'cb3ff8000000000000',
  'cb7ff8000000000000',
  'cb41f0000000100000',
  'ca3f800000',
  'c0',
  'c2',
  'c3',
  'a0',
  'a178',
  'a3737570',
  'c403010203',
  'd6ff00000000',
  'd4ff00',
  'd50100ff',
  '80',
  '81a168' + '80',
  '81a16e' + 'cd0100',
  '81a174' + '00',
  '81a173' + 'c3',
  '81a173' + '01',
  '84a16881a161a131a16e08a174cd03e8a173c3',
  '90',
  '9101',
  '81c0c0',
  '81a95f5f70726f746f5f5f01',
  'dc0001c0',
];

function* structured(n: number, seed: number): Generator<Uint8Array> {
  const r = prng(seed);
  const pick = (): string => snippets[Math.floor(r() * snippets.length)]!;
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(r() * 6);
    let hex = (0x90 + len).toString(16);
    for (let j = 0; j < len; j++) hex += j === 0 && r() < 0.7 ? `0${1 + Math.floor(r() * 7)}` : pick();
    yield Uint8Array.from(Buffer.from(hex, 'hex'));
  }
}

describe('fuzz: FrameCodec.decode returns a frame or throws ProtocolViolation, nothing else', () => {
  it('10,000 random byte strings', () => {
    const { count, failures } = run(randomBytes(10_000, 0xc0ffee));
    expect(count).toBe(10_000);
    expect(failures).toEqual([]);
  });

  it('10,000 random mutations of the test vectors', () => {
    const { count, failures } = run(mutations(10_000, 0xbadf00d));
    expect(count).toBe(10_000);
    expect(failures).toEqual([]);
  });

  it('4,000 random frames built from msgpack snippets (64-bit ints, floats, ext, bin, meta maps)', () => {
    const { count, failures } = run(structured(4_000, 42));
    expect(count).toBe(4_000);
    expect(failures).toEqual([]);
  });
});
