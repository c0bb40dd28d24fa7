import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { finalize, NEVER, type Observable, range, reduce, tap } from 'rxjs';
import { WsHeaders, WsMsgpackError, WsMsgpackClient, WsMsgpackErrorCode, WsMsgpackRecordBuilder, WsSignal } from '../../src/index.js';
import { all, errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, gate, type Gate, type Probe, Probes, newTag } from '../support/streams.js';

const probes = new Probes();

/** Gates of the 'slow' handler, by tag. */
const gates = new Map<string, Gate>();

@Controller()
class FlowController {
  /** A pull source: 0 … count-1, every pull counted. */
  @MessagePattern('count')
  async *count(@Payload() { tag, count }: { tag: string; count: number }, @WsSignal() signal: AbortSignal): AsyncGenerator<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    try {
      for (let i = 0; i < count; i++) {
        p.pulls++;
        yield i;
      }
      p.completed++;
    } finally {
      p.finalized++;
    }
  }

  /** A push source far larger than highWaterMark, emitting synchronously. */
  @MessagePattern('flood')
  flood(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return range(0, 50_000).pipe(
      tap(() => p.produced++),
      finalize(() => p.finalized++),
    );
  }

  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  /** Never reads its request stream. */
  @MessagePattern('hold')
  hold(@Payload() _items$: Observable<number>, @WsHeaders('tag') tag: string, @WsSignal() signal: AbortSignal): Observable<never> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return NEVER.pipe(finalize(() => p.finalized++));
  }

  @MessagePattern('sum')
  sum(@Payload() items$: Observable<number>): Observable<number> {
    return items$.pipe(reduce((a, b) => a + b, 0));
  }

  /** Resolves when the test opens the gate of `tag`. */
  @MessagePattern('slow')
  async slow(@Payload() tag: string): Promise<string> {
    const p = probes.get(tag);
    p.started++;
    const g = gates.get(tag) ?? gate();
    gates.set(tag, g);
    await g.promise;
    return `done ${tag}`;
  }
}

const isNext =
  (id: number) =>
  (f: unknown[]): boolean =>
    f[0] === 3 && f[1] === id;
const isFor =
  (id: number) =>
  (f: unknown[]): boolean =>
    f[1] === id;

/** A raw round trip on the same socket: every frame the server sent before answering it has arrived. */
async function barrier(peer: RawPeer, id: number): Promise<void> {
  peer.send([1, id, 'echo', `barrier ${id}`]);
  expect(await peer.next((f) => f[0] === 4 && f[1] === id, `barrier ${id}`)).toEqual([4, id, `barrier ${id}`]);
}

/**
 * Streams `count` from the server and records, at each delivery, how far the server's generator
 * had been pulled ahead of what the client had received.
 */
async function streamWithLeads(client: WsMsgpackClient, p: Probe, data: unknown): Promise<{ items: number[]; leads: number[] }> {
  const leads: number[] = [];
  let delivered = 0;
  const items = await all(
    client.send<number>('count', data).pipe(
      tap(() => {
        delivered++;
        leads.push(p.pulls - delivered);
      }),
    ),
  );
  return { items, leads };
}

describe('flow control: response streams (pull sources are pulled only as credit allows)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [FlowController] });
  });
  afterAll(() => svc.close());

  it('wire level: REQUEST n:4 gets exactly 4 NEXT, then exactly n more per CREDIT n', async () => {
    const tag = newTag('wire');
    const p = probes.get(tag);
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'count', { tag, count: 20 }, { n: 4 }]);
      await until(() => peer.frames.filter(isNext(1)).length >= 4, WAIT_MS, '4 NEXT frames');
      await barrier(peer, 3);
      await barrier(peer, 5);
      expect(peer.frames.filter(isFor(1))).toEqual([0, 1, 2, 3].map((v) => [3, 1, v]));
      expect(p.pulls).toBeGreaterThanOrEqual(4);
      expect(p.pulls).toBeLessThanOrEqual(4 + 1); // window + at most one read-ahead

      peer.send([7, 1, 3]);
      await until(() => peer.frames.filter(isNext(1)).length >= 7, WAIT_MS, '7 NEXT frames');
      await barrier(peer, 7);
      await barrier(peer, 9);
      expect(peer.frames.filter(isFor(1))).toEqual([0, 1, 2, 3, 4, 5, 6].map((v) => [3, 1, v]));
      expect(p.pulls).toBeGreaterThanOrEqual(7);
      expect(p.pulls).toBeLessThanOrEqual(7 + 1);

      peer.send([7, 1, 1]);
      peer.send([7, 1, 1]); // credit adds up
      await until(() => peer.frames.filter(isNext(1)).length >= 9, WAIT_MS, '9 NEXT frames');
      await barrier(peer, 11);
      expect(peer.frames.filter(isFor(1))).toHaveLength(9);
      expect(p.pulls).toBeGreaterThanOrEqual(9);
      expect(p.pulls).toBeLessThanOrEqual(9 + 1);

      peer.send([7, 1, 100]);
      await until(() => peer.frames.some((f) => f[0] === 4 && f[1] === 1), WAIT_MS, 'COMPLETE');
      const frames = peer.frames.filter(isFor(1));
      expect(frames.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, v) => [3, 1, v]));
      expect(frames.slice(20)).toEqual([[4, 1]]);
      expect(p.completed).toBe(1);
    } finally {
      peer.close();
    }
  });

  it('wire level: REQUEST n:0 sends nothing until the first CREDIT', async () => {
    const tag = newTag('zero');
    const p = probes.get(tag);
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'count', { tag, count: 3 }, { n: 0 }]);
      await barrier(peer, 3);
      await barrier(peer, 5);
      expect(peer.frames.filter(isFor(1))).toEqual([]);
      // one item is pulled ahead of the credit and held: nothing is sent for it
      expect(p.started).toBe(1);
      expect(p.pulls).toBe(1);
      peer.send([7, 1, 2]);
      await until(() => peer.frames.filter(isNext(1)).length >= 2, WAIT_MS, '2 NEXT');
      await barrier(peer, 7);
      expect(peer.frames.filter(isFor(1))).toEqual([
        [3, 1, 0],
        [3, 1, 1],
      ]);
      peer.send([7, 1, 5]);
      await until(() => peer.frames.some((f) => f[0] === 4 && f[1] === 1), WAIT_MS, 'COMPLETE');
      expect(peer.frames.filter(isFor(1))).toEqual([
        [3, 1, 0],
        [3, 1, 1],
        [3, 1, 2],
        [4, 1],
      ]);
    } finally {
      peer.close();
    }
  });

  it('client option window: 4 keeps the generator at most one window ahead of what the client received', async () => {
    const tag = newTag('clientWindow');
    const p = probes.get(tag);
    const { items, leads } = await streamWithLeads(svc.client({ window: 4 }), p, { tag, count: 200 });
    expect(items).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(Math.max(...leads)).toBeLessThanOrEqual(4 + 1); // window + at most one read-ahead
    expect(p.pulls).toBe(200);
  });

  it('record .setWindow(4) does the same per call', async () => {
    const tag = newTag('recordWindow');
    const p = probes.get(tag);
    const { items, leads } = await streamWithLeads(svc.client(), p, new WsMsgpackRecordBuilder({ tag, count: 200 }).setWindow(4).build());
    expect(items).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(Math.max(...leads)).toBeLessThanOrEqual(4 + 1); // window + at most one read-ahead
  });

  it('client.iterate() with window: 4: a consumer that takes items one by one keeps the generator within window + 1', async () => {
    const tag = newTag('iterate');
    const p = probes.get(tag);
    const client = svc.client({ window: 4 });
    const echo = async (): Promise<void> => {
      // A round trip on the same connection: every CREDIT sent before it reached the server, and
      // the server's generator has run as far as that credit allows.
      expect(await first(client.send('echo', 'sync'))).toBe('sync');
    };
    const it = client.iterate<number>('count', { tag, count: 1000 })[Symbol.asyncIterator]();
    const got: number[] = [];
    for (let k = 1; k <= 12; k++) {
      const r = await within(it.next(), WAIT_MS, `item ${k}`);
      got.push(r.value as number);
      await echo();
      await echo();
      expect(p.pulls - k).toBeLessThanOrEqual(4 + 1);
    }
    expect(got).toEqual(Array.from({ length: 12 }, (_, i) => i));
    // not vacuous: the producer does run up to its credit while the consumer sits still
    await until(() => p.pulls >= 12 + 2, WAIT_MS, 'producer reached its credit');
    await echo();
    expect(p.pulls).toBeLessThanOrEqual(12 + 4 + 1);
    // return() (what `break` does) cancels the call on the server
    await within(it.return!(), WAIT_MS, 'iterator return');
    await until(() => p.finalized === 1, WAIT_MS, 'generator finally');
    expect(p.abortCode).toBe(WsMsgpackErrorCode.CANCELLED);
    expect(p.completed).toBe(0);
  });

  it('control: without a window (0 = unlimited) the generator runs far ahead of the client', async () => {
    const tag = newTag('unlimited');
    const p = probes.get(tag);
    const { items, leads } = await streamWithLeads(svc.client(), p, new WsMsgpackRecordBuilder({ tag, count: 200 }).setWindow(0).build());
    expect(items).toHaveLength(200);
    // The lead the two tests above bound to 4 is measurable: here it is large.
    expect(Math.max(...leads)).toBeGreaterThan(50);
  });
});

describe('flow control: push-source overflow (maxStreamBufferBytes)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [FlowController] }, { maxStreamBufferBytes: 4096 });
  });
  afterAll(() => svc.close());

  it('a synchronous range(0, 50000) to a peer granting n:1 fails RESOURCE_EXHAUSTED after at most 1 NEXT; the connection stays usable', async () => {
    const tag = newTag('flood');
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'flood', tag, { n: 1 }]);
      const err = await peer.next((f) => f[0] === 5 && f[1] === 1, 'ERROR for call 1');
      expect(err[2]).toBe(WsMsgpackErrorCode.RESOURCE_EXHAUSTED);
      expect(err[3]).toMatch(/stream buffer overflow: this stream's buffer is full \(maxStreamBufferBytes 4096\)/);
      const nexts = peer.frames.filter(isNext(1));
      expect(nexts.length).toBeLessThanOrEqual(1);
      if (nexts.length === 1) expect(nexts[0]).toEqual([3, 1, 0]);
      const p = probes.get(tag);
      await until(() => p.finalized === 1, WAIT_MS, 'flood finalize');
      // the same connection still answers
      await barrier(peer, 3);
      peer.send([7, 1, 10]); // late credit for the failed call: ignored
      await barrier(peer, 5);
      expect(peer.frames.filter(isFor(1))).toEqual(nexts);
      expect(peer.closed).toBeUndefined();
    } finally {
      peer.close();
    }
  });

  it('the overflow reaches a WsMsgpackClient (window 1) as a WsMsgpackError with code RESOURCE_EXHAUSTED', async () => {
    const err = await errorOf(svc.client({ window: 1 }).send('flood', newTag('floodClient')));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect((err as WsMsgpackError).code).toBe(WsMsgpackErrorCode.RESOURCE_EXHAUSTED);
  });
});

describe('flow control: request-stream credit', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [FlowController] }, { window: 4 });
  });
  afterAll(() => svc.close());

  it('the server grants CREDIT(window) first; a peer that sends more than credited gets PROTOCOL_ERROR for that call', async () => {
    const tag = newTag('overrun');
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'hold', null, { h: { tag }, s: true }]);
      const firstFrame = await peer.next(isFor(1), 'first frame of call 1');
      expect(firstFrame).toEqual([7, 1, 4]);
      const p = probes.get(tag);
      await until(() => p.started === 1, WAIT_MS, 'handler started');
      for (let i = 0; i < 5; i++) peer.send([3, 1, i]);
      const err = await peer.next((f) => f[0] === 5 && f[1] === 1, 'ERROR for call 1');
      expect(err[2]).toBe(WsMsgpackErrorCode.PROTOCOL_ERROR);
      expect(err[3]).toMatch(/request-stream NEXT beyond granted credit \(window 4\)/);
      await until(() => p.finalized === 1, WAIT_MS, 'handler torn down');
      expect(p.abortCode).toBe(WsMsgpackErrorCode.PROTOCOL_ERROR);
      // the connection stays up
      await barrier(peer, 3);
      expect(peer.closed).toBeUndefined();
    } finally {
      peer.close();
    }
  });

  it('a peer that honours the CREDIT top-ups streams any number of items (window 4, 30 items)', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'sum', null, { s: true }]);
      let credit = 0;
      let sent = 0;
      const total = 30;
      const grants: number[] = [];
      while (sent < total) {
        if (credit === 0) {
          const c = await peer.next((f) => f[0] === 7 && f[1] === 1, 'CREDIT');
          credit += c[2] as number;
          grants.push(c[2] as number);
          continue;
        }
        peer.send([3, 1, ++sent]);
        credit--;
      }
      peer.send([4, 1]);
      expect(await peer.next((f) => f[1] === 1 && f[0] !== 7, 'answer')).toEqual([4, 1, (total * (total + 1)) / 2]);
      expect(grants[0]).toBe(4);
      expect(grants.every((g) => g >= 1 && g <= 4)).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('the client library honours the server window (a 100-item request stream to window 4 sums correctly)', async () => {
    expect(await first(svc.client().send('sum', range(1, 100)))).toBe(5050);
  });
});

describe('limits: maxConcurrentCalls', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [FlowController] }, { maxConcurrentCalls: 2 });
  });
  afterAll(() => svc.close());

  it('refuses the third concurrent call with RESOURCE_EXHAUSTED; the first two succeed; the connection stays up', async () => {
    const client = svc.client();
    const tags = [newTag('slow'), newTag('slow'), newTag('slow')];
    for (const t of tags) gates.set(t, gate());
    const outcomes = tags.map((t) =>
      first(client.send<string>('slow', t)).then(
        (v) => ({ ok: v }),
        (e: unknown) => ({ err: e }),
      ),
    );
    const third = await within(outcomes[2]!, WAIT_MS, 'third call');
    expect('err' in third).toBe(true);
    const err = (third as { err: unknown }).err;
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect((err as WsMsgpackError).code).toBe(WsMsgpackErrorCode.RESOURCE_EXHAUSTED);
    expect((err as WsMsgpackError).message).toMatch(/too many concurrent calls on this connection \(limit 2\)/);
    await until(() => probes.get(tags[0]!).started === 1 && probes.get(tags[1]!).started === 1, WAIT_MS, 'first two running');
    expect(tags.map((t) => probes.get(t).started)).toEqual([1, 1, 0]); // the refused call never reached its handler
    for (const t of tags) gates.get(t)!.open();
    expect(await within(Promise.all(outcomes.slice(0, 2)), WAIT_MS, 'first two')).toEqual([{ ok: `done ${tags[0]}` }, { ok: `done ${tags[1]}` }]);
    // slots are free again on the same connection
    const more = [newTag('slow'), newTag('slow')];
    for (const t of more) gates.set(t, gate());
    const next = more.map((t) => first(client.send<string>('slow', t)));
    await until(() => more.every((t) => probes.get(t).started === 1), WAIT_MS, 'two new calls running');
    for (const t of more) gates.get(t)!.open();
    expect(await within(Promise.all(next), WAIT_MS, 'new calls')).toEqual(more.map((t) => `done ${t}`));
    expect(await all(client.send('echo', 'still up'))).toEqual(['still up']);
  });

  it('a finished stream frees its slot (3 sequential streams with limit 2)', async () => {
    const client = svc.client();
    for (let i = 0; i < 3; i++) {
      const tag = newTag('seq');
      expect(await all(client.send<number>('count', { tag, count: 3 }))).toEqual([0, 1, 2]);
    }
  });

  it('the limit is per connection: another client is not refused while the first holds two calls', async () => {
    const a = svc.client();
    const tags = [newTag('slowA'), newTag('slowA')];
    for (const t of tags) gates.set(t, gate());
    const held = tags.map((t) => first(a.send<string>('slow', t)));
    await until(() => tags.every((t) => probes.get(t).started === 1), WAIT_MS, 'a holds two calls');
    expect(await first(svc.client().send('echo', 'b is served'))).toBe('b is served');
    for (const t of tags) gates.get(t)!.open();
    expect(await within(Promise.all(held), WAIT_MS, 'held calls')).toEqual(tags.map((t) => `done ${t}`));
  });
});

describe('flow control: a synchronous push source is stopped at the overflow', () => {
  let syncEmitted = 0;
  @Controller()
  class BigSyncController {
    /** A synchronous push source (like from(rows) / range) much larger than the stream buffer. */
    @MessagePattern('bigSync')
    bigSync(@Payload() n: number): Observable<number> {
      return range(0, n).pipe(tap(() => syncEmitted++));
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [BigSyncController] }, { maxStreamBufferBytes: 4096 });
    svc.server.on('error', () => {});
  });
  afterAll(() => svc.close());

  it('after RESOURCE_EXHAUSTED the server stops the synchronous source at once (not after producing all of it)', async () => {
    const err = await errorOf(svc.client().send('bigSync', new WsMsgpackRecordBuilder(200_000).setWindow(1).build()));
    expect(codeOf(err)).toBe('RESOURCE_EXHAUSTED');
    // The buffer (4 KiB) is full after a few hundred items; before the fix the other items were
    // still produced, synchronously (an endless synchronous source never returned).
    expect(syncEmitted).toBeLessThan(10_000);
  });
});

describe('limits: maxConcurrentCalls also counts handlers still running after CANCEL (CANCEL cannot be used to run more)', () => {
  let running = 0;
  let peak = 0;
  let work = gate();
  @Controller()
  class StubbornController {
    /** Ignores its abort signal (most Promise handlers do): runs until the test lets it. */
    @MessagePattern('stubborn')
    async stubborn(): Promise<number> {
      running++;
      peak = Math.max(peak, running);
      await work.promise;
      running--;
      return 1;
    }

    /** The same as an async generator. */
    @MessagePattern('stubbornGen')
    async *stubbornGen(): AsyncGenerator<number> {
      running++;
      peak = Math.max(peak, running);
      await work.promise;
      running--;
      yield 1;
    }
  }
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [StubbornController] }, { maxConcurrentCalls: 2 });
    svc.server.on('error', () => {});
  });
  beforeEach(() => {
    work = gate();
    peak = 0;
  });
  afterEach(async () => {
    work.open();
    await until(() => running === 0, WAIT_MS, 'handler bodies finished');
  });
  afterAll(() => svc.close());

  const refused = (peer: RawPeer): number => peer.frames.filter((f) => f[0] === 5 && f[2] === 'RESOURCE_EXHAUSTED').length;

  describe.each([
    ['a Promise handler', 'stubborn'],
    ['an async generator handler', 'stubbornGen'],
  ])('%s', (_what, pattern) => {
    it('REQUEST, wait until its body runs, CANCEL, six times: two bodies run, four calls are refused', async () => {
      const peer = await RawPeer.open(svc.url);
      try {
        let id = 1;
        for (let i = 0; i < 6; i++, id += 2) {
          const before = running;
          peer.send([1, id, pattern, null]);
          // Wait until the body runs (or the REQUEST was refused), then cancel it.
          await until(() => running > before || peer.frames.some((f) => f[0] === 5 && f[1] === id), WAIT_MS, `call ${id} started or refused`);
          peer.send([6, id]); // frames are handled in order: the next REQUEST comes after this CANCEL
        }
        await until(() => refused(peer) === 4, WAIT_MS, 'four refusals');
        expect({ peak, running, refused: refused(peer) }).toEqual({ peak: 2, running: 2, refused: 4 });
      } finally {
        peer.close();
      }
    });
  });

  it('a Promise handler: 100 REQUEST+CANCEL pairs sent at once start two bodies, the other 98 calls are refused', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      for (let id = 1; id < 200; id += 2) {
        peer.send([1, id, 'stubborn', null]);
        peer.send([6, id]);
      }
      peer.send([1, 201, 'wsmp:ping', null]); // answered after every pair was handled: frames are handled in order
      await peer.next((f) => f[1] === 201, 'the keep-alive answer');
      expect({ peak, running, refused: refused(peer) }).toEqual({ peak: 2, running: 2, refused: 98 });
    } finally {
      peer.close();
    }
  });
});
