import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { finalize, NEVER, type Observable, reduce, tap } from 'rxjs';
import { WsHeaders, WsMsgpackContext, WsMsgpackError, WsMsgpackErrorCode, WsMsgpackRecordBuilder, WsSignal } from '../../src/index.js';
import { errorOf, first, startService, until, WAIT_MS, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { endless, holds, Probes, ticker, type SourceStats, abortableDelay, newTag } from '../support/streams.js';

const probes = new Probes();

@Controller()
class DeadlineController {
  /** Never finishes. */
  @MessagePattern('never')
  never(@Payload() tag: string, @Ctx() ctx: WsMsgpackContext): Observable<never> {
    const p = probes.get(tag).watch(ctx.getSignal());
    p.started++;
    return NEVER.pipe(finalize(() => p.finalized++));
  }

  /** Answers after `ms` (its own timer is the scenario), unless aborted first. */
  @MessagePattern('slow')
  slow(@Payload() { tag, ms }: { tag: string; ms: number }, @WsSignal() signal: AbortSignal): Promise<string> {
    return abortableDelay(probes.get(tag), ms, signal, `slept ${ms} ms`);
  }

  /** Sums a request stream (which, here, never ends). */
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

  /** Emits forever. */
  @MessagePattern('ticks')
  ticks(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return ticker(p, 5).pipe(tap({ complete: () => p.completed++ }));
  }
}

function expectCode(err: unknown, code: string): asserts err is WsMsgpackError {
  expect(err).toBeInstanceOf(WsMsgpackError);
  expect((err as WsMsgpackError).code).toBe(code);
}

describe('deadlines', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [DeadlineController] });
  });
  afterAll(() => svc.close());

  it('a record timeout of 100 ms on a handler that never finishes fails with DEADLINE_EXCEEDED; the handler is aborted and finalized', async () => {
    const tag = newTag('record');
    const err = await errorOf(svc.client().send('never', new WsMsgpackRecordBuilder(tag).setTimeout(100).build()));
    expectCode(err, WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    expect(err.message).toMatch(/deadline of 100 ms exceeded/);
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'handler finalize');
    expect(p.signal?.aborted).toBe(true);
    // The server's own timer and the client's CANCEL race; either reason is correct.
    expect([WsMsgpackErrorCode.DEADLINE_EXCEEDED, WsMsgpackErrorCode.CANCELLED]).toContain(p.abortCode);
    expect(p.abortReasons).toHaveLength(1);
  });

  it('the client-wide timeout option applies when the record sets none', async () => {
    const tag = newTag('clientDefault');
    const err = await errorOf(svc.client({ timeout: 100 }).send('never', tag));
    expectCode(err, WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    expect(err.message).toMatch(/deadline of 100 ms exceeded/);
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'handler finalize');
    expect(p.signal?.aborted).toBe(true);
  });

  it('the client-wide timeout also applies to a record that sets only headers', async () => {
    const tag = newTag('headersOnly');
    const rec = new WsMsgpackRecordBuilder(tag).setHeaders({ a: 1 }).build();
    expectCode(await errorOf(svc.client({ timeout: 100 }).send('never', rec)), WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    await until(() => probes.get(tag).finalized === 1, WAIT_MS, 'handler finalize');
  });

  it('a record timeout overrides a shorter client default (300 ms handler, default 100, record 5000: succeeds)', async () => {
    const tag = newTag('overrideLonger');
    const rec = new WsMsgpackRecordBuilder({ tag, ms: 300 }).setTimeout(5000).build();
    expect(await first(svc.client({ timeout: 100 }).send('slow', rec))).toBe('slept 300 ms');
    const p = probes.get(tag);
    expect(p.completed).toBe(1);
    expect(p.signal?.aborted).toBe(false);
  });

  it('a record timeout overrides a longer client default (300 ms handler, default 5000, record 100: DEADLINE_EXCEEDED)', async () => {
    const tag = newTag('overrideShorter');
    const rec = new WsMsgpackRecordBuilder({ tag, ms: 300 }).setTimeout(100).build();
    const err = await errorOf(svc.client({ timeout: 5000 }).send('slow', rec));
    expectCode(err, WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    expect(err.message).toMatch(/deadline of 100 ms exceeded/);
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'handler aborted');
    expect(p.completed).toBe(0);
  });

  it('there is no deadline by default: a 300 ms handler succeeds with no options', async () => {
    const tag = newTag('noDeadline');
    expect(await first(svc.client().send('slow', { tag, ms: 300 }))).toBe('slept 300 ms');
    const p = probes.get(tag);
    expect(p.completed).toBe(1);
    expect(p.signal?.aborted).toBe(false);
  });

  it('a deadline on a stream that keeps emitting stops it: items so far in order, then DEADLINE_EXCEEDED, producer stopped', async () => {
    const tag = newTag('stream');
    const items: number[] = [];
    const err = await errorOf(
      svc
        .client()
        .send<number>('ticks', new WsMsgpackRecordBuilder(tag).setTimeout(150).build())
        .pipe(tap((v) => items.push(v))),
    );
    expectCode(err, WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    expect(items.length).toBeGreaterThan(0);
    expect(items).toEqual(Array.from({ length: items.length }, (_, i) => i));
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'producer teardown');
    const produced = p.produced;
    await holds(() => p.produced === produced, 'producer count after the deadline');
    expect(p.completed).toBe(0);
    expect(p.signal?.aborted).toBe(true);
  });

  it('a deadline on a request-stream call stops the client source and the handler', async () => {
    const tag = newTag('reqStream');
    const stats: SourceStats = { pulls: 0, finalized: 0 };
    const rec = new WsMsgpackRecordBuilder(endless(stats)).setHeaders({ tag }).setTimeout(150).build();
    expectCode(await errorOf(svc.client().send('sumStream', rec)), WsMsgpackErrorCode.DEADLINE_EXCEEDED);
    await until(() => stats.finalized === 1, WAIT_MS, 'client generator finally');
    const p = probes.get(tag);
    await until(() => p.finalized === 1, WAIT_MS, 'handler finalize');
    expect(p.produced).toBeGreaterThan(0);
    expect(p.signal?.aborted).toBe(true);
    const pulls = stats.pulls;
    await holds(() => stats.pulls === pulls, 'no pulls after the deadline');
  });

  it('the server enforces the deadline itself: a raw peer that never cancels gets ERROR DEADLINE_EXCEEDED and the handler sees that reason', async () => {
    const tag = newTag('raw');
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'never', tag, { t: 100 }]);
      const err = await peer.next((f) => f[1] === 1, 'answer to call 1');
      expect(err).toEqual([5, 1, WsMsgpackErrorCode.DEADLINE_EXCEEDED, 'deadline of 100 ms exceeded']);
      const p = probes.get(tag);
      await until(() => p.finalized === 1, WAIT_MS, 'handler finalize');
      expect(p.abortCode).toBe(WsMsgpackErrorCode.DEADLINE_EXCEEDED);
      // the connection is still usable
      peer.send([1, 3, 'slow', { tag: newTag('rawAfter'), ms: 1 }]);
      expect(await peer.next((f) => f[1] === 3, 'answer to call 3')).toEqual([4, 3, 'slept 1 ms']);
    } finally {
      peer.close();
    }
  });

  it('a deadline that is not reached changes nothing (record 5000 ms, handler 20 ms)', async () => {
    const tag = newTag('notReached');
    const rec = new WsMsgpackRecordBuilder({ tag, ms: 20 }).setTimeout(5000).build();
    expect(await first(svc.client().send('slow', rec))).toBe('slept 20 ms');
    expect(probes.get(tag).signal?.aborted).toBe(false);
  });
});

describe('error codes', () => {
  it('exports every WsMsgpackErrorCode constant with its own name as value', () => {
    expect(WsMsgpackErrorCode).toEqual({
      APPLICATION_ERROR: 'APPLICATION_ERROR',
      UNIMPLEMENTED: 'UNIMPLEMENTED',
      CANCELLED: 'CANCELLED',
      DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
      UNAVAILABLE: 'UNAVAILABLE',
      RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
      PROTOCOL_ERROR: 'PROTOCOL_ERROR',
      INTERNAL: 'INTERNAL',
      GOING_AWAY: 'GOING_AWAY',
    });
  });

  it('errors from the transport are WsMsgpackError instances (Error subclass) with .code, .name and .message', async () => {
    const svc = await startService({ controllers: [DeadlineController] });
    try {
      const c = svc.client();
      const deadline = await errorOf(c.send('never', new WsMsgpackRecordBuilder(newTag('codes')).setTimeout(50).build()));
      expect(deadline).toBeInstanceOf(Error);
      expect(deadline).toBeInstanceOf(WsMsgpackError);
      expect(deadline).toMatchObject({ name: 'WsMsgpackError', code: WsMsgpackErrorCode.DEADLINE_EXCEEDED });
      const unimplemented = await errorOf(c.send('no-such-pattern', {}));
      expect(unimplemented).toBeInstanceOf(WsMsgpackError);
      expect((unimplemented as WsMsgpackError).code).toBe(WsMsgpackErrorCode.UNIMPLEMENTED);
      const unreachable = await errorOf(svc.client({ url: 'ws://127.0.0.1:1', reconnect: false }).send('never', {}));
      expect(unreachable).toBeInstanceOf(WsMsgpackError);
      expect((unreachable as WsMsgpackError).code).toBe(WsMsgpackErrorCode.UNAVAILABLE);
    } finally {
      await svc.close();
    }
  });
});
