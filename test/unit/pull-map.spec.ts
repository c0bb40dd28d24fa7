import { lastValueFrom, of, range, Subject, take, tap, toArray } from 'rxjs';
import { InboundStream } from '../../src/connection/inbound-stream.js';
import { wsConcatMap, wsMergeMap } from '../../src/connection/pull-map.js';

/** A promise settled from outside. */
function gate() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('wsConcatMap / wsMergeMap on a request stream: an item is taken only while fewer than `concurrency` results run', () => {
  it('wsConcatMap takes the next item only when the previous result completed; credit follows', async () => {
    const grants: number[] = [];
    const s = new InboundStream(4, (n) => grants.push(n));
    for (const n of [1, 2, 3, 4]) s.push(n);
    s.complete();
    const started: number[] = [];
    const gates = new Map<number, ReturnType<typeof gate>>();
    const results: number[] = [];
    let completed = false;
    s.observable
      .pipe(wsConcatMap((n: unknown) => (started.push(n as number), gates.set(n as number, gate()), gates.get(n as number)!.promise.then(() => (n as number) * 10))))
      .subscribe({
        next: (v) => results.push(v),
        complete: () => (completed = true),
      });
    await turns();
    expect({ started, grants }).toEqual({ started: [1], grants: [] });
    gates.get(1)!.open();
    await turns();
    expect({ started, results }).toEqual({ started: [1, 2], results: [10] });
    gates.get(2)!.open();
    await turns();
    gates.get(3)!.open();
    await turns();
    gates.get(4)!.open();
    await turns();
    expect({ started, results, completed }).toEqual({ started: [1, 2, 3, 4], results: [10, 20, 30, 40], completed: true });
  });

  it('wsMergeMap(project, 2) runs two at a time, results as they complete', async () => {
    const s = new InboundStream(8, () => {});
    for (const n of [1, 2, 3]) s.push(n);
    s.complete();
    const gates = new Map<number, ReturnType<typeof gate>>();
    const results: unknown[] = [];
    s.observable.pipe(wsMergeMap((n: unknown) => (gates.set(n as number, gate()), gates.get(n as number)!.promise.then(() => n)), 2)).subscribe((v) => results.push(v));
    await turns();
    expect([...gates.keys()]).toEqual([1, 2]);
    gates.get(2)!.open();
    await turns();
    expect({ started: [...gates.keys()], results }).toEqual({ started: [1, 2, 3], results: [2] });
  });

  it('results that complete at once (of(x)) go through in order', async () => {
    const s = new InboundStream(0, () => {});
    for (const n of [1, 2, 3]) s.push(n);
    s.complete();
    expect(
      await lastValueFrom(
        s.observable.pipe(
          wsConcatMap((n: unknown) => of(n, n)),
          toArray(),
        ),
      ),
    ).toEqual([1, 1, 2, 2, 3, 3]);
  });

  it('unsubscribing refuses the rest of the request stream: what the peer still sends is dropped, not buffered', async () => {
    const s = new InboundStream(4, () => {});
    s.push(1, 100);
    const sub = s.observable.pipe(wsConcatMap(() => new Promise<never>(() => {}))).subscribe();
    await turns();
    sub.unsubscribe();
    await turns();
    expect(s.push(2, 100)).toBe(true);
    expect(s.bufferedBytes).toBe(0);
  });

  it('unsubscribing during a synchronous result stops that result at once (take(1) after a range), as mergeMap does', async () => {
    const s = new InboundStream(4, () => {});
    s.push(1);
    s.complete();
    let produced = 0;
    const firstOne = await lastValueFrom(
      s.observable.pipe(
        wsConcatMap(() => range(0, 100_000).pipe(tap(() => produced++))),
        take(1),
      ),
    );
    expect({ firstOne, produced }).toEqual({ firstOne: 0, produced: 1 });
  });

  it("project's error errors the output and closes the request stream", async () => {
    const s = new InboundStream(4, () => {});
    s.push(1);
    s.push(2);
    const boom = new Error('boom');
    await expect(
      lastValueFrom(
        s.observable.pipe(
          wsConcatMap(() => {
            throw boom;
          }),
        ),
      ),
    ).rejects.toBe(boom);
  });
});

describe('wsConcatMap / wsMergeMap on any other Observable: concatMap / mergeMap', () => {
  it('maps a plain Observable like concatMap (every item, in order)', async () => {
    const subject = new Subject<number>();
    const out = lastValueFrom(
      subject.pipe(
        wsConcatMap((n) => Promise.resolve(n * 2)),
        toArray(),
      ),
    );
    [1, 2, 3].forEach((n) => subject.next(n));
    subject.complete();
    expect(await out).toEqual([2, 4, 6]);
  });

  it('wsMergeMap asks for a concurrency of at least 1', () => {
    expect(() => wsMergeMap((n: number) => of(n), 0)).toThrow('nestjs-ws-msgpack: wsMergeMap concurrency must be a number >= 1, got 0');
    expect(() => wsMergeMap((n: number) => of(n), Number.NaN)).toThrow(RangeError);
  });
});
