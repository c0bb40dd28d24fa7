import { lastValueFrom, take, toArray } from 'rxjs';
import { InboundStream } from '../../src/connection/inbound-stream.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { BufferBudget } from '../../src/connection/frame-queue.js';

function inbound(window = 4): { s: InboundStream; grants: number[] } {
  const grants: number[] = [];
  return { s: new InboundStream(window, (n) => grants.push(n)), grants };
}

/** What the one subscriber saw. */
function watch(s: InboundStream): { items: unknown[]; outcome: () => 'open' | 'complete' | { error: unknown } } {
  const items: unknown[] = [];
  let outcome: 'open' | 'complete' | { error: unknown } = 'open';
  s.observable.subscribe({ next: (v) => items.push(v), error: (error: unknown) => (outcome = { error }), complete: () => (outcome = 'complete') });
  return { items, outcome: () => outcome };
}

describe('InboundStream', () => {
  it('buffers items until the subscriber comes, and grants credit only as they are delivered', () => {
    const { s, grants } = inbound(4);
    expect(s.push('a')).toBe(true);
    expect(s.push('b')).toBe(true);
    expect(grants).toEqual([]);
    const w = watch(s);
    expect(w.items).toEqual(['a', 'b']);
    expect(grants).toEqual([2]); // half the window consumed: top up
  });

  it('refuses items beyond the credit (a protocol violation for the caller to report)', () => {
    const { s } = inbound(2);
    expect(s.push(1)).toBe(true);
    expect(s.push(2)).toBe(true);
    expect(s.push(3)).toBe(false);
  });

  it("the peer's COMPLETE completes the subscriber after the buffered items", () => {
    const { s } = inbound();
    s.push(1);
    s.complete();
    const w = watch(s);
    expect(w.items).toEqual([1]);
    expect(w.outcome()).toBe('complete');
  });

  it("the peer's ERROR errors the subscriber after the buffered items", () => {
    const { s } = inbound();
    s.push(1);
    s.error(new WsMsgpackError('X', 'y'));
    const w = watch(s);
    expect(w.items).toEqual([1]);
    expect(w.outcome()).toEqual({ error: new WsMsgpackError('X', 'y') });
  });

  it('a call that ends before the stream did errors the subscriber with the reason (never a silent completion)', () => {
    const { s } = inbound();
    const w = watch(s);
    s.push(1);
    s.close(new WsMsgpackError('CANCELLED', 'the caller cancelled the call'));
    expect(w.items).toEqual([1]);
    expect(w.outcome()).toEqual({ error: new WsMsgpackError('CANCELLED', 'the caller cancelled the call') });
  });

  it('a subscriber that comes after the call ended gets the reason too', async () => {
    const { s } = inbound();
    s.push(1);
    s.close(new WsMsgpackError('UNAVAILABLE', 'gone'));
    await expect(lastValueFrom(s.observable)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('a stream that ended normally stays ended normally when the call ends', async () => {
    const { s } = inbound();
    s.push(1);
    s.complete();
    s.close(new WsMsgpackError('CANCELLED', 'late'));
    expect(await lastValueFrom(s.observable.pipe(toArray()))).toEqual([1]);
  });

  it('can be subscribed to once', async () => {
    const { s } = inbound();
    watch(s);
    await expect(lastValueFrom(s.observable)).rejects.toThrow('a request stream can be subscribed to (or iterated) only once');
  });

  it('a subscriber that leaves stops the credit; later items are dropped, not refused', () => {
    const { s, grants } = inbound(2);
    const items: unknown[] = [];
    s.observable.pipe(take(1)).subscribe((v) => items.push(v));
    s.push('a');
    expect(items).toEqual(['a']);
    expect(grants).toEqual([]); // take(1) unsubscribed before the grant
    expect(s.push('b')).toBe(true);
    expect(items).toEqual(['a']);
  });
});

describe('InboundStream: pulled with for await (issue 15, item 5)', () => {
  it('credit follows the loop: nothing is granted until the loop takes items', async () => {
    const { s, grants } = inbound(4);
    for (const v of [1, 2, 3, 4]) expect(s.push(v)).toBe(true);
    expect(s.push(5)).toBe(false); // the window is all the peer may send ahead
    const it = s.observable[Symbol.asyncIterator]();
    expect(grants).toEqual([]);
    expect(await it.next()).toEqual({ value: 1, done: false });
    expect(grants).toEqual([]);
    expect(await it.next()).toEqual({ value: 2, done: false });
    expect(grants).toEqual([2]); // half the window taken by the loop: top up
  });

  it('a pull waiting for an item gets it as it arrives; the end and errors reach the loop', async () => {
    const { s } = inbound(4);
    const it = s.observable[Symbol.asyncIterator]();
    const pending = it.next();
    s.push('a');
    expect(await pending).toEqual({ value: 'a', done: false });
    const end = it.next();
    s.complete();
    expect(await end).toEqual({ value: undefined, done: true });

    const b = inbound(4).s;
    const failing = b.observable[Symbol.asyncIterator]();
    b.push(1);
    b.error(new WsMsgpackError('X', 'boom'));
    expect(await failing.next()).toEqual({ value: 1, done: false });
    await expect(failing.next()).rejects.toEqual(new WsMsgpackError('X', 'boom'));
    expect(await failing.next()).toEqual({ value: undefined, done: true });
  });

  it('break (return()) stops the credit; a second consumer is refused, whichever way it consumes', async () => {
    const { s, grants } = inbound(2);
    s.push(1);
    for await (const v of s.observable) {
      expect(v).toBe(1);
      break;
    }
    expect(grants).toEqual([1]); // for the item the loop took
    s.push(2);
    s.push(3);
    expect(grants).toEqual([1]); // nothing more after break
    await expect(lastValueFrom(s.observable)).rejects.toThrow('a request stream can be subscribed to (or iterated) only once');
  });

  it('the call ending while a pull waits rejects it with the reason', async () => {
    const { s } = inbound(2);
    const it = s.observable[Symbol.asyncIterator]();
    const pending = it.next();
    s.close(new WsMsgpackError('CANCELLED', 'the caller cancelled the call'));
    await expect(pending).rejects.toEqual(new WsMsgpackError('CANCELLED', 'the caller cancelled the call'));
  });
});

describe('InboundStream: waiting items counted in bytes; credit held back past maxBytes (issue 15, item 5)', () => {
  function bounded(window: number, maxBytes: number, budget = new BufferBudget(10_000)) {
    const grants: number[] = [];
    const s = new InboundStream(window, (n) => grants.push(n), { budget, maxBytes });
    return { s, budget, grants };
  }

  it('waiting items are charged to the connection and released as they are taken', async () => {
    const { s, budget } = bounded(8, 1000);
    s.push('a', 60);
    s.push('b', 40);
    expect(budget.used).toBe(100);
    const it = s.observable[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ value: 'a', done: false });
    expect(budget.used).toBe(40);
    expect(s.bufferedBytes).toBe(40);
  });

  it('large items: credit is held back so that what waits, and what credit may still bring, stays near maxBytes', async () => {
    // Window 8 of 100-byte items, 300 bytes allowed: after the first window, no more than 3 at a time.
    const { s, grants } = bounded(8, 300);
    for (let i = 0; i < 8; i++) s.push(i, 100); // the window granted up front
    const it = s.observable[Symbol.asyncIterator]();
    for (let i = 0; i < 6; i++) await it.next(); // 2 wait (200 bytes): room for 1 more
    expect(grants).toEqual([1]);
    await it.next();
    await it.next(); // nothing waits; 1 on its way: room for 2 more
    expect(grants.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3);
  });

  it('an item bigger than maxBytes still flows, one at a time (never a stall)', async () => {
    const { s, grants } = bounded(4, 100);
    for (let i = 0; i < 4; i++) s.push(i, 500);
    const it = s.observable[Symbol.asyncIterator]();
    for (let i = 0; i < 4; i++) await it.next();
    expect(grants).toEqual([1]); // nothing waits, nothing is on its way: one more
    s.push(4, 500);
    expect(await it.next()).toEqual({ value: 4, done: false });
    expect(grants).toEqual([1, 1]);
  });

  it('small items keep the whole window (the byte cap does not bind)', () => {
    const { s, grants } = bounded(8, 1_000_000);
    const w = watch(s);
    for (let i = 0; i < 8; i++) s.push(i, 10);
    expect(w.items).toHaveLength(8);
    expect(grants.reduce((a, b) => a + b, 0)).toBe(8);
  });

  it('a stream the peer ended is whole for a late consumer; it stays counted until its handler has stopped (detach)', () => {
    const { s, budget } = bounded(8, 1000);
    s.push('a', 30);
    s.error(new WsMsgpackError('X', 'a big error'), 500);
    s.close(new WsMsgpackError('CANCELLED', 'the call ended'));
    expect(budget.used).toBe(530); // the handler may still take it
    s.detach();
    expect(budget.used).toBe(0);
    const w = watch(s);
    expect(w.items).toEqual(['a']);
    expect(w.outcome()).toEqual({ error: new WsMsgpackError('X', 'a big error') });
    expect(budget.used).toBe(0);
  });
});
