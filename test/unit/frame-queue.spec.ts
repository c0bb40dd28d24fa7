import fc from 'fast-check';
import { BufferBudget, FRAME_OVERHEAD_BYTES, FrameQueue } from '../../src/connection/frame-queue.js';
import { PushBuffer } from '../../src/connection/push-buffer.js';

/** A frame of `n` bytes whose content names it (`seq`), so a mixed-up or overwritten frame shows. */
function frame(seq: number, n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (seq * 31 + i) & 0xff;
  return bytes;
}

type Op = { push: number } | { shift: true };

const ops = fc.array(
  fc.oneof(
    {
      weight: 3,
      arbitrary: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 20_000, max: 70_000 }), fc.integer({ min: 65_000, max: 200_000 })).map((n): Op => ({ push: n })),
    },
    { weight: 2, arbitrary: fc.constant<Op>({ shift: true }) },
  ),
  { maxLength: 60 },
);

describe('FrameQueue (against a plain array of copies)', () => {
  it('returns every frame intact and in order, whatever the sizes (frames spanning slabs included); views handed out are never overwritten', () => {
    fc.assert(
      fc.property(ops, (program) => {
        const budget = new BufferBudget(Infinity);
        const q = new FrameQueue(budget);
        const model: Uint8Array[] = [];
        const handedOut: { view: Uint8Array; expected: Uint8Array }[] = [];
        let seq = 0;
        for (const op of program) {
          if ('push' in op) {
            const f = frame(seq++, op.push);
            q.push(f);
            f.fill(0); // the queue must have copied it
            model.push(frame(seq - 1, op.push));
          } else {
            const got = q.shift();
            const want = model.shift();
            expect(got === undefined).toBe(want === undefined);
            if (got && want) {
              expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
              handedOut.push({ view: got, expected: want });
            }
          }
          expect(q.length).toBe(model.length);
          const bytes = model.reduce((n, f) => n + f.byteLength + FRAME_OVERHEAD_BYTES, 0);
          expect(q.bytes).toBe(bytes);
          expect(budget.used).toBe(bytes);
        }
        for (const { view, expected } of handedOut) expect(Buffer.from(view).equals(Buffer.from(expected))).toBe(true);
        q.clear();
        expect(budget.used).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('a zero-length frame pushed into an empty queue is shifted back out, empty', () => {
    const q = new FrameQueue(new BufferBudget(Infinity));
    q.push(new Uint8Array(0));
    expect(q.length).toBe(1);
    expect(q.shift()?.byteLength).toBe(0);
    expect(q.length).toBe(0);
  });
});

describe('PushBuffer strategies (against a model)', () => {
  it.each(['error', 'drop-newest', 'drop-oldest', 'latest'] as const)('%s: keeps what the strategy promises, in order, within the bound', (strategy) => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 80 }), fc.integer({ min: 60, max: 600 }), (sizes, maxBytes) => {
        const buffer = new PushBuffer(new BufferBudget(Infinity), maxBytes, strategy);
        let model: { seq: number; n: number; cost: number }[] = [];
        let failedAt = -1;
        sizes.forEach((n, seq) => {
          if (failedAt >= 0) return;
          const cost = n + FRAME_OVERHEAD_BYTES;
          const used = model.reduce((t, m) => t + m.cost, 0);
          const error = buffer.add(frame(seq, n));
          if (strategy === 'latest') model = [{ seq, n, cost }];
          else if (used + cost <= maxBytes) model.push({ seq, n, cost });
          else if (strategy === 'error') {
            expect(error?.code).toBe('RESOURCE_EXHAUSTED');
            failedAt = seq;
            return;
          } else if (strategy === 'drop-oldest') {
            while (model.length > 0 && model.reduce((t, m) => t + m.cost, 0) + cost > maxBytes) model.shift();
            if (model.reduce((t, m) => t + m.cost, 0) + cost <= maxBytes) model.push({ seq, n, cost });
          }
          if (strategy !== 'error') expect(error).toBeUndefined();
          if (strategy !== 'latest') expect(buffer.bytes).toBeLessThanOrEqual(maxBytes);
        });
        const out: string[] = [];
        for (let f = buffer.shift(); f; f = buffer.shift()) out.push(Buffer.from(f).toString('hex'));
        expect(out).toEqual(model.map((m) => Buffer.from(frame(m.seq, m.n)).toString('hex')));
      }),
      { numRuns: 200 },
    );
  });
});
