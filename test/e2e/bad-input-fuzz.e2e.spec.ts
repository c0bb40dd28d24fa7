/**
 * Bad input end to end, beyond test/e2e/bad-input.e2e.spec.ts and protocol-doc.e2e.spec.ts: a raw
 * `ws` peer sends truncated msgpack, garbage, unknown frame types, huge declared lengths, nesting
 * beyond maxDepth, duplicate call ids, credit beyond 2^53-1 and a burst of random and mutated frames
 * to a real Nest service. Each gets the answer docs/PROTOCOL.md section 14 documents, a second,
 * well-behaved client keeps making calls on its own connection during and after, and the server's
 * memory does not jump.
 */
import { readFileSync } from 'node:fs';
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { Encoder, encode } from '@msgpack/msgpack';
import { type Observable, range } from 'rxjs';
import { WsMsgpackErrorCode } from '../../src/index.js';
import { errorOf, first, startService, until, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

const MAX_ID = Number.MAX_SAFE_INTEGER;
const MB = 1024 * 1024;
const DEPTH_101 = 'frame is not valid msgpack: Max depth exceeded: nesting depth (101) > maxDepth (100)';

/** Gates of the running 'gate' calls: resolve one to let its handler return. */
const gates: ((value: string) => void)[] = [];

@Controller()
class FuzzController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  /** A response stream of 1..n. */
  @MessagePattern('count')
  count(@Payload() n: number): Observable<number> {
    return range(1, n);
  }

  @MessagePattern('invalid-date')
  invalidDate(): Date {
    return new Date(Number.NaN);
  }

  @MessagePattern('gate')
  gate(): Promise<string> {
    return new Promise((resolve) => gates.push(resolve));
  }
}

/**
 * Encodes as this implementation does: integers from 2^32 up as float 64. (The plain `encode` that
 * RawPeer.send uses writes them as uint 64, which protocol fields refuse: docs/PROTOCOL.md section 3.)
 */
const wire = (value: unknown): Uint8Array => new Encoder({ useBigInt64: true }).encode(value);

const isFor = (id: number) => (f: unknown[]) => f[1] === id;
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/ /g, ''), 'hex'));
const cat = (...parts: (ArrayLike<number> | string)[]): Uint8Array => {
  const chunks = parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
};
/** msgpack str header + bytes of a short string. */
const str = (s: string): Uint8Array => cat([0xa0 | s.length], s);

/** `n` nested one-element arrays around nil, `n` nested one-entry maps {"a": …} around nil. */
const nestedArrays = (n: number): Uint8Array => new Uint8Array(n + 1).fill(0x91, 0, n).fill(0xc0, n);
const nestedMaps = (n: number): Uint8Array => {
  const b = new Uint8Array(3 * n + 1);
  for (let i = 0; i < n; i++) b.set([0x81, 0xa1, 0x61], 3 * i);
  b[3 * n] = 0xc0;
  return b;
};
const nest = (n: number): unknown => (n === 0 ? null : [nest(n - 1)]);

/** Heap and ArrayBuffer bytes after a full collection (the test script runs node with --expose-gc). */
function memory(): number {
  global.gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A well-behaved client of its own making echo calls in a loop until stopped; every answer must be right. */
function wellBehaved(svc: TestService): { stop(): Promise<void> } {
  const client = svc.client();
  let running = true;
  let calls = 0;
  const failures: unknown[] = [];
  const loop = (async () => {
    while (running) {
      const n = calls++;
      try {
        const answer = await first(client.send('echo', { n, s: 'ok' }));
        if (JSON.stringify(answer) !== JSON.stringify({ n, s: 'ok' })) failures.push(answer);
      } catch (e) {
        failures.push(e);
      }
    }
  })();
  return {
    async stop() {
      await until(() => calls >= 3, undefined, 'three calls of the well-behaved client');
      running = false;
      await loop;
      expect(failures).toEqual([]);
      expect(await first(client.send('echo', 'after'))).toBe('after');
    },
  };
}

describe('bad input, end to end: documented answers, other connections unaffected, bounded memory', () => {
  let svc: TestService;
  let other: { stop(): Promise<void> };
  let before: number;

  beforeAll(async () => {
    // Default decoder limits (maxArrayLength 1,000,000, maxDepth 100); frames up to 2 MiB.
    svc = await startService({ controllers: [FuzzController] }, { maxPayload: 2 * MB });
  });
  afterAll(() => svc.close());

  beforeEach(() => {
    other = wellBehaved(svc);
    before = memory();
  });
  afterEach(async () => {
    await other.stop();
    expect(memory() - before).toBeLessThan(50 * MB);
  });

  it('truncated msgpack: answered on the call when the header is readable, on id 0 when not', async () => {
    const peer = await RawPeer.open(svc.url);
    const request = encode([1, 3, 'echo', 'abcdef']);
    peer.sendBytes(request.subarray(0, request.length - 1));
    expect(await peer.next(isFor(3))).toEqual([5, 3, 'PROTOCOL_ERROR', 'frame is not valid msgpack: Insufficient data']);
    peer.sendBytes(hex('93 01')); // [1, … : the type is there, the id is not
    expect(await peer.next(isFor(0))).toEqual([5, 0, 'PROTOCOL_ERROR', 'frame is not valid msgpack: Offset is outside the bounds of the DataView']);
    peer.sendBytes(hex('dc 0100 01')); // an array 16 of 256 elements with one byte: refused at its header
    expect(await peer.next(isFor(0))).toEqual([
      5,
      0,
      'PROTOCOL_ERROR',
      'frame is not valid msgpack: Insufficient data: array length (256) and the values still due around it need at least 256 bytes, 1 left',
    ]);
    peer.sendBytes(encode([3, 7, 'x'.repeat(40)]).subarray(0, 20)); // a NEXT for a call never made: answered on its id
    expect((await peer.next(isFor(7))).slice(0, 3)).toEqual([5, 7, 'PROTOCOL_ERROR']);
    peer.send([1, 5, 'echo', 'still here']);
    expect(await peer.next(isFor(5))).toEqual([4, 5, 'still here']);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('garbage and empty messages: a connection-level PROTOCOL_ERROR each, the connection stays open', async () => {
    const peer = await RawPeer.open(svc.url);
    const garbage = ['deadbeef', 'ffffffffffffffffffff', 'c1c1c1', '00', 'a3616263', '', '80', 'd6ff00000000'];
    for (const g of garbage) peer.sendBytes(hex(g));
    for (let i = 0; i < garbage.length; i++) {
      const err = await peer.next(isFor(0));
      expect(err.slice(0, 3)).toEqual([5, 0, 'PROTOCOL_ERROR']);
      expect(err[3]).toMatch(/^(frame is not valid msgpack: |frame must be a msgpack array of at least 2 elements$)/);
    }
    peer.send([1, 1, 'echo', 'alive']);
    expect(await peer.next(isFor(1))).toEqual([4, 1, 'alive']);
    expect(peer.closed).toBeUndefined();
    peer.close();
  });

  it('unknown frame types of every kind are answered on the id when it is valid', async () => {
    const peer = await RawPeer.open(svc.url);
    const cases: [Uint8Array, string][] = [
      [hex('92 00 01'), 'unknown frame type 0'],
      [hex('92 08 03'), 'unknown frame type 8'],
      [hex('92 ff 05'), 'unknown frame type -1'],
      [hex('92 cb3ff8000000000000 07'), 'unknown frame type 1.5'],
      [hex('92 c0 09'), 'unknown frame type null'],
      [cat([0x92], str('x'), [0x0b]), 'unknown frame type "x"'],
      [hex('92 cf0000000000000001 0d'), 'unknown frame type 1'], // type 1 as uint 64: a bigint
      [hex('93 7f 0f c0'), 'unknown frame type 127'],
    ];
    cases.forEach(([frame]) => peer.sendBytes(frame));
    for (const [i, [, message]] of cases.entries()) expect(await peer.next(isFor(2 * i + 1))).toEqual([5, 2 * i + 1, 'PROTOCOL_ERROR', message]);
    peer.sendBytes(hex('92 09 00'));
    expect(await peer.next(isFor(0))).toEqual([5, 0, 'PROTOCOL_ERROR', 'frame type 9: call id must be an integer in 1..2^53-1']);
    peer.close();
  });

  it('huge declared lengths fail at once with the limit named, and allocate nothing (the nested array 32 frame exhausted the heap)', async () => {
    const peer = await RawPeer.open(svc.url);
    const cases: [string, string][] = [
      ['93 03 01 dbffffffff', 'Max length exceeded: UTF-8 byte length (4294967295) > maxStrLength (16777216)'],
      ['93 03 03 c6ffffffff', 'Max length exceeded: bin length (4294967295) > maxBinLength (16777216)'],
      ['93 03 05 ddffffffff', 'Max length exceeded: array length (4294967295) > maxArrayLength (1000000)'],
      ['93 03 07 dfffffffff', 'Max length exceeded: map length (4294967295) > maxMapLengthLength (100000)'],
      ['93 03 09 c9ffffffff01', 'Max length exceeded: ext length (4294967295) > maxExtLength (1048576)'],
      // within maxArrayLength, but the frame cannot hold it: refused before `new Array(1000000)`
      ['93 03 0b dd000f4240 01', 'Insufficient data: array length (1000000) and the values still due around it need at least 1000000 bytes, 1 left'],
      ['93 03 0d deffff a161', 'Insufficient data: map length (65535) and the values still due around it need at least 131070 bytes, 2 left'],
    ];
    for (const [h] of cases) peer.sendBytes(hex(h));
    for (const [i, [, reason]] of cases.entries()) {
      expect(await peer.next(isFor(2 * i + 1))).toEqual([5, 2 * i + 1, 'PROTOCOL_ERROR', `frame is not valid msgpack: ${reason}`]);
    }
    // 1,000 nested array 32 headers of 1,000,000 elements each: 5 KB that made the decoder allocate 8 GB
    const bomb = cat(hex('93 03 0f'), ...Array<Uint8Array>(1000).fill(hex('dd000f4240')));
    for (let i = 0; i < 20; i++) peer.sendBytes(bomb);
    for (let i = 0; i < 20; i++) {
      const err = await peer.next(isFor(15));
      expect(err[3]).toBe('frame is not valid msgpack: Insufficient data: array length (1000000) and the values still due around it need at least 1000000 bytes, 4995 left');
    }
    peer.send([1, 17, 'echo', 'alive']);
    expect(await peer.next(isFor(17))).toEqual([4, 17, 'alive']);
    peer.close();
  });

  it('nesting beyond maxDepth (100) is refused for the call, in payloads, patterns and headers; at the limit it echoes back', async () => {
    const peer = await RawPeer.open(svc.url);
    const request = (id: number, payload: Uint8Array): Uint8Array => cat([0x94, 0x01, id], str('echo'), payload);
    // [1, id, "echo", v]: v is at depth 2, so 98 arrays or maps put the innermost nil at depth 100.
    peer.sendBytes(request(1, nestedArrays(98)));
    expect(await peer.next(isFor(1))).toEqual([4, 1, nest(98)]);
    peer.sendBytes(request(3, nestedMaps(98)));
    expect(((await peer.next(isFor(3))) as unknown[]).slice(0, 2)).toEqual([4, 3]);
    // One more level: before the limit, the handler ran and its answer failed (INTERNAL: "Too deep objects in depth 101").
    peer.sendBytes(request(5, nestedArrays(99)));
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', DEPTH_101]);
    peer.sendBytes(request(7, nestedMaps(99)));
    expect(await peer.next(isFor(7))).toEqual([5, 7, 'PROTOCOL_ERROR', DEPTH_101]);
    // A pattern (element 2) and headers (meta.h, element 4 → depth 3): same limit, same answer.
    peer.sendBytes(cat([0x94, 0x01, 0x09], nestedMaps(99), [0xc0]));
    expect(await peer.next(isFor(9))).toEqual([5, 9, 'PROTOCOL_ERROR', DEPTH_101]);
    peer.sendBytes(cat([0x95, 0x01, 0x0b], str('echo'), [0xc0, 0x81], str('h'), nestedMaps(98)));
    expect(await peer.next(isFor(11))).toEqual([5, 11, 'PROTOCOL_ERROR', DEPTH_101]);
    // 1.5 million levels in one 1.5 MB message: refused at level 100, nothing deeper is built.
    for (const id of [13, 15]) peer.sendBytes(request(id, id === 13 ? nestedArrays(1_500_000) : nestedMaps(500_000)));
    expect(await peer.next(isFor(13))).toEqual([5, 13, 'PROTOCOL_ERROR', DEPTH_101]);
    expect(await peer.next(isFor(15))).toEqual([5, 15, 'PROTOCOL_ERROR', DEPTH_101]);
    // An EVENT has no call: its error is connection-level.
    peer.sendBytes(cat([0x93, 0x02], str('ev'), nestedArrays(99)));
    expect(await peer.next(isFor(0))).toEqual([5, 0, 'PROTOCOL_ERROR', DEPTH_101]);
    peer.sendBytes(request(17, str('alive')));
    expect(await peer.next(isFor(17))).toEqual([4, 17, 'alive']);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('a second REQUEST with the id of a running call fails that call (one answer only); a lower id is refused', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 5, 'gate', null]);
    await until(() => gates.length === 1, undefined, 'the gate handler to run');
    peer.send([1, 5, 'echo', 'duplicate']);
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', 'REQUEST id 5 was already used (ids must increase)']);
    gates.splice(0).forEach((open) => open('too late')); // the aborted call's handler returns: nothing is sent for it
    peer.send([1, 9, 'echo', 'nine']);
    expect(await peer.next(isFor(9))).toEqual([4, 9, 'nine']);
    peer.send([1, 7, 'echo', 'seven']);
    expect(await peer.next(isFor(7))).toEqual([5, 7, 'PROTOCOL_ERROR', 'REQUEST id 7 was already used (ids must increase)']);
    peer.send([1, 11, 'echo', 'eleven']);
    expect(await peer.next(isFor(11))).toEqual([4, 11, 'eleven']);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('CANCEL and CREDIT naming no call, at the largest ids of either side, are dropped without an answer', async () => {
    const peer = await RawPeer.open(svc.url);
    for (const id of [MAX_ID, MAX_ID - 1, 2 ** 32 + 1, 2 ** 32 + 2]) {
      peer.sendBytes(wire([6, id]));
      peer.sendBytes(wire([7, id, 5]));
    }
    peer.send([1, 1, 'echo', 'alive']);
    expect(await peer.next(isFor(1))).toEqual([4, 1, 'alive']);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('a CREDIT count beyond 2^53-1 is a PROTOCOL_ERROR for the call: a running stream is aborted, an unknown id still answered', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.sendBytes(wire([7, 1, 2 ** 53])); // float 64 9007199254740992: not a safe integer
    expect(await peer.next(isFor(1))).toEqual([5, 1, 'PROTOCOL_ERROR', 'CREDIT: credit must be a positive integer']);
    peer.sendBytes(hex('93 07 03 cf0020000000000000')); // 2^53 as uint 64: a bigint
    expect(await peer.next(isFor(3))).toEqual([5, 3, 'PROTOCOL_ERROR', 'CREDIT: credit must be a positive integer']);
    peer.send([1, 5, 'count', 10, { n: 1 }]);
    expect(await peer.next(isFor(5))).toEqual([3, 5, 1]);
    peer.sendBytes(wire([7, 5, 2 ** 60]));
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', 'CREDIT: credit must be a positive integer']);
    peer.send([1, 7, 'echo', 'alive']);
    expect(await peer.next(isFor(7))).toEqual([4, 7, 'alive']);
    expect(peer.frames).toEqual([]); // no item of the aborted stream 5 after its ERROR
    peer.close();
  });

  it('credits adding up beyond 2^53-1 keep the stream going: the sender treats them as unlimited', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'count', 20, { n: 1 }]);
    expect(await peer.next(isFor(1))).toEqual([3, 1, 1]);
    peer.sendBytes(wire([7, 1, MAX_ID]));
    peer.sendBytes(wire([7, 1, MAX_ID])); // the sender's credit is now 2^54 - 2, beyond exact integers
    peer.sendBytes(wire([7, 1, MAX_ID]));
    const items: unknown[] = [];
    for (;;) {
      const f = await peer.next(isFor(1));
      if (f.length > 2) items.push(f[2]);
      if (f[0] === 4) break;
      expect(f).toEqual([3, 1, items.at(-1)]);
    }
    expect(items).toEqual(Array.from({ length: 19 }, (_, i) => i + 2));
    // The same from the start: n = 2^53-1, then more.
    peer.sendBytes(wire([1, 3, 'count', 5, { n: MAX_ID }]));
    peer.sendBytes(wire([7, 3, MAX_ID]));
    const rest: unknown[] = [];
    for (let f = await peer.next(isFor(3)); ; f = await peer.next(isFor(3))) {
      if (f.length > 2) rest.push(f[2]);
      if (f[0] === 4) break;
    }
    expect(rest).toEqual([1, 2, 3, 4, 5]);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('an Invalid Date in an answer fails the call with INTERNAL (it went out as 1970-01-01)', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'invalid-date', null]);
    expect(await peer.next(isFor(1))).toEqual([5, 1, 'INTERNAL', 'value could not be encoded as msgpack: an Invalid Date cannot be encoded as a msgpack timestamp']);
    peer.close();
  });

  it('maxDepth is a server option: a server with maxDepth 10 refuses depth 11 and echoes depth 10', async () => {
    const small = await startService({ controllers: [FuzzController] }, { maxDepth: 10 });
    try {
      const peer = await RawPeer.open(small.url);
      peer.sendBytes(cat([0x94, 0x01, 0x01], str('echo'), nestedArrays(8)));
      expect(await peer.next(isFor(1))).toEqual([4, 1, nest(8)]);
      peer.sendBytes(cat([0x94, 0x01, 0x03], str('echo'), nestedArrays(9)));
      expect(await peer.next(isFor(3))).toEqual([5, 3, 'PROTOCOL_ERROR', 'frame is not valid msgpack: Max depth exceeded: nesting depth (11) > maxDepth (10)']);
      peer.close();
    } finally {
      await small.close();
    }
  });

  it('maxDepth is a client option: an answer deeper than the client allows fails the call with PROTOCOL_ERROR', async () => {
    const client = svc.client({ maxDepth: 5 });
    // [4, id, v]: v at depth 2; three arrays put the 1 at depth 5, four at depth 6.
    expect(await first(client.send('echo', [[[1]]]))).toEqual([[[1]]]);
    const err = await errorOf(client.send('echo', [[[[1]]]]));
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.PROTOCOL_ERROR, message: 'frame is not valid msgpack: Max depth exceeded: nesting depth (6) > maxDepth (5)' });
    expect(await first(client.send('echo', 'fine'))).toBe('fine');
  });

  it('a burst of 3,000 random and mutated frames: only well-formed answers, the connection stays up and keeps serving', async () => {
    const peer = await RawPeer.open(svc.url);
    const seeds = (JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url), 'utf8')) as { hex: string }[]).map((v) => hex(v.hex));
    const snippets = [nestedArrays(150), nestedMaps(150), hex('dd000f4240'.repeat(30)), hex('dbffffffff'), hex('dfffffffff'), hex('c1'), hex('cb7ff8000000000000')];
    let state = 0x2545f491;
    const rnd = (n: number): number => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return (state >>> 0) % n;
    };
    for (let i = 0; i < 3000; i++) {
      let b: Uint8Array = Uint8Array.from(seeds[rnd(seeds.length)]!);
      for (let k = 0, rounds = 1 + rnd(3); k < rounds; k++) {
        const at = rnd(b.length + 1);
        const op = rnd(6);
        if (op === 0 && at < b.length) b[at] = b[at]! ^ (1 << rnd(8));
        else if (op === 1) b = b.slice(0, at);
        else if (op === 2) b = cat(b.subarray(0, at), [rnd(256), rnd(256)], b.subarray(at));
        else if (op === 3) b = cat(b.subarray(0, at), snippets[rnd(snippets.length)]!, b.subarray(at));
        else if (op === 4 && at < b.length) b[at] = [0xc4, 0xc7, 0xd9, 0xdc, 0xde, 0xcf, 0xca, 0x90, 0x80][rnd(9)]!;
        else if (op === 5) b = Uint8Array.from({ length: 1 + rnd(40) }, () => rnd(256));
      }
      peer.sendBytes(b);
    }
    // A text message is answered after everything before it; nothing in the burst was text.
    peer.ws.send('done?');
    await peer.next((f) => f[0] === 5 && f[1] === 0 && typeof f[3] === 'string' && f[3].startsWith('text frames'), 'the answer to the text frame');
    expect(peer.closed).toBeUndefined();
    for (const f of peer.frames) {
      expect(Array.isArray(f) && [3, 4, 5, 6, 7].includes(f[0] as number)).toBe(true);
      if (f[0] === 5) expect(typeof f[2] === 'string' && typeof f[3] === 'string').toBe(true);
    }
    expect(peer.frames.filter((f) => f[0] === 5).length).toBeGreaterThan(1000); // most frames were refused
    peer.close();
  });
});
