/**
 * Remote calls in bytes (src/cluster/remote-serving.ts, remote-caller.ts): the holder sends a
 * caller replica at most `maxBytesInFlight` (+ one item) that it has not heard read, whatever
 * the item credit allows; the caller says what it read every 64 KiB (`read`); a message the link
 * refuses as too large fails its call at once. Over the in-memory bus of
 * test/support/remote-calls.ts, which can stop delivering (a caller that does not read).
 */
import { firstValueFrom, lastValueFrom, tap, toArray } from 'rxjs';
import { READ_STEP } from '../../src/cluster/remote-messages.js';
import { WsMsgpackRecord } from '../../src/peer/record.js';
import { TestPeer, codeOf, failure, gate, twoReplicas, until } from '../support/remote-calls.js';

const KIB = 1024;

/** Resolves after `turns` turns of the event loop (what a holder would send meanwhile, it has sent). */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe('RemoteCalls: bytes in flight between two replicas', () => {
  it('a caller that does not read: the holder stops at maxBytesInFlight + one item, though credit allows 256 items; then all arrives, in order', async () => {
    const budget = 512 * KIB;
    const { remote, bus, p1 } = twoReplicas({ b: { maxBytesInFlight: budget } });
    bus.paused.add('A');
    const got = lastValueFrom(
      remote()
        .send<Uint8Array>('blobs', [60, 100 * KIB])
        .pipe(toArray()),
    );
    await until(() => (bus.bytes.get('B>A') ?? 0) > budget, 'the holder to fill the budget');
    await turns(50); // had it gone on, it would have by now
    const sent = bus.bytes.get('B>A')!;
    expect(sent).toBeLessThanOrEqual(budget + 101 * KIB);
    expect(p1.produced).toBeLessThanOrEqual(Math.ceil(budget / (100 * KIB)) + 2); // one item held, one pulled at most
    bus.resume('A');
    const items = await got;
    expect(items.map((b) => b[0])).toEqual(Array.from({ length: 60 }, (_, i) => i % 251));
    expect(items.every((b) => b.byteLength === 100 * KIB)).toBe(true);
    const read = bus.sent('read').reduce((sum, m) => sum + (m.b as number), 0);
    expect(read).toBeGreaterThan(60 * 100 * KIB - READ_STEP); // everything but what stays under one step was said read
  });

  it('without a bound (the default of RemoteCalls) the same holder runs as far as the credit goes: the bound above is what held it', async () => {
    const { remote, bus, p1 } = twoReplicas();
    bus.paused.add('A');
    const got = lastValueFrom(
      remote()
        .send<Uint8Array>('blobs', [60, 100 * KIB])
        .pipe(toArray()),
    );
    await until(() => p1.produced === 60, 'the holder to send everything');
    expect(bus.bytes.get('B>A')!).toBeGreaterThan(60 * 100 * KIB);
    bus.resume('A');
    expect((await got).length).toBe(60);
  });

  it('many calls at once share one budget per caller replica: each holds one item, the bytes sent stay within budget + one item', async () => {
    const budget = 256 * KIB;
    const { remote, bus } = twoReplicas({ b: { maxBytesInFlight: budget } });
    bus.paused.add('A');
    const calls = Array.from({ length: 12 }, () =>
      lastValueFrom(
        remote()
          .send<Uint8Array>('blobs', [20, 64 * KIB])
          .pipe(toArray()),
      ),
    );
    await until(() => (bus.bytes.get('B>A') ?? 0) > budget, 'the holder to fill the budget');
    await turns(50);
    expect(bus.bytes.get('B>A')!).toBeLessThanOrEqual(budget + 65 * KIB);
    bus.resume('A');
    const results = await Promise.all(calls);
    expect(results.map((r) => r.length)).toEqual(Array(12).fill(20));
  });

  it('small answers send no `read` (a unary call costs two messages: call, and next with the end), and a call that was cancelled still has its late items counted as read', async () => {
    const { remote, bus } = twoReplicas({ b: { maxBytesInFlight: 128 * KIB } });
    for (let i = 0; i < 20; i++) expect(await lastValueFrom(remote().send('sum', [i, 1]))).toBe(i + 1);
    for (let i = 0; i < 20; i++) expect(await firstValueFrom(remote().send('sum', [i, 2]))).toBe(i + 2);
    expect(bus.sent('read')).toEqual([]);
    expect(bus.log.map((m) => m.message.t)).toEqual(Array(40).fill(['call', 'next']).flat()); // no done, no cancel after firstValueFrom
    expect(bus.sent('next').every((m) => m.e === true)).toBe(true);
    // The caller leaves after 3 items of 64 KiB: what was in flight still arrives, is counted, and frees the budget for the next call.
    const first = remote().send<Uint8Array>('blobs', [1000, 64 * KIB]);
    const items: Uint8Array[] = [];
    await new Promise<void>((resolve) => {
      const sub = first.subscribe((b) => {
        items.push(b);
        if (items.length === 3) {
          sub.unsubscribe();
          resolve();
        }
      });
    });
    expect(
      (
        await lastValueFrom(
          remote()
            .send<Uint8Array>('blobs', [40, 64 * KIB])
            .pipe(toArray()),
        )
      ).length,
    ).toBe(40);
  });

  it('an item whose end is not there within a turn goes at once; the end follows as done (the caller is never held for it)', async () => {
    const { remote, bus } = twoReplicas();
    const open = gate('g1');
    const items: unknown[] = [];
    const ended = new Promise<void>((resolve, reject) =>
      remote()
        .send('gated', 'g1')
        .subscribe({ next: (v) => items.push(v), complete: resolve, error: reject }),
    );
    await until(() => items.length === 1, 'the item before the end');
    expect(bus.log.map((m) => m.message.t)).toEqual(['call', 'next']);
    expect(bus.sent('next')[0]).not.toHaveProperty('e');
    open();
    await ended;
    expect(bus.log.map((m) => m.message.t)).toEqual(['call', 'next', 'done']);
  });

  it('an item followed at once by an error: the item, then the typed error', async () => {
    const { remote } = twoReplicas();
    const items: unknown[] = [];
    const e = await failure(
      remote()
        .send('itemThenFail', null)
        .pipe(tap((v) => items.push(v))),
    );
    expect([items, codeOf(e), (e as Error).message]).toEqual([['one'], 'RESOURCE_EXHAUSTED', 'after one']);
  });

  it("an item over the link's message limit fails that call at once with RESOURCE_EXHAUSTED (not owed for a link that is fine); the next call works", async () => {
    const { remote, bus, errors } = twoReplicas({ b: { maxBytesInFlight: 128 * KIB } });
    bus.maxMessageBytes = 32 * KIB;
    const e = await failure(remote().send('blobs', [3, 40 * KIB]));
    expect(codeOf(e)).toBe('RESOURCE_EXHAUSTED');
    expect((e as Error).message).toMatch(/maxMessageBytes/);
    expect(await lastValueFrom(remote().send('sum', [1, 2]))).toBe(3);
    expect(errors.B).toEqual([]);
    // A payload too large for the link: the call fails at once, nothing waits.
    const big = await failure(remote().send('sum', new WsMsgpackRecord([new Uint8Array(40 * KIB)], {})));
    expect(codeOf(big)).toBe('RESOURCE_EXHAUSTED');
  });

  it("the caller's link drops while answers were lost on the way: the holder is told to count from zero (reset), and the next calls work", async () => {
    const { remote, bus, A } = twoReplicas({ b: { maxBytesInFlight: 128 * KIB } });
    bus.paused.add('A');
    const first = failure(remote().send('blobs', [100, 64 * KIB]));
    await until(() => (bus.bytes.get('B>A') ?? 0) > 128 * KIB, 'the budget filled');
    bus.dropQueued('A'); // Redis cut A's connection: what it held for A is lost
    bus.cutOff.add('A');
    A.linkDown(new Error('subscriber cut'));
    expect(codeOf(await first)).toBe('UNAVAILABLE');
    await new Promise((resolve) => setImmediate(resolve)); // the link comes back later
    bus.cutOff.delete('A');
    bus.resume('A');
    A.linkUp();
    await until(() => bus.sent('reset').length === 1, 'the reset to be sent');
    expect(await lastValueFrom(remote().send('sum', [1, 2]))).toBe(3);
    expect(
      (
        await lastValueFrom(
          remote()
            .send<Uint8Array>('blobs', [10, 64 * KIB])
            .pipe(toArray()),
        )
      ).length,
    ).toBe(10);
  });

  it('link blips with less than a read step untold each time never add up (each is a reset)', async () => {
    const { remote, A } = twoReplicas({ b: { maxBytesInFlight: 96 * KIB } });
    for (let blip = 0; blip < 6; blip++) {
      expect(
        (
          await lastValueFrom(
            remote()
              .send('blobs', [1, 60 * KIB])
              .pipe(toArray()),
          )
        ).length,
      ).toBe(1);
      A.linkDown(new Error('blip'));
      A.linkUp();
    }
  });

  it('an error answer over the message limit is replaced at once by a small one saying so (never owed while the link is fine)', async () => {
    const more = new TestPeer('p2', {
      // eslint-disable-next-line require-yield
      async *bigError() {
        throw 'x'.repeat(20 * KIB);
      },
    });
    const { remote, bus, errors } = twoReplicas({ more });
    bus.maxMessageBytes = 32 * KIB; // the string goes twice in the error (message and data)
    const e = await failure(remote('p2').send('bigError', 1));
    expect(codeOf(e)).toBe('RESOURCE_EXHAUSTED');
    expect((e as Error).message).toMatch(/the error of call 1 not sent/);
    expect(errors.B).toEqual([]);
  });

  it('answers from a replica this one never called are not counted (made-up senders cost nothing)', () => {
    const { A, bus } = twoReplicas();
    for (let i = 0; i < 1000; i++) A.receive(`forged-${i}`, { t: 'next', i: 1, v: 0 }, 100 * KIB);
    expect(bus.sent('read')).toEqual([]); // counted, each would have been told read (100 KiB > a step)
  });

  it('an error answer waits for room as an item does (its data can be as large): a caller that does not read gets no more than the budget + one message', async () => {
    const budget = 256 * KIB;
    const more = new TestPeer('p2', {
      // eslint-disable-next-line require-yield
      async *bigError() {
        throw new Uint8Array(100 * KIB); // APPLICATION_ERROR with 100 KiB of data
      },
    });
    const { remote, bus } = twoReplicas({ b: { maxBytesInFlight: budget }, more });
    bus.paused.add('A');
    const stream = lastValueFrom(
      remote()
        .send<Uint8Array>('blobs', [20, 64 * KIB])
        .pipe(toArray()),
    );
    await until(() => (bus.bytes.get('B>A') ?? 0) > budget, 'the budget filled');
    const errors = Array.from({ length: 8 }, () => failure(remote('p2').send('bigError', 1)));
    await turns(50);
    expect(bus.bytes.get('B>A')!).toBeLessThanOrEqual(budget + 101 * KIB);
    bus.resume('A');
    expect((await stream).length).toBe(20);
    for (const e of await Promise.all(errors)) expect((e as Uint8Array).byteLength).toBe(100 * KIB);
  });

  it('maxBytesInFlight must be over one read step (else the holder could wait for a `read` that never comes)', () => {
    expect(() => twoReplicas({ b: { maxBytesInFlight: READ_STEP } })).toThrow(/maxBytesInFlight/);
    expect(() => twoReplicas({ b: { maxBytesInFlight: 1.5 } })).toThrow(/maxBytesInFlight/);
    expect(() => twoReplicas({ b: { maxBytesInFlight: 0 } })).not.toThrow();
  });
});
