import { Queue } from '../../src/connection/queue.js';

describe('Queue', () => {
  it('is empty at first and shift() on empty gives undefined', () => {
    const q = new Queue<number>();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(q.length).toBe(0);
  });

  it('keeps FIFO order over 100k items with interleaved push and shift', () => {
    const q = new Queue<number>();
    let pushed = 0;
    let expected = 0;
    let disorder = 0;
    // Pushes 3, shifts 2 per round until 100k were pushed, then drains: the queue grows and shrinks
    // through many compactions on the way.
    while (pushed < 100_000) {
      for (let i = 0; i < 3 && pushed < 100_000; i++) q.push(pushed++);
      for (let i = 0; i < 2; i++) {
        const v = q.shift();
        if (v !== expected++) disorder++;
      }
      if (q.length !== pushed - expected) disorder++;
    }
    while (q.length > 0) {
      if (q.shift() !== expected++) disorder++;
    }
    expect(disorder).toBe(0);
    expect(expected).toBe(100_000);
    expect(q.shift()).toBeUndefined();
  });

  it('keeps order across compaction (more than 1024 items shifted while pushing)', () => {
    const q = new Queue<string>();
    for (let i = 0; i < 2000; i++) q.push(`v${i}`);
    const out: string[] = [];
    // 1025+ shifts with head*2 > length triggers the compaction path; keep pushing meanwhile.
    for (let i = 0; i < 1600; i++) {
      out.push(q.shift()!);
      if (i % 4 === 0) q.push(`w${i}`);
    }
    expect(q.length).toBe(2000 + 400 - 1600);
    // the compaction really ran: the internal head index was reset below the number of shifts
    expect((q as unknown as { head: number }).head).toBeLessThan(1600);
    while (q.length > 0) out.push(q.shift()!);
    const expected = [...Array.from({ length: 2000 }, (_, i) => `v${i}`), ...Array.from({ length: 400 }, (_, i) => `w${i * 4}`)];
    expect(out).toEqual(expected);
  });

  it('supports reuse after being drained completely', () => {
    const q = new Queue<number>();
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 2000; i++) q.push(round * 10_000 + i);
      const got: number[] = [];
      while (q.length > 0) got.push(q.shift()!);
      expect(got).toEqual(Array.from({ length: 2000 }, (_, i) => round * 10_000 + i));
    }
  });

  it('keeps falsy items (undefined, null, 0, false) as items', () => {
    const q = new Queue<unknown>();
    const items = [undefined, null, 0, false, ''];
    for (const v of items) q.push(v);
    expect(q.length).toBe(5);
    const out: unknown[] = [];
    while (q.length > 0) out.push(q.shift());
    expect(out).toEqual(items);
  });

  it('clear() drops every item and the queue works afterwards', () => {
    const q = new Queue<number>();
    for (let i = 0; i < 5000; i++) q.push(i);
    for (let i = 0; i < 2000; i++) q.shift();
    q.clear();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    q.push(7);
    q.push(8);
    expect(q.length).toBe(2);
    expect(q.shift()).toBe(7);
    expect(q.shift()).toBe(8);
    expect(q.length).toBe(0);
  });
});
