import { lastValueFrom, take, toArray } from 'rxjs';
import { InboundStream } from '../../src/connection/inbound-stream.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';

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
