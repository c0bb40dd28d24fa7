import { deferredIterator, type DeferredEnd } from '../../src/connection/deferred-iterator.js';

/** A source over `items` that records what was asked of it. */
function source(items: number[], fail?: Error) {
  const log = { nexts: 0, returns: 0 };
  let i = 0;
  const it: AsyncIterableIterator<number> = {
    next: async () => {
      log.nexts++;
      if (i < items.length) return { value: items[i++]!, done: false };
      if (fail) throw fail;
      return { value: undefined, done: true };
    },
    return: async () => {
      log.returns++;
      i = items.length;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => it,
  };
  return { it, log };
}

/** A promise settled from outside. */
function gate<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

describe.each([
  ['a source given at once', false],
  ['a source given by a promise (a connection to wait for)', true],
])('deferredIterator over %s', (_what, async) => {
  const opener = (it: AsyncIterator<number>) => (async ? () => Promise.resolve(it) : () => it);

  it('opens nothing before the first next(), then yields the whole source and reports it done once', async () => {
    const s = source([1, 2, 3]);
    let opens = 0;
    const ends: DeferredEnd[] = [];
    const open = opener(s.it);
    const it = deferredIterator(
      () => (opens++, open()),
      (e) => ends.push(e),
    );
    expect(opens).toBe(0);
    expect(await collect(it)).toEqual([1, 2, 3]);
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect({ opens, ends, nexts: s.log.nexts }).toEqual({ opens: 1, ends: [{ kind: 'done' }], nexts: 4 });
  });

  it('return() before the first next() opens nothing, ever, and reports nothing', async () => {
    let opens = 0;
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(
      () => (opens++, opener(source([1]).it)()),
      (e) => ends.push(e),
    );
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect({ opens, ends }).toEqual({ opens: 0, ends: [] });
  });

  it('break closes the source and reports "returned"; later next() calls are done without asking the source', async () => {
    const s = source([1, 2, 3, 4]);
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(opener(s.it), (e) => ends.push(e));
    const seen: number[] = [];
    for await (const v of it) {
      seen.push(v);
      if (v === 2) break;
    }
    const nextsAtBreak = s.log.nexts;
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect({ seen, ends, returns: s.log.returns, nexts: s.log.nexts }).toEqual({ seen: [1, 2], ends: [{ kind: 'returned' }], returns: 1, nexts: nextsAtBreak });
  });

  it("the source's error rejects that next(), is reported once, and the iteration is then done", async () => {
    const boom = new Error('boom');
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(opener(source([1], boom).it), (e) => ends.push(e));
    expect(await it.next()).toEqual({ value: 1, done: false });
    await expect(it.next()).rejects.toBe(boom);
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(ends).toEqual([{ kind: 'error', error: boom }]);
  });

  it('throw(error) closes the source, reports "returned" and rejects with the error', async () => {
    const s = source([1, 2]);
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(opener(s.it), (e) => ends.push(e));
    await it.next();
    const stop = new Error('stop');
    await expect(it.throw!(stop)).rejects.toBe(stop);
    expect({ ends, returns: s.log.returns }).toEqual({ ends: [{ kind: 'returned' }], returns: 1 });
  });
});

describe('deferredIterator while the source is still coming', () => {
  it('return() settles a next() waiting for the source at once; the source arriving later is closed unused', async () => {
    const s = source([1, 2]);
    const later = gate<AsyncIterator<number>>();
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(
      () => later.promise,
      (e) => ends.push(e),
    );
    const waiting = it.next();
    await it.return!();
    expect(await waiting).toEqual({ value: undefined, done: true });
    later.resolve(s.it);
    await later.promise;
    await new Promise((r) => setImmediate(r));
    expect({ ends, nexts: s.log.nexts, returns: s.log.returns }).toEqual({ ends: [{ kind: 'returned' }], nexts: 0, returns: 1 });
  });

  it('a source that fails to come rejects the waiting next() calls once: the first with its error, the others done', async () => {
    const later = gate<AsyncIterator<number>>();
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(
      () => later.promise,
      (e) => ends.push(e),
    );
    const first = it.next();
    const second = it.next();
    const refused = new Error('refused');
    later.reject(refused);
    const results = await Promise.allSettled([first, second]);
    expect(results).toEqual([
      { status: 'rejected', reason: refused },
      { status: 'fulfilled', value: { value: undefined, done: true } },
    ]);
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(ends).toEqual([{ kind: 'error', error: refused }]);
  });

  it('a failure after return() is not reported (the iteration ended as returned)', async () => {
    const later = gate<AsyncIterator<number>>();
    const ends: DeferredEnd[] = [];
    const it = deferredIterator(
      () => later.promise,
      (e) => ends.push(e),
    );
    const waiting = it.next();
    await it.return!();
    later.reject(new Error('late'));
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(ends).toEqual([{ kind: 'returned' }]);
  });

  it('an open() that throws rejects the first next() and is reported as an error', async () => {
    const bad = new Error('cannot open');
    const ends: DeferredEnd[] = [];
    const it = deferredIterator<number>(
      () => {
        throw bad;
      },
      (e) => ends.push(e),
    );
    await expect(it.next()).rejects.toBe(bad);
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(ends).toEqual([{ kind: 'error', error: bad }]);
  });
});
