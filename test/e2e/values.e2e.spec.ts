import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { randomBytes } from 'node:crypto';
import { all, errorOf, first, startService, type TestService } from '../support/helpers.js';

@Controller()
class ValuesController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  @MessagePattern('chunks')
  async *chunks(@Payload() sizes: number[]): AsyncGenerator<Buffer | string> {
    for (const [i, size] of sizes.entries()) yield Buffer.alloc(size, i + 1);
    yield 'end';
  }

  @MessagePattern('describe')
  describe(@Payload() data: Record<string, unknown>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(data)) {
      out[k] = Buffer.isBuffer(v) ? 'Buffer' : v instanceof Date ? 'Date' : v === null ? 'null' : typeof v;
    }
    return out;
  }
}

describe('values on the wire', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [ValuesController] });
  });
  afterAll(() => svc.close());

  it('round-trips a Buffer byte for byte, arriving as a Buffer on both sides', async () => {
    const bytes = randomBytes(256 * 1024);
    const back = (await first(svc.client().send('echo', bytes))) as Buffer;
    expect(Buffer.isBuffer(back)).toBe(true);
    expect(back.equals(bytes)).toBe(true);
  });

  it('streams large binary items (sent without a copy) intact and in order, between small items', async () => {
    const sizes = [64 * 1024, 100, 300 * 1024, 64 * 1024 - 1, 1024 * 1024];
    const items = await all(svc.client().send<Buffer | string>('chunks', sizes));
    expect(items).toHaveLength(sizes.length + 1);
    sizes.forEach((size, i) => {
      const b = items[i] as Buffer;
      expect(Buffer.isBuffer(b)).toBe(true);
      expect(b.length).toBe(size);
      expect(b.every((x) => x === i + 1)).toBe(true);
    });
    expect(items[sizes.length]).toBe('end');
  });

  it("a large binary answer over the peer's maxPayload fails with RESOURCE_EXHAUSTED, not a dropped connection", async () => {
    const small = await startService({ controllers: [ValuesController] }, { maxPayload: 200 * 1024 });
    try {
      const c = small.client({ maxPayload: 16 * 1024 * 1024 });
      const err = await errorOf(c.send('chunks', [300 * 1024]));
      expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/exceeds maxPayload/) });
      expect(await first(c.send('echo', 'still connected'))).toBe('still connected');
    } finally {
      await small.close();
    }
  });

  it('round-trips a Uint8Array (as Buffer) and nested binaries', async () => {
    const u8 = Uint8Array.from([0, 1, 2, 253, 254, 255]);
    const back = (await first(svc.client().send('echo', { file: { name: 'a.bin', data: u8 }, list: [u8] }))) as {
      file: { name: string; data: Buffer };
      list: Buffer[];
    };
    expect([...back.file.data]).toEqual([...u8]);
    expect([...back.list[0]!]).toEqual([...u8]);
  });

  it('the handler sees Buffer and Date types, not their JSON shadows', async () => {
    expect(await first(svc.client().send('describe', { b: Buffer.from('x'), d: new Date(0), n: 1, s: 's', z: null }))).toEqual({
      b: 'Buffer',
      d: 'Date',
      n: 'number',
      s: 'string',
      z: 'null',
    });
  });

  it('round-trips Date with millisecond precision (msgpack timestamp)', async () => {
    const d = new Date('2026-11-21T06:00:00.123Z');
    const back = (await first(svc.client().send('echo', { d }))) as { d: Date };
    expect(back.d).toBeInstanceOf(Date);
    expect(back.d.getTime()).toBe(d.getTime());
  });

  it('round-trips bigint within 64 bits and keeps numbers as numbers', async () => {
    const v = { big: 2n ** 60n + 1n, neg: -(2n ** 62n), num: 2 ** 40, small: 7 };
    expect(await first(svc.client().send('echo', v))).toEqual(v);
  });

  it('sends a Map as a map (plain object on arrival) and a Set as an array', async () => {
    const back = await first(
      svc.client().send('echo', {
        m: new Map([
          ['a', 1],
          ['b', 2],
        ]),
        s: new Set([1, 2, 3]),
      }),
    );
    expect(back).toEqual({ m: { a: 1, b: 2 }, s: [1, 2, 3] });
  });

  it('drops undefined properties (like JSON) and keeps null', async () => {
    const back = await first(svc.client().send('echo', { a: undefined, b: null, c: [undefined, 1] }));
    expect(back).toEqual({ b: null, c: [null, 1] });
    expect(Object.keys(back as object)).toEqual(['b', 'c']);
  });

  it('round-trips unicode strings, floats, and deep structures', async () => {
    const v = { s: 'héllo ✓ 𝄞', f: 0.1 + 0.2, neg: -1.5e300, deep: { a: [{ b: [{ c: 'd' }] }] }, empty: {}, arr: [] };
    expect(await first(svc.client().send('echo', v))).toEqual(v);
  });
});
