import { Controller } from '@nestjs/common';
import { Readable } from 'node:stream';
import { Ctx, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { concat, finalize, firstValueFrom, interval, lastValueFrom, NEVER, type Observable, of, reduce, Subject, take, takeUntil, tap, timeout, timer } from 'rxjs';
import WebSocket from 'ws';
import { WsHeaders, WsMsgpackContext, WsMsgpackError, WsMsgpackErrorCode, WsMsgpackRecordBuilder, WsSignal, type WsMsgpackClient } from '../../src/index.js';
import { all, errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { endless, holds, Probes, ticker, type Probe, type SourceStats, abortableDelay, newTag, codeOf, gate, type Gate } from '../support/streams.js';

const probes = new Probes();

@Controller()
class CancelController {
  /** Endless ticks; signal via ctx.getSignal(). */
  @MessagePattern('ticks')
  ticks(@Payload() tag: string, @Ctx() ctx: WsMsgpackContext): Observable<number> {
    const p = probes.get(tag).watch(ctx.getSignal());
    p.started++;
    return ticker(p, 5);
  }

  /** Never emits; signal via @WsSignal(). */
  @MessagePattern('silent')
  silent(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<never> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return NEVER.pipe(finalize(() => p.finalized++));
  }

  /** wsmpRPC's cancellable sleep: waits `seconds` but honours the AbortSignal. */
  @MessagePattern('sleep')
  sleep(@Payload() { tag, seconds }: { tag: string; seconds: number }, @WsSignal() signal: AbortSignal): Promise<string> {
    return abortableDelay(probes.get(tag), seconds * 1000, signal, `done sleeping ${seconds} s`);
  }

  /** wsmpRPC's endless interval, counted at the producer. */
  @MessagePattern('interval')
  interval(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return interval(2).pipe(
      tap(() => p.produced++),
      finalize(() => p.finalized++),
    );
  }

  /** A finite stream of `count` ticks. */
  @MessagePattern('finite')
  finite(@Payload() { tag, count }: { tag: string; count: number }, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return ticker(p, 2).pipe(take(count));
  }

  /** An endless async generator; its `finally` counts as the teardown. */
  @MessagePattern('genForever')
  async *genForever(@Payload() tag: string, @WsSignal() signal: AbortSignal): AsyncGenerator<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    try {
      for (let i = 0; ; i++) {
        await new Promise((r) => setTimeout(r, 2));
        p.produced++;
        yield i;
      }
    } finally {
      p.finalized++;
    }
  }

  /** A slow unary call: resolves only when told to; on abort it cleans up (counted) and rejects. */
  @MessagePattern('slowUnary')
  slowUnary(@Payload() tag: string, @WsSignal() signal: AbortSignal): Promise<string> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return new Promise<string>((_resolve, reject) => {
      signal.addEventListener(
        'abort',
        () => {
          p.finalized++;
          reject(new RpcException('aborted'));
        },
        { once: true },
      );
    });
  }

  /** A request stream summed; the tag comes in a header. */
  @MessagePattern('sumStream')
  sumStream(@Payload() items$: Observable<number>, @WsHeaders('tag') tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return items$.pipe(
      tap(() => p.produced++),
      reduce((a, b) => a + b, 0),
      finalize(() => p.finalized++),
    );
  }
}

function expectUnavailable(err: unknown): void {
  expect(err).toBeInstanceOf(WsMsgpackError);
  expect((err as WsMsgpackError).code).toBe(WsMsgpackErrorCode.UNAVAILABLE);
}

/** Waits until the server-side producer of `p` is torn down, then shows it makes nothing more. */
async function expectProducerStopped(p: Probe): Promise<void> {
  await until(() => p.finalized === 1, WAIT_MS, 'server finalize');
  const produced = p.produced;
  await holds(() => p.produced === produced, 'producer count after teardown');
  expect(p.finalized).toBe(1);
}

async function expectCancelled(p: Probe): Promise<void> {
  await until(() => p.finalized === 1, WAIT_MS, 'server finalize');
  await until(() => p.signal?.aborted === true, WAIT_MS, 'signal abort');
  expect(p.abortCode).toBe(WsMsgpackErrorCode.CANCELLED);
  expect(p.abortReasons).toHaveLength(1);
  expect(p.abortReasons[0]).toBeInstanceOf(WsMsgpackError);
}

describe('cancellation by unsubscribing', () => {
  let svc: TestService;
  let client: WsMsgpackClient;
  beforeAll(async () => {
    svc = await startService({ controllers: [CancelController] });
    client = svc.client();
  });
  afterAll(() => svc.close());

  it('take(1) on an endless stream cancels it: finalize runs, ctx.getSignal() aborts CANCELLED, production stops', async () => {
    const tag = newTag('take1');
    expect(await all(client.send<number>('ticks', tag).pipe(take(1)))).toEqual([0]);
    const p = probes.get(tag);
    await expectCancelled(p);
    await expectProducerStopped(p);
    expect(p.started).toBe(1);
  });

  it('rxjs timeout() on a silent call cancels it: finalize runs, @WsSignal() aborts CANCELLED', async () => {
    const tag = newTag('timeout');
    const err = await errorOf(client.send('silent', tag).pipe(timeout(100)));
    expect((err as Error).name).toBe('TimeoutError');
    await expectCancelled(probes.get(tag));
  });

  it('takeUntil() cancels a stream mid-way: items before the trigger only, then teardown', async () => {
    const tag = newTag('takeUntil');
    const stop$ = new Subject<void>();
    const items = await all(
      client.send<number>('ticks', tag).pipe(
        tap((v) => {
          if (v === 3) stop$.next();
        }),
        takeUntil(stop$),
      ),
    );
    // takeUntil sees the trigger during tap of item 3, before item 3 reaches toArray.
    expect(items).toEqual([0, 1, 2]);
    const p = probes.get(tag);
    await expectCancelled(p);
    await expectProducerStopped(p);
  });

  it('firstValueFrom() on a multi-item stream cancels the rest', async () => {
    const tag = newTag('firstValueFrom');
    expect(await within(firstValueFrom(client.send<number>('ticks', tag)), WAIT_MS)).toBe(0);
    const p = probes.get(tag);
    await expectCancelled(p);
    await expectProducerStopped(p);
  });

  it("cancelling an async-generator handler runs the generator's finally and stops pulling it", async () => {
    const tag = newTag('gen');
    expect(await all(client.send<number>('genForever', tag).pipe(take(3)))).toEqual([0, 1, 2]);
    const p = probes.get(tag);
    await expectCancelled(p);
    await expectProducerStopped(p);
  });

  it('wsmpRPC sleep: a 3 s sleep cancelled after 1 s by takeUntil(timer(1000)) aborts the handler and does not complete', async () => {
    const tag = newTag('sleep');
    const CANCELLED = Symbol('cancelled');
    const received: unknown[] = [];
    const result = await lastValueFrom(
      client.send<string>('sleep', { tag, seconds: 3 }).pipe(
        tap((v) => received.push(v)),
        takeUntil(timer(1000)), // the cancel trigger of the scenario
      ),
      { defaultValue: CANCELLED },
    );
    expect(result).toBe(CANCELLED);
    expect(received).toEqual([]);
    const p = probes.get(tag);
    await expectCancelled(p);
    expect(p.completed).toBe(0);
  });

  it('wsmpRPC interval: take(50) receives exactly 50 items and the server producer stops', async () => {
    const tag = newTag('interval');
    const items = await all(client.send<number>('interval', tag).pipe(take(50)));
    expect(items).toEqual(Array.from({ length: 50 }, (_, i) => i));
    const p = probes.get(tag);
    await expectCancelled(p);
    await expectProducerStopped(p);
    expect(p.produced).toBeGreaterThanOrEqual(50);
  });

  it('cancelling one call leaves a concurrent call on the same connection untouched', async () => {
    const a = newTag('cancelled');
    const b = newTag('survivor');
    const survivor = all(client.send<number>('finite', { tag: b, count: 40 }));
    expect(await all(client.send<number>('ticks', a).pipe(take(3)))).toEqual([0, 1, 2]);
    const pa = probes.get(a);
    await expectCancelled(pa);
    expect(await survivor).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const pb = probes.get(b);
    expect(pb.signal?.aborted).toBe(false);
    expect(pb.produced).toBe(40);
    await until(() => pb.finalized === 1, WAIT_MS, 'survivor finalize');
    // the connection still serves new calls
    expect(await all(client.send<number>('finite', { tag: newTag('after'), count: 3 }))).toEqual([0, 1, 2]);
  });

  it('cancelling a request-stream call tears down both the client source and the server handler (CANCELLED)', async () => {
    const tag = newTag('reqCancel');
    const stats: SourceStats = { pulls: 0, finalized: 0 };
    const stop$ = new Subject<void>();
    const done = lastValueFrom(client.send('sumStream', new WsMsgpackRecordBuilder(endless(stats)).setHeaders({ tag }).build()).pipe(takeUntil(stop$)), {
      defaultValue: 'cancelled',
    });
    const p = probes.get(tag);
    await until(() => p.produced >= 10, WAIT_MS, 'items reaching the handler');
    stop$.next();
    expect(await within(done, WAIT_MS, 'cancelled call')).toBe('cancelled');
    await until(() => stats.finalized === 1, WAIT_MS, 'client generator finally');
    await expectCancelled(p);
    const pulls = stats.pulls;
    const received = p.produced;
    await holds(() => stats.pulls === pulls && p.produced === received, 'no more pulls or items after the cancel');
  });

  it('unsubscribing after completion sends nothing that disturbs the server (no abort on a finished call)', async () => {
    const tag = newTag('finished');
    expect(await all(client.send<number>('finite', { tag, count: 5 }))).toEqual([0, 1, 2, 3, 4]);
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'finalize');
    await holds(() => p.signal?.aborted === false, 'signal not aborted');
  });
});

describe('connection loss fails every call and tears every handler down', () => {
  /** Starts a slow unary call, a stream and a request stream on `client`; returns their tags and outcomes. */
  function startThree(client: WsMsgpackClient): {
    tags: string[];
    outcomes: Promise<unknown>[];
    clientSource: { finalized: number };
    streamItems: number[];
  } {
    const tags = [newTag('unary'), newTag('stream'), newTag('reqStream')];
    const clientSource = { finalized: 0 };
    const streamItems: number[] = [];
    const source = concat(of(1, 2), NEVER).pipe(finalize(() => clientSource.finalized++));
    const outcomes = [
      errorOf(client.send('slowUnary', tags[0])),
      errorOf(client.send<number>('ticks', tags[1]).pipe(tap((v) => streamItems.push(v)))),
      errorOf(client.send('sumStream', new WsMsgpackRecordBuilder(source).setHeaders({ tag: tags[2] }).build())),
    ];
    return { tags, outcomes, clientSource, streamItems };
  }

  async function whenAllRunning(tags: string[], streamItems: number[]): Promise<void> {
    await until(() => tags.every((t) => probes.get(t).started === 1), WAIT_MS, 'all three handlers started');
    await until(() => probes.get(tags[2]!).produced === 2 && streamItems.length > 0, WAIT_MS, 'request items and stream items flowing');
  }

  async function expectAllTornDown(tags: string[], abortCode: string): Promise<void> {
    await until(() => tags.every((t) => probes.get(t).finalized >= 1), WAIT_MS, 'every server handler torn down');
    expect(tags.map((t) => probes.get(t).finalized)).toEqual([1, 1, 1]);
    expect(tags.map((t) => probes.get(t).abortCode)).toEqual([abortCode, abortCode, abortCode]);
    await expectProducerStopped(probes.get(tags[1]!));
  }

  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [CancelController] });
  });
  afterAll(() => svc.close());

  it('client.close(): every pending call errors UNAVAILABLE, every handler is torn down', async () => {
    const client = svc.client();
    const { tags, outcomes, clientSource, streamItems } = startThree(client);
    await whenAllRunning(tags, streamItems);
    await client.close();
    const errors = await within(Promise.all(outcomes), WAIT_MS, 'all calls fail');
    errors.forEach(expectUnavailable);
    expect(errors.map((e) => (e as WsMsgpackError).details)).toEqual([
      { closeCode: 1000, closeReason: 'client closed' },
      { closeCode: 1000, closeReason: 'client closed' },
      { closeCode: 1000, closeReason: 'client closed' },
    ]);
    await until(() => clientSource.finalized === 1, WAIT_MS, 'client request source torn down');
    await expectAllTornDown(tags, WsMsgpackErrorCode.UNAVAILABLE);
  });

  it('socket terminated abruptly (client.unwrap().terminate()): calls error UNAVAILABLE, handlers torn down', async () => {
    const client = svc.client();
    const { tags, outcomes, clientSource, streamItems } = startThree(client);
    await whenAllRunning(tags, streamItems);
    client.unwrap<WebSocket>().terminate();
    const errors = await within(Promise.all(outcomes), WAIT_MS, 'all calls fail');
    errors.forEach(expectUnavailable);
    expect(errors.map((e) => ((e as WsMsgpackError).details as { closeCode: number }).closeCode)).toEqual([1006, 1006, 1006]);
    await until(() => clientSource.finalized === 1, WAIT_MS, 'client request source torn down');
    await expectAllTornDown(tags, WsMsgpackErrorCode.UNAVAILABLE);
    // the client reconnects for the next call
    expect(await all(client.send<number>('finite', { tag: newTag('reconnect'), count: 2 }))).toEqual([0, 1]);
  });

  it('a raw peer whose socket dies abruptly: the server tears its handlers down', async () => {
    const peer = await RawPeer.open(svc.url);
    const tags = [newTag('rawTicks'), newTag('rawSilent'), newTag('rawSum')];
    peer.send([1, 1, 'ticks', tags[0]]);
    peer.send([1, 3, 'silent', tags[1]]);
    peer.send([1, 5, 'sumStream', null, { h: { tag: tags[2] }, s: true }]);
    await peer.next((f) => f[0] === 7 && f[1] === 5, 'request-stream credit');
    peer.send([3, 5, 20]);
    await until(() => tags.every((t) => probes.get(t).started === 1) && probes.get(tags[2]!).produced === 1, WAIT_MS, 'handlers running');
    await peer.next((f) => f[0] === 3 && f[1] === 1, 'a tick');
    peer.close(); // terminate(): no close frame
    await until(() => tags.every((t) => probes.get(t).finalized === 1), WAIT_MS, 'every handler torn down');
    expect(tags.map((t) => probes.get(t).abortCode)).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
    await expectProducerStopped(probes.get(tags[0]!));
  });

  it('app.close(): pending calls error UNAVAILABLE (close 1001), handlers torn down', async () => {
    const own = await startService({ controllers: [CancelController] });
    const client = own.client();
    try {
      const { tags, outcomes, clientSource, streamItems } = startThree(client);
      await whenAllRunning(tags, streamItems);
      await within(own.app.close(), WAIT_MS, 'app.close');
      const errors = await within(Promise.all(outcomes), WAIT_MS, 'all calls fail');
      errors.forEach(expectUnavailable);
      expect(errors.map((e) => ((e as WsMsgpackError).details as { closeCode: number }).closeCode)).toEqual([1001, 1001, 1001]);
      await until(() => clientSource.finalized === 1, WAIT_MS, 'client request source torn down');
      await expectAllTornDown(tags, WsMsgpackErrorCode.UNAVAILABLE);
      // a new call on the closed server does not hang: it waits for the reconnect up to its deadline
      // (or readyTimeout), or fails at once when it does not wait for ready
      expectUnavailable(await errorOf(client.send('ticks', new WsMsgpackRecordBuilder(newTag('late')).setWaitForReady(false).build())));
    } finally {
      await client.close();
    }
  });

  it('a call started after the connection dropped reconnects instead of failing (control)', async () => {
    const client = svc.client();
    expect(await first(client.send<number>('finite', { tag: newTag('c1'), count: 1 }))).toBe(0);
    client.unwrap<WebSocket>().terminate();
    await until(
      () => {
        try {
          client.unwrap();
          return false;
        } catch {
          return true;
        }
      },
      WAIT_MS,
      'client noticed the drop',
    );
    expect(await first(client.send<number>('finite', { tag: newTag('c2'), count: 1 }))).toBe(0);
  });
});

describe("a handler's request stream errors with the call's reason when the call ends first (it never completes as if the input had ended)", () => {
  /** What a 'sumInput' handler saw of its request stream. */
  interface InputRecord {
    received: number;
    /** 'completed with sum N', or 'errored <class> <code>'. */
    outcome: string | undefined;
  }
  const inputs = new Map<string, InputRecord>();
  function inputRecord(tag: string): InputRecord {
    let r = inputs.get(tag);
    if (!r) inputs.set(tag, (r = { received: 0, outcome: undefined }));
    return r;
  }

  @Controller()
  class SumInputController {
    /** Sums its request stream, the way a handler would: reduce to the end, then answer. */
    @MessagePattern('sumInput')
    async sumInput(@Payload() items$: Observable<number>, @WsHeaders('tag') tag: string): Promise<number | null> {
      const rec = inputRecord(tag);
      try {
        const sum = await lastValueFrom(
          items$.pipe(
            tap(() => rec.received++),
            reduce((a, b) => a + b, 0),
          ),
        );
        rec.outcome = `completed with sum ${sum}`;
        return sum;
      } catch (e) {
        rec.outcome = `errored ${e instanceof WsMsgpackError ? 'WsMsgpackError' : String(e)} ${codeOf(e)}`;
        return null;
      }
    }
  }

  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [SumInputController] });
  });
  afterAll(() => svc.close());

  /** Starts 'sumInput' with a request stream 1, 2, 3 that never ends. */
  function startSum(client: WsMsgpackClient): { rec: InputRecord; call: Observable<unknown> } {
    const tag = newTag('sum');
    const record = new WsMsgpackRecordBuilder(concat(of(1, 2, 3), NEVER)).setHeaders({ tag }).build();
    return { rec: inputRecord(tag), call: client.send('sumInput', record) };
  }

  it('cancel (unsubscribe): the input errors CANCELLED', async () => {
    const { rec, call } = startSum(svc.client());
    const sub = call.subscribe({ error: () => {} });
    await until(() => rec.received === 3, WAIT_MS, 'three items reaching the handler');
    sub.unsubscribe();
    await until(() => rec.outcome !== undefined, WAIT_MS, 'the handler input ending');
    expect(rec.outcome).toBe('errored WsMsgpackError CANCELLED');
  });

  it("the server's deadline: the input errors DEADLINE_EXCEEDED", async () => {
    // A raw peer that never cancels: the server's own deadline ends the call (a client also
    // enforces the deadline and sends CANCEL, which may reach the server first and be taken for
    // a plain cancel; see the deadline tests).
    const tag = newTag('sum');
    const rec = inputRecord(tag);
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'sumInput', null, { h: { tag }, s: true, t: 300 }]);
      await peer.next((f) => f[0] === 7 && f[1] === 1, 'request-stream credit');
      for (const v of [1, 2, 3]) peer.send([3, 1, v]);
      expect(await peer.next((f) => f[1] === 1, 'answer to call 1')).toEqual([5, 1, 'DEADLINE_EXCEEDED', 'deadline of 300 ms exceeded']);
      await until(() => rec.outcome !== undefined, WAIT_MS, 'the handler input ending');
      expect(rec.outcome).toBe('errored WsMsgpackError DEADLINE_EXCEEDED');
    } finally {
      peer.close();
    }
  });

  it('disconnect: the input errors UNAVAILABLE', async () => {
    const client = svc.client();
    const { rec, call } = startSum(client);
    const failed = errorOf(call);
    await until(() => rec.received === 3, WAIT_MS, 'three items reaching the handler');
    client.unwrap<WebSocket>().terminate();
    expect(codeOf(await failed)).toBe('UNAVAILABLE');
    await until(() => rec.outcome !== undefined, WAIT_MS, 'the handler input ending');
    expect(rec.outcome).toBe('errored WsMsgpackError UNAVAILABLE');
  });
});

describe('a handler result that resolves after its call ended is released (a Readable destroyed, an iterator or generator returned)', () => {
  type LateKind = 'readable' | 'iterator' | 'generator';

  /** One 'late' call: the handler waits for `gate`, then returns a stream-like result. */
  interface LateRecord {
    readonly gate: Gate;
    signal: AbortSignal | undefined;
    /** The result the handler returned (after the gate opened). */
    result: unknown;
    /** Times the result was released: the Readable closed, or return() called on the iterator / generator. */
    released: number;
  }
  const lates = new Map<string, LateRecord>();
  function lateRecord(tag: string): LateRecord {
    let r = lates.get(tag);
    if (!r) lates.set(tag, (r = { gate: gate(), signal: undefined, result: undefined, released: 0 }));
    return r;
  }

  /** Rows of a pretend cursor. */
  async function* rows(): AsyncGenerator<number> {
    for (let i = 1; i <= 1000; i++) yield i;
  }

  function lateResult(kind: LateKind, rec: LateRecord): unknown {
    switch (kind) {
      case 'readable': {
        const readable = Readable.from(rows());
        readable.once('close', () => rec.released++);
        return readable;
      }
      case 'iterator': {
        // A hand-made async iterator (a DB cursor's shape): return() releases it.
        let n = 0;
        const cursor = {
          [Symbol.asyncIterator]() {
            return cursor;
          },
          next: async (): Promise<IteratorResult<number>> => ({ value: ++n, done: false }),
          return: async (): Promise<IteratorResult<number>> => {
            rec.released++;
            return { value: undefined, done: true };
          },
        };
        return cursor;
      }
      case 'generator': {
        const g = rows();
        const close = g.return.bind(g);
        g.return = (value) => {
          rec.released++;
          return close(value);
        };
        return g;
      }
    }
  }

  @Controller()
  class LateController {
    /** Waits (e.g. for a database) until the test opens the gate, then returns a stream-like result. */
    @MessagePattern('late')
    async late(@Payload() { tag, kind }: { tag: string; kind: LateKind }, @WsSignal() signal: AbortSignal): Promise<unknown> {
      const rec = lateRecord(tag);
      rec.signal = signal;
      await rec.gate.promise;
      rec.result = lateResult(kind, rec);
      return rec.result;
    }
  }

  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [LateController] });
  });
  afterAll(() => svc.close());

  const kinds: LateKind[] = ['readable', 'iterator', 'generator'];

  /** Ends call `tag` the way `how` says, before the handler has answered. */
  async function endCall(how: 'cancel' | 'deadline', tag: string, kind: LateKind, rec: LateRecord): Promise<void> {
    if (how === 'cancel') {
      const sub = svc
        .client()
        .send('late', { tag, kind })
        .subscribe({ error: () => {} });
      await until(() => rec.signal !== undefined, WAIT_MS, 'handler started');
      sub.unsubscribe();
      await until(() => rec.signal!.aborted, WAIT_MS, 'the server seeing the cancel');
    } else {
      const err = await errorOf(svc.client().send('late', new WsMsgpackRecordBuilder({ tag, kind }).setTimeout(100).build()));
      expect(codeOf(err)).toBe('DEADLINE_EXCEEDED');
      await until(() => rec.signal?.aborted === true, WAIT_MS, 'the server ending the call');
    }
  }

  describe.each([
    ['cancelled (unsubscribe)', 'cancel'],
    ['past its deadline', 'deadline'],
  ] as const)('the call %s before the handler answered', (_what, how) => {
    it.each(kinds)('a %s result is released once', async (kind) => {
      const tag = newTag(`late-${kind}`);
      const rec = lateRecord(tag);
      await endCall(how, tag, kind, rec);
      rec.gate.open();
      await until(() => rec.released > 0, WAIT_MS, `the late ${kind} being released`);
      expect(rec.released).toBe(1);
      if (kind === 'readable') expect((rec.result as Readable).destroyed).toBe(true);
      if (kind === 'generator') expect(await (rec.result as AsyncGenerator<number>).next()).toEqual({ value: undefined, done: true });
    });
  });
});

describe('iterate(): return() while a next() is pending cancels at once', () => {
  @Controller()
  class NeverController {
    @MessagePattern('never')
    never(): Observable<never> {
      return NEVER;
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [NeverController] });
  });
  afterAll(() => svc.close());

  it('Connection.iterate(): return() settles the pending next() (done)', async () => {
    const client = svc.client();
    const conn = await client.connect();
    const it = conn.iterate('never', null);
    const pending = it.next();
    await until(() => svc.server.connectionCount === 1 && conn.outgoingCalls === 1);
    await within(it.return!(), WAIT_MS, 'core return()');
    await expect(pending).resolves.toEqual({ value: undefined, done: true });
  });

  it('client.iterate(): return() does not wait for the pending next(); the call is cancelled', async () => {
    const client = svc.client();
    const conn = await client.connect();
    const it = client.iterate('never', null);
    it.next().catch(() => {});
    await until(() => conn.outgoingCalls === 1, WAIT_MS, 'call started');
    await within(it.return!(undefined), WAIT_MS, 'client.iterate return()');
    expect(conn.outgoingCalls).toBe(0);
  });
});

describe("a late async-iterable result whose release fails reaches the server's 'error' event, never an unhandled rejection", () => {
  const lateGate = gate();
  let lateSignal: AbortSignal | undefined;
  @Controller()
  class LateCursorController {
    /** Resolves after the caller cancelled, with a cursor whose release fails (e.g. its database connection is gone). */
    @MessagePattern('lateCursor')
    async lateCursor(@WsSignal() signal: AbortSignal): Promise<AsyncIterableIterator<number>> {
      lateSignal = signal;
      await lateGate.promise;
      const cursor: AsyncIterableIterator<number> = {
        next: async () => ({ value: 1, done: false }),
        return: async () => {
          throw new Error('cannot close cursor');
        },
        [Symbol.asyncIterator]: () => cursor,
      };
      return cursor;
    }
  }
  let svc: TestService;
  const serverErrors: Error[] = [];
  beforeAll(async () => {
    svc = await startService({ controllers: [LateCursorController] });
    svc.server.on('error', (e) => serverErrors.push(e));
  });
  afterAll(() => svc.close());

  it('the call cancelled before the handler resolved: the failing clean-up is reported', async () => {
    const client = svc.client();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const sub = client.send('lateCursor', null).subscribe({ error: () => {} });
      await until(() => lateSignal !== undefined, WAIT_MS, 'handler entered');
      sub.unsubscribe(); // CANCEL: the call ends before the handler resolves
      await until(() => lateSignal!.aborted, WAIT_MS, 'the CANCEL reached the server');
      lateGate.open();
      await until(() => serverErrors.some((e) => e.message.includes('cannot close cursor')), WAIT_MS, "the clean-up failure on 'error'");
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); // an unhandled rejection would have fired by now
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    // DESIGN.md: "reports a failing clean-up as an error" (server 'error' event), never unhandled.
    expect(unhandled).toEqual([]);
    expect(serverErrors.map((e) => e.message)).toContainEqual(expect.stringContaining('cannot close cursor'));
  });
});
