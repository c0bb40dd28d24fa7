import { Controller } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import {
  catchError,
  concat,
  delay,
  EMPTY,
  finalize,
  from,
  isObservable,
  lastValueFrom,
  map,
  NEVER,
  type Observable,
  of,
  range,
  reduce,
  Subject,
  take,
  tap,
  throwError,
  timeout,
  toArray,
} from 'rxjs';
import { createServer, type Server, type Socket } from 'node:net';
import { WsHeaders, WsMsgpackClient, WsMsgpackError, WsMsgpackRecordBuilder, WsMsgpackStatus } from '../../src/index.js';
import { all, errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { endless, holds, type SourceStats } from '../support/streams.js';

/** The server's request-stream credit window in this file: small, so "bounded" means something. */
const SERVER_WINDOW = 16;

async function* countUp(n: number): AsyncGenerator<number> {
  for (let i = 1; i <= n; i++) yield i;
}

@Controller()
class StreamController {
  // ---- response streams

  @MessagePattern('obs')
  obs(@Payload() n: number): Observable<number> {
    return range(1, n);
  }

  @MessagePattern('gen')
  async *gen(@Payload() n: number): AsyncGenerator<number> {
    for (let i = 1; i <= n; i++) {
      await Promise.resolve();
      yield i;
    }
  }

  @MessagePattern('promiseObs')
  async promiseObs(@Payload() n: number): Promise<Observable<number>> {
    await new Promise((r) => setImmediate(r));
    return range(1, n).pipe(delay(1));
  }

  @MessagePattern('promiseGen')
  async promiseGen(@Payload() n: number): Promise<AsyncIterable<number>> {
    await new Promise((r) => setImmediate(r));
    return countUp(n);
  }

  @MessagePattern('obsFailRpc')
  obsFailRpc(): Observable<number> {
    return concat(
      of(1, 2, 3),
      throwError(() => new RpcException('bad item')),
    );
  }

  @MessagePattern('obsFailCrash')
  obsFailCrash(): Observable<number> {
    return concat(
      of(1, 2, 3),
      throwError(() => new Error('secret internals')),
    );
  }

  @MessagePattern('genFailRpc')
  async *genFailRpc(): AsyncGenerator<number> {
    yield 1;
    yield 2;
    yield 3;
    throw new RpcException('bad item');
  }

  @MessagePattern('genFailCrash')
  async *genFailCrash(): AsyncGenerator<number> {
    yield 1;
    yield 2;
    yield 3;
    throw new Error('secret internals');
  }

  // eslint-disable-next-line require-yield
  @MessagePattern('genFailFirst')
  async *genFailFirst(): AsyncGenerator<number> {
    throw new RpcException('no items');
  }

  @MessagePattern('empty')
  empty(): Observable<number> {
    return EMPTY;
  }

  @MessagePattern('bigObs')
  bigObs(): Observable<number> {
    return range(0, 10_000);
  }

  @MessagePattern('bigGen')
  async *bigGen(): AsyncGenerator<number> {
    for (let i = 0; i < 10_000; i++) yield i;
  }

  // ---- request streams

  @MessagePattern('sum')
  sum(@Payload() items$: Observable<number>): Observable<number> {
    return items$.pipe(reduce((a, b) => a + b, 0));
  }

  @MessagePattern('describe')
  describe(@Payload() data: unknown): { observable: boolean; array: boolean; data: unknown } {
    return { observable: isObservable(data), array: Array.isArray(data), data: isObservable(data) ? null : data };
  }

  @MessagePattern('sumWithHeaders')
  sumWithHeaders(@Payload() items$: Observable<number>, @WsHeaders() headers: Record<string, unknown>): Observable<unknown> {
    return items$.pipe(
      reduce((a, b) => a + b, 0),
      map((sum) => ({ sum, headers })),
    );
  }

  @MessagePattern('uppercase')
  uppercase(@Payload() words$: Observable<string>): Observable<string> {
    return words$.pipe(map((w) => w.toUpperCase()));
  }

  @MessagePattern('firstTwo')
  firstTwo(@Payload() items$: Observable<number>): Observable<number[]> {
    return items$.pipe(take(2), toArray());
  }

  @MessagePattern('ignoreInput')
  ignoreInput(@Payload() _items$: Observable<number>): string {
    return 'ignored';
  }

  @MessagePattern('guardedSum')
  guardedSum(@Payload() items$: Observable<number>): Observable<string> {
    return items$.pipe(
      reduce((a, b) => a + b, 0),
      map((sum) => `sum ${sum}`),
      catchError((e: unknown) => of(`input failed: ${e instanceof Error ? e.message : String(e)}`)),
    );
  }
}

/** Everything an Observable does, in order: ['next', v] … then ['error', e] or ['complete']. */
async function trace(o: Observable<unknown>): Promise<unknown[][]> {
  const events: unknown[][] = [];
  await lastValueFrom(
    o.pipe(
      timeout(WAIT_MS),
      tap({ next: (v) => events.push(['next', v]), complete: () => events.push(['complete']) }),
      catchError((e: unknown) => {
        events.push(['error', e]);
        return of(null);
      }),
    ),
    { defaultValue: null },
  );
  return events;
}

describe('response streams', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [StreamController] }, { window: SERVER_WINDOW });
  });
  afterAll(() => svc.close());

  it('streams every item of an Observable handler in order, then completes', async () => {
    expect(await trace(svc.client().send('obs', 5))).toEqual([['next', 1], ['next', 2], ['next', 3], ['next', 4], ['next', 5], ['complete']]);
  });

  it('streams an async generator handler (async *gen())', async () => {
    expect(await trace(svc.client().send('gen', 4))).toEqual([['next', 1], ['next', 2], ['next', 3], ['next', 4], ['complete']]);
  });

  it('streams a Promise of an Observable', async () => {
    expect(await all(svc.client().send('promiseObs', 6))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('streams a Promise of an async iterable (async handler returning a generator)', async () => {
    expect(await all(svc.client().send('promiseGen', 6))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('delivers an RpcException thrown mid-stream by an Observable after the earlier items', async () => {
    expect(await trace(svc.client().send('obsFailRpc', {}))).toEqual([
      ['next', 1],
      ['next', 2],
      ['next', 3],
      ['error', { status: 'error', message: 'bad item' }],
    ]);
  });

  it('maps a plain Error thrown mid-stream by an Observable to Internal server error, after the items', async () => {
    expect(await trace(svc.client().send('obsFailCrash', {}))).toEqual([
      ['next', 1],
      ['next', 2],
      ['next', 3],
      ['error', { status: 'error', message: 'Internal server error' }],
    ]);
  });

  it('delivers an RpcException thrown mid-stream by an async generator like unary (after the items)', async () => {
    const events = await trace(svc.client().send('genFailRpc', {}));
    expect(events.slice(0, 3)).toEqual([
      ['next', 1],
      ['next', 2],
      ['next', 3],
    ]);
    expect(events[3]?.[0]).toBe('error');
    expect(events[3]?.[1]).toEqual({ status: 'error', message: 'bad item' });
    expect(events).toHaveLength(4);
  });

  it('maps a plain Error thrown mid-stream by an async generator to Internal server error (no internals leak)', async () => {
    const events = await trace(svc.client().send('genFailCrash', {}));
    expect(events.slice(0, 3)).toEqual([
      ['next', 1],
      ['next', 2],
      ['next', 3],
    ]);
    expect(events[3]?.[0]).toBe('error');
    expect(events[3]?.[1]).toEqual({ status: 'error', message: 'Internal server error' });
    expect(events).toHaveLength(4);
  });

  it('maps an RpcException thrown by an async generator before its first item like unary', async () => {
    expect(await trace(svc.client().send('genFailFirst', {}))).toEqual([['error', { status: 'error', message: 'no items' }]]);
  });

  it('completes without items for an empty Observable (EMPTY)', async () => {
    expect(await trace(svc.client().send('empty', {}))).toEqual([['complete']]);
  });

  it('delivers a 10,000-item Observable stream complete and in order', async () => {
    const items = await all(svc.client().send<number>('bigObs', {}), 10_000);
    expect(items).toHaveLength(10_000);
    expect(items.every((v, i) => v === i)).toBe(true);
  });

  it('delivers a 10,000-item async-generator stream complete and in order', async () => {
    const items = await all(svc.client().send<number>('bigGen', {}), 10_000);
    expect(items).toHaveLength(10_000);
    expect(items.every((v, i) => v === i)).toBe(true);
  });
});

describe('request streams', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [StreamController] }, { window: SERVER_WINDOW });
  });
  afterAll(() => svc.close());

  it('sums an Observable request stream (from([1,2,3,4]))', async () => {
    expect(await all(svc.client().send('sum', from([1, 2, 3, 4])))).toEqual([10]);
  });

  it('sums an async-generator request stream', async () => {
    async function* src(): AsyncGenerator<number> {
      yield 1;
      yield 2;
      yield 3;
      yield 4;
    }
    expect(await all(svc.client().send('sum', src()))).toEqual([10]);
  });

  it('sums a sync-generator request stream (a non-array iterable)', async () => {
    function* src(): Generator<number> {
      yield 1;
      yield 2;
      yield 3;
      yield 4;
    }
    expect(await all(svc.client().send('sum', src()))).toEqual([10]);
  });

  it('sums a request stream longer than the server window (credit is topped up)', async () => {
    const n = SERVER_WINDOW * 10 + 3;
    expect(await first(svc.client().send('sum', range(1, n)))).toBe((n * (n + 1)) / 2);
  });

  it('keeps an array payload plain data (the handler gets the array, not an Observable)', async () => {
    expect(await first(svc.client().send('describe', [1, 2, 3]))).toEqual({ observable: false, array: true, data: [1, 2, 3] });
  });

  it('hands a request stream to the handler as an Observable', async () => {
    expect(await first(svc.client().send('describe', from([1, 2])))).toEqual({ observable: true, array: false, data: null });
  });

  it('carries record headers with a request stream (record data = the stream)', async () => {
    const rec = new WsMsgpackRecordBuilder(from([5, 6, 7])).setHeaders({ tenant: 't9', trace: 'abc' }).build();
    expect(await first(svc.client().send('sumWithHeaders', rec))).toEqual({ sum: 18, headers: { tenant: 't9', trace: 'abc' } });
  });

  it('runs bidirectional uppercase: each answer arrives before the next word is sent', async () => {
    const later = new Subject<string>();
    const received: string[] = [];
    const done = lastValueFrom(
      svc
        .client()
        .send<string>('uppercase', concat(of('hello'), later))
        .pipe(
          timeout(WAIT_MS),
          tap((w) => {
            received.push(w);
            if (w === 'HELLO') later.next('rpc');
            else if (w === 'RPC') later.next('streams');
            else if (w === 'STREAMS') later.complete();
          }),
          toArray(),
        ),
    );
    expect(await done).toEqual(['HELLO', 'RPC', 'STREAMS']);
    expect(received).toEqual(['HELLO', 'RPC', 'STREAMS']);
  });

  it('tears the client source down when the handler stops reading early (take(2)); pulls stay bounded', async () => {
    const stats: SourceStats = { pulls: 0, finalized: 0 };
    expect(await all(svc.client().send('firstTwo', endless(stats)))).toEqual([[0, 1]]);
    await until(() => stats.finalized === 1, WAIT_MS, 'generator finally');
    const pulls = stats.pulls;
    expect(pulls).toBeGreaterThanOrEqual(2);
    expect(pulls).toBeLessThanOrEqual(SERVER_WINDOW + 2);
    await holds(() => stats.pulls === pulls, 'source not pulled after teardown');
    expect(stats.finalized).toBe(1);
  });

  it('tears an infinite async-generator source down when the handler answers without reading it', async () => {
    const stats: SourceStats = { pulls: 0, finalized: 0 };
    expect(await all(svc.client().send('ignoreInput', endless(stats)))).toEqual(['ignored']);
    await until(() => stats.finalized === 1, WAIT_MS, 'generator finally');
    const pulls = stats.pulls;
    expect(pulls).toBeLessThanOrEqual(SERVER_WINDOW + 2);
    await holds(() => stats.pulls === pulls, 'source not pulled after teardown');
  });

  it('unsubscribes an infinite Observable source (its finalize runs) when the handler answers without reading it', async () => {
    let finalized = 0;
    let emitted = 0;
    const source = concat(from([1, 2, 3]), NEVER).pipe(
      tap(() => emitted++),
      finalize(() => finalized++),
    );
    expect(await all(svc.client().send('ignoreInput', source))).toEqual(['ignored']);
    await until(() => finalized === 1, WAIT_MS, 'source finalize');
    expect(emitted).toBeLessThanOrEqual(3);
  });

  it("errors the handler's input when the client's Observable source errors", async () => {
    const source = concat(
      of(1, 2),
      throwError(() => new Error('disk on fire')),
    );
    expect(await all(svc.client().send('guardedSum', source))).toEqual(['input failed: disk on fire']);
  });

  it("errors the handler's input when the client's async-generator source throws", async () => {
    async function* src(): AsyncGenerator<number> {
      yield 1;
      yield 2;
      throw new Error('generator broke');
    }
    expect(await all(svc.client().send('guardedSum', src()))).toEqual(['input failed: generator broke']);
  });

  it('still sums normally through the same guarded handler (control)', async () => {
    expect(await all(svc.client().send('guardedSum', from([1, 2, 3])))).toEqual(['sum 6']);
  });

  it('fails the call when the pattern is unknown even for a request stream, tearing the source down', async () => {
    const stats: SourceStats = { pulls: 0, finalized: 0 };
    const err = await errorOf(svc.client().send('no-such-pattern', endless(stats)));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect((err as WsMsgpackError).code).toBe('UNIMPLEMENTED');
    await until(() => stats.finalized === 1, WAIT_MS, 'generator finally');
  });
});

describe('iterate(): concurrent next() calls', () => {
  @Controller()
  class LettersController {
    @MessagePattern('letters')
    letters(): Observable<string> {
      return from(['a', 'b', 'c']);
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [LettersController] });
  });
  afterAll(() => svc.close());

  it('all resolve, in order, with the right items: on the connection iterator and through client.iterate()', async () => {
    // client.iterate() delegates (yield*) to the connection's iterator, whose one wake slot was
    // the bug; an async generator queues concurrent next() calls itself, so the bug shows only
    // on the connection's iterator (what connect() returns), tested first.
    const client = svc.client();
    const conn = await client.connect();
    const it = conn.iterate('letters', null);
    const pulls = [it.next(), it.next(), it.next(), it.next()];
    const results = await within(Promise.all(pulls), WAIT_MS, 'four concurrent next() calls');
    expect(results).toEqual([
      { value: 'a', done: false },
      { value: 'b', done: false },
      { value: 'c', done: false },
      { value: undefined, done: true },
    ]);
    // The same through client.iterate().
    const gen = client.iterate<string>('letters', null);
    expect(await within(Promise.all([gen.next(), gen.next(), gen.next(), gen.next()]), WAIT_MS, 'client.iterate() next() calls')).toEqual([
      { value: 'a', done: false },
      { value: 'b', done: false },
      { value: 'c', done: false },
      { value: undefined, done: true },
    ]);
  });
});

describe('iterate() before the connection is open', () => {
  let tcp: Server;
  const held: Socket[] = [];
  let url = '';
  beforeAll(async () => {
    // Accepts TCP, never answers the WebSocket upgrade: the handshake stays under way.
    tcp = createServer((s) => held.push(s));
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
    url = `ws://127.0.0.1:${(tcp.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
  });

  it('return() during the handshake settles the pending next() as done, before the handshake ends', async () => {
    // connectTimeout far beyond the test's waits: only return() itself can settle the pending next().
    const client = new WsMsgpackClient({ url, keepAliveInterval: 0, connectTimeout: 60_000 });
    client.on('error', () => {});
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    const it = client.iterate('x', null);
    const outcomes: string[] = [];
    const pending = it.next().then(
      (r) => outcomes.push(`next resolved ${JSON.stringify(r)}`),
      (e: unknown) => outcomes.push(`next rejected ${String(e)}`),
    );
    await until(() => held.length === 1, WAIT_MS, 'the handshake under way');
    const returned = it.return!().then((r) => outcomes.push(`return resolved ${JSON.stringify(r)}`));
    await within(Promise.all([pending, returned]), WAIT_MS, 'return() and the pending next()');
    const statusThen = statuses.at(-1);
    await client.close(); // calls the handshake off: a next() still waiting on it would reject now
    expect({ outcomes: [...outcomes].sort(), statusThen }).toEqual({
      outcomes: ['next resolved {"done":true}', 'return resolved {"done":true}'],
      statusThen: WsMsgpackStatus.CONNECTING, // settled while the handshake was still under way
    });
  });

  it('next() after a next() that failed to connect reports done, as an async generator does after it threw', async () => {
    const client = new WsMsgpackClient({ url: 'ws://127.0.0.1:1', keepAliveInterval: 0 });
    client.on('error', () => {});
    const it = client.iterate('x', null);
    await expect(it.next()).rejects.toThrow();
    await expect(it.next()).resolves.toEqual({ value: undefined, done: true });
    await client.close();
  });
});

describe('a response stream that fails on a value sends nothing after its ERROR', () => {
  /** A cursor-like async iterator: 0..n-1; `released` counts return() calls. */
  let rows: (AsyncIterableIterator<number> & { released: number }) | undefined;
  function cursor(n: number): AsyncIterableIterator<number> & { released: number } {
    let i = 0;
    const it = {
      released: 0,
      next: async () => (i < n ? { value: i++, done: false as const } : { value: undefined, done: true as const }),
      return: async () => {
        it.released++;
        return { value: undefined, done: true as const };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    return it;
  }
  @Controller()
  class AfterFailController {
    /** A value that cannot be encoded (a function: INTERNAL), then an async iterable. */
    @MessagePattern('afterFail')
    afterFail(): Observable<unknown> {
      rows = cursor(1000);
      return from([() => 1, rows]);
    }

    @MessagePattern('ping')
    ping(): string {
      return 'pong';
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [AfterFailController] });
    svc.server.on('error', () => {});
  });
  afterAll(() => svc.close());

  it('an async iterable emitted right after the failing value is released, never pulled: no NEXT follows the ERROR', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'afterFail', null, { n: 4 }]);
      const err = await peer.next((f) => f[0] === 5);
      expect(err.slice(0, 3)).toEqual([5, 1, 'INTERNAL']);
      await until(() => rows?.released === 1, WAIT_MS, 'the cursor released');
      peer.send([1, 3, 'ping', null]);
      expect(await peer.next((f) => f[1] === 3)).toEqual([4, 3, 'pong']); // the server has sent all it would
      // Before the fix: NEXT 1 0, 1, 2 followed the ERROR (the credit left), and the cursor waited forever.
      expect(peer.frames.filter((f) => f[1] === 1)).toEqual([]);
    } finally {
      peer.close();
    }
  });
});
