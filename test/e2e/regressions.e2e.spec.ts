/**
 * End-to-end regression tests for the bugs fixed after 7e03437, one (or one group) per bug, plus
 * the `'error'` event semantics of the server. Real sockets, real Nest apps, real msgpack.
 */
import { Controller } from '@nestjs/common';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { Readable } from 'node:stream';
import { concat, from, lastValueFrom, NEVER, type Observable, of, reduce, tap } from 'rxjs';
import WebSocket from 'ws';
import { WsHeaders, WsMsgpackError, WsMsgpackRecordBuilder, WsSignal, type WsMsgpackClient } from '../../src/index.js';
import { errorOf, first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { codeOf, gate, holds, newTag, type Gate } from '../support/streams.js';

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

const events: unknown[] = [];

@Controller()
class RegressionController {
  @MessagePattern('ping')
  ping(@Payload() n: number): number {
    return n + 1;
  }

  @MessagePattern('letters')
  letters(): Observable<string> {
    return from(['a', 'b', 'c']);
  }

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

  /** Waits (e.g. for a database) until the test opens the gate, then returns a stream-like result. */
  @MessagePattern('late')
  async late(@Payload() { tag, kind }: { tag: string; kind: LateKind }, @WsSignal() signal: AbortSignal): Promise<unknown> {
    const rec = lateRecord(tag);
    rec.signal = signal;
    await rec.gate.promise;
    rec.result = lateResult(kind, rec);
    return rec.result;
  }

  @EventPattern('noted')
  noted(@Payload() data: unknown): void {
    events.push(data);
  }
}

const controllers = [RegressionController];

describe('regressions', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers });
  });
  afterAll(() => svc.close());

  // ---------------------------------------------------------------- bug 1

  it('bug 1: client.close() during the handshake, then connect(): the cancelled attempt never opens, no orphaned socket, no stray connect', async () => {
    const held: ((ok: boolean) => void)[] = [];
    const own = await startService({ controllers }, { authenticate: () => new Promise<boolean>((resolve) => held.push(resolve)) });
    let serverConnections = 0;
    own.server.on('connection', () => serverConnections++);
    const client = own.client();
    const log: string[] = [];
    client.status.subscribe((s) => log.push(`status ${s}`));
    client.on('connect', () => log.push('connect event'));
    try {
      // Attempt A: the server holds its upgrade in authenticate().
      const a = client.connect().then(
        () => 'opened',
        (e: unknown) => `failed ${codeOf(e)}`,
      );
      await until(() => held.length === 1, WAIT_MS, 'upgrade A reaching authenticate()');
      log.push('-- close()');
      const closing = client.close();
      // Attempt B, while A is still held by the server.
      const b = client.connect();
      await until(() => held.length === 2, WAIT_MS, 'upgrade B reaching authenticate()');
      held[1]!(true);
      const connB = await within(b, WAIT_MS, 'connect() B');
      expect(connB.isClosed).toBe(false);
      log.push('-- A authorized');
      held[0]!(true);
      const outcomeA = await within(a, WAIT_MS, 'connect() A');
      await within(closing, WAIT_MS, 'the first close()');
      log.push('-- final close()');
      await client.close();
      // Nothing may stay open on the server once the client has closed.
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'no server-side connection left after client.close()');
      await holds(() => own.server.connectionCount === 0 && serverConnections === 1, 'one server connection ever (B), none left open');
      // The cancelled attempt's connect() failed; it never opened, so no 'connected' or 'connect' came from it.
      expect(outcomeA).toBe('failed UNAVAILABLE');
      expect(log).toEqual([
        'status connecting',
        '-- close()',
        'status closed',
        'status connecting',
        'status connected',
        'connect event',
        '-- A authorized',
        '-- final close()',
        'status closed',
      ]);
    } finally {
      for (const resolve of held) resolve(false);
      await own.close();
    }
  });

  // ---------------------------------------------------------------- bug 2

  it('bug 2: iterate(): concurrent next() calls all resolve, in order, with the right items', async () => {
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

  // ---------------------------------------------------------------- bug 3

  describe("bug 3: a handler's request stream errors with the call's reason when the call ends first", () => {
    /** Starts 'sumInput' with a request stream 1, 2, 3 that never ends. */
    function startSum(client: WsMsgpackClient): { rec: InputRecord; call: Observable<unknown> } {
      const tag = newTag('sum');
      const record = new WsMsgpackRecordBuilder(concat(of(1, 2, 3), NEVER)).setHeaders({ tag }).build();
      return { rec: inputRecord(tag), call: client.send('sumInput', record) };
    }

    it('cancel (unsubscribe): the input errors CANCELLED instead of completing', async () => {
      const { rec, call } = startSum(svc.client());
      const sub = call.subscribe({ error: () => {} });
      await until(() => rec.received === 3, WAIT_MS, 'three items reaching the handler');
      sub.unsubscribe();
      await until(() => rec.outcome !== undefined, WAIT_MS, 'the handler input ending');
      expect(rec.outcome).toBe('errored WsMsgpackError CANCELLED');
    });

    it('deadline: the input errors DEADLINE_EXCEEDED instead of completing', async () => {
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

    it('disconnect: the input errors UNAVAILABLE instead of completing', async () => {
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

  // ---------------------------------------------------------------- bug 4

  describe('bug 4: a frame is never written to a socket that is not OPEN, and never lost', () => {
    // (Since the browser-client review: a closing socket takes no new call or event at all. They
    // wait for the next connection like any call made while disconnected, or fail at once when
    // they do not wait for ready; before, they failed with "not sent" against the closing socket.)
    it('emit() while the socket is CLOSING waits and arrives once, on the next connection', async () => {
      const client = svc.client();
      await client.connect();
      const ws = client.unwrap<WebSocket>();
      ws.close();
      expect(ws.readyState).toBe(WebSocket.CLOSING);
      await within(lastValueFrom(client.emit('noted', 'while closing'), { defaultValue: undefined }), WAIT_MS, 'emit after reconnect');
      await until(() => events.includes('while closing'), WAIT_MS, 'event after reconnect');
      expect(events.filter((e) => e === 'while closing')).toHaveLength(1);
      expect(client.unwrap()).not.toBe(ws);
    });

    it('with waitForReady: false (gRPC fail-fast), send() and emit() while the socket is CLOSING wait for the next attempt (none failed) and arrive once, on the next connection', async () => {
      // (Before issue 16, fail-fast failed them at once while the connection was down; it now fails
      // at once only while the last attempt failed, as gRPC and Nest TCP do: client-parity tests that.)
      const client = svc.client({ waitForReady: false });
      await client.connect();
      const ws = client.unwrap<WebSocket>();
      ws.close();
      expect(ws.readyState).toBe(WebSocket.CLOSING);
      const answer = first(client.send<number>('ping', 1), WAIT_MS);
      const emitted = within(lastValueFrom(client.emit('noted', 'while closing, fail-fast'), { defaultValue: undefined }), WAIT_MS, 'emit after reconnect');
      expect(await answer).toBe(2);
      await emitted;
      await until(() => events.includes('while closing, fail-fast'), WAIT_MS, 'event after reconnect');
      expect(events.filter((e) => e === 'while closing, fail-fast')).toHaveLength(1);
      expect(client.unwrap()).not.toBe(ws);
    });
  });

  // ---------------------------------------------------------------- bug 5

  it("bug 5: a throwing 'connection' listener is reported through 'error' and does not corrupt the connection table", async () => {
    // (On 7e03437 the throw also escaped the voided upgrade handler as an unhandled rejection,
    // which Jest reports as "Test suite failed to run: connection listener boom".)
    const own = await startService({ controllers });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    own.server.on('connection', (_ws, req) => {
      if (req.url === '/boom') throw new Error('connection listener boom');
    });
    try {
      const bad = own.client({ url: `${own.url}/boom` });
      expect(await first(bad.send('ping', 1))).toBe(2);
      // Other clients keep working meanwhile.
      const good = own.client();
      expect(await first(good.send('ping', 2))).toBe(3);
      expect(own.server.connectionCount).toBe(2);
      await bad.close();
      await good.close();
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'connectionCount back to 0 after the clients closed');
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/connection listener boom/);
      // And after it left.
      const later = own.client();
      expect(await first(later.send('ping', 3))).toBe(4);
      await later.close();
      await until(() => own.server.connectionCount === 0, WAIT_MS, 'connectionCount back to 0');
    } finally {
      await own.close();
    }
  });

  // ---------------------------------------------------------------- bug 6

  describe('bug 6: a handler result that resolves after its call ended is released', () => {
    const kinds: LateKind[] = ['readable', 'iterator', 'generator'];

    it.each(kinds)('%s result, call cancelled (unsubscribe) before the handler answered', async (kind) => {
      const tag = newTag(`late-${kind}`);
      const rec = lateRecord(tag);
      const sub = svc
        .client()
        .send('late', { tag, kind })
        .subscribe({ error: () => {} });
      await until(() => rec.signal !== undefined, WAIT_MS, 'handler started');
      sub.unsubscribe();
      await until(() => rec.signal!.aborted, WAIT_MS, 'the server seeing the cancel');
      rec.gate.open();
      await until(() => rec.released > 0, WAIT_MS, `the late ${kind} being released`);
      expect(rec.released).toBe(1);
      await expectReleased(kind, rec.result);
    });

    it.each(kinds)('%s result, call past its deadline before the handler answered', async (kind) => {
      const tag = newTag(`late-${kind}`);
      const rec = lateRecord(tag);
      const err = await errorOf(svc.client().send('late', new WsMsgpackRecordBuilder({ tag, kind }).setTimeout(100).build()));
      expect(codeOf(err)).toBe('DEADLINE_EXCEEDED');
      await until(() => rec.signal?.aborted === true, WAIT_MS, 'the server ending the call');
      rec.gate.open();
      await until(() => rec.released > 0, WAIT_MS, `the late ${kind} being released`);
      expect(rec.released).toBe(1);
      await expectReleased(kind, rec.result);
    });

    async function expectReleased(kind: LateKind, result: unknown): Promise<void> {
      if (kind === 'readable') expect((result as Readable).destroyed).toBe(true);
      if (kind === 'generator') expect(await (result as AsyncGenerator<number>).next()).toEqual({ value: undefined, done: true });
    }
  });
});

// ---------------------------------------------------------------- 'error' event semantics

describe("server 'error' event", () => {
  it('a throwing authenticate() is reported through on("error") and the upgrade is refused with 500', async () => {
    const own = await startService(
      { controllers },
      {
        authenticate: () => {
          throw new Error('auth backend down');
        },
      },
    );
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    try {
      const err = await errorOf(own.client().send('ping', 1));
      expect(err).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/500/) });
      await until(() => errors.length === 1, WAIT_MS, "authenticate()'s error reaching on('error')");
      expect(errors[0]!.message).toMatch(/auth backend down/);
      expect(own.server.connectionCount).toBe(0);
    } finally {
      await own.close();
    }
  });

  it("a peer's invalid frame reaches on('error') as a WsMsgpackError with code PROTOCOL_ERROR; the connection stays usable", async () => {
    const own = await startService({ controllers });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    const peer = await RawPeer.open(own.url);
    try {
      peer.sendBytes(Uint8Array.of(0xc1)); // 0xc1: a byte msgpack never uses
      const reply = await peer.next((f) => f[0] === 5 && f[1] === 0, 'connection-level ERROR');
      expect(reply[2]).toBe('PROTOCOL_ERROR');
      await until(() => errors.length === 1, WAIT_MS, "the violation reaching on('error')");
      expect(errors[0]).toBeInstanceOf(WsMsgpackError);
      expect(codeOf(errors[0])).toBe('PROTOCOL_ERROR');
      peer.send([1, 1, 'ping', 41]);
      expect(await peer.next((f) => f[1] === 1, 'ping answer')).toEqual([4, 1, 42]);
    } finally {
      peer.close();
      await own.close();
    }
  });

  it("a throwing 'disconnect' listener is reported through on('error'); the server goes on", async () => {
    const own = await startService({ controllers });
    const errors: Error[] = [];
    own.server.on('error', (e) => errors.push(e));
    own.server.on('disconnect', () => {
      throw new Error('disconnect listener boom');
    });
    try {
      const c = own.client();
      expect(await first(c.send('ping', 1))).toBe(2);
      await c.close();
      await until(() => errors.length === 1, WAIT_MS, "the listener's error reaching on('error')");
      expect(errors[0]!.message).toMatch(/disconnect listener boom/);
      expect(own.server.connectionCount).toBe(0);
      const d = own.client();
      expect(await first(d.send('ping', 2))).toBe(3);
    } finally {
      await own.close();
    }
  });
});
