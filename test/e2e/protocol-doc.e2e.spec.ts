/**
 * Behaviour that docs/PROTOCOL.md states for implementers in other languages, checked on the wire:
 * frames for ids that name no running call, unknown frame types, which refused REQUEST ids count as
 * used, a requester's ERROR on its request stream, the credit top-up rule, the two meanings of 0,
 * and the two ways a stream's last item arrives.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { decode, encode } from '@msgpack/msgpack';
import { catchError, concat, lastValueFrom, NEVER, Observable, of, throwError, toArray } from 'rxjs';
import WebSocket, { WebSocketServer } from 'ws';
import { WsMsgpackClient, WsMsgpackError, WsMsgpackErrorCode, WsMsgpackRecordBuilder } from '../../src/index.js';
import { all, errorOf, startService, until, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { holds } from '../support/streams.js';

const MAX_ID = 2 ** 53 - 1;

/** What each request-stream handler's input errored with, by the tag sent in the first item. */
const inputErrors = new Map<string, unknown>();

function recordInput(items: Observable<unknown>): Observable<unknown> {
  let tag = '';
  return new Observable<unknown>((subscriber) =>
    items.subscribe({
      next: (v) => {
        if (tag === '') tag = String(v);
        subscriber.next(v);
      },
      error: (e: unknown) => {
        inputErrors.set(tag, e);
        subscriber.error(e);
      },
      complete: () => subscriber.complete(),
    }),
  );
}

@Controller()
class DocController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }

  @MessagePattern('hold')
  hold(): Observable<never> {
    return NEVER;
  }

  /** Request stream: answers with every item; lets an input error propagate. */
  @MessagePattern('collect')
  collect(@Payload() items: Observable<unknown>): Observable<unknown[]> {
    return recordInput(items).pipe(toArray());
  }

  /** Request stream: maps an input error to an ordinary answer. */
  @MessagePattern('collect-mapped')
  collectMapped(@Payload() items: Observable<unknown>): Observable<unknown> {
    return recordInput(items).pipe(
      toArray(),
      catchError((e: unknown) => of({ inputFailed: e instanceof WsMsgpackError ? e.code : e })),
    );
  }

  /** Request stream, answered by an async generator: an input error is thrown while the transport pulls it. */
  @MessagePattern('collect-gen')
  async *collectGen(@Payload() items: Observable<unknown>): AsyncGenerator<unknown[]> {
    yield await lastValueFrom(recordInput(items).pipe(toArray()));
  }

  @MessagePattern('gen')
  async *gen(): AsyncGenerator<number> {
    yield 1;
    yield 2;
    yield 3;
  }

  @MessagePattern('of')
  of(): Observable<number> {
    return of(1, 2, 3);
  }

  /** Completes in a later macrotask than its last value. */
  @MessagePattern('later')
  later(): Observable<number> {
    return new Observable<number>((subscriber) => {
      subscriber.next(1);
      const t = setTimeout(() => subscriber.complete(), 5);
      return () => clearTimeout(t);
    });
  }
}

const isFor = (id: number) => (f: unknown[]) => f[1] === id;

/** After `peer` got the answer to a fresh echo call `id`, nothing else may have arrived. */
async function nothingElse(peer: RawPeer, id: number): Promise<void> {
  peer.send([1, id, 'echo', 'alive']);
  expect(await peer.next(isFor(id))).toEqual([4, id, 'alive']);
  expect(peer.frames).toEqual([]);
}

describe('PROTOCOL.md, as seen by a raw peer of the server', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [DocController] });
  });
  afterAll(() => svc.close());

  it('drops NEXT/COMPLETE/ERROR/CREDIT/CANCEL that name no running call, in either id space, without an answer', async () => {
    const peer = await RawPeer.open(svc.url);
    // The server's own id space (even): calls it never started.
    peer.send([3, 2, 'x']);
    peer.send([4, 2]);
    peer.send([4, 2, 'x']);
    peer.send([5, 2, 'X', 'm']);
    peer.send([7, 2, 1]);
    peer.send([6, 2]); // CANCEL for a call the receiver "started": a violation, but no such call
    // The peer's id space (odd): ids never used, and one that has ended.
    peer.send([1, 1, 'echo', 'done']);
    expect(await peer.next(isFor(1))).toEqual([4, 1, 'done']);
    peer.send([3, 1, 'x']);
    peer.send([4, 1]);
    peer.send([5, 1, 'X', 'm']);
    peer.send([7, 1, 1]);
    peer.send([6, 1]);
    peer.send([3, 99, 'x']);
    peer.send([7, 99, 5]);
    await nothingElse(peer, 3);
    peer.close();
  });

  it('reads the id of an unknown frame type: [9, peer id] is answered on that id, [9, own id] without a call is dropped, [9, 0] gets id 0', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([9, 7]);
    expect(await peer.next(isFor(7))).toEqual([5, 7, 'PROTOCOL_ERROR', 'unknown frame type 9']);
    peer.send([9, 4]);
    peer.send([9, 0]);
    expect(await peer.next(isFor(0))).toEqual([5, 0, 'PROTOCOL_ERROR', 'frame type 9: call id must be an integer in 1..2^53-1']);
    await nothingElse(peer, 9);
    peer.close();
  });

  it('answers an invalid frame for a peer id with no running call on that id (CREDIT 0)', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([7, 5, 0]);
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', 'CREDIT: credit must be a positive integer']);
    peer.close();
  });

  it("answers a REQUEST in the receiver's own id space on that id", async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 2, 'echo', 'x']);
    expect(await peer.next(isFor(2))).toEqual([5, 2, 'PROTOCOL_ERROR', "REQUEST id 2 is in this side's id space"]);
    await nothingElse(peer, 1);
    peer.close();
  });
});

describe('PROTOCOL.md: which refused REQUEST ids count as used', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [DocController] }, { maxConcurrentCalls: 1 });
  });
  afterAll(() => svc.close());

  it('an id refused for the concurrency limit counts as used, and so does one refused as malformed', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'hold', null]);
    peer.send([1, 3, 'echo', 'x']);
    expect(await peer.next(isFor(3))).toEqual([5, 3, 'RESOURCE_EXHAUSTED', 'too many concurrent calls on this connection (limit 1)']);
    peer.send([1, 3, 'echo', 'x']);
    expect(await peer.next(isFor(3))).toEqual([5, 3, 'PROTOCOL_ERROR', 'REQUEST id 3 was already used (ids must increase)']);
    peer.send([6, 1]); // frees the slot (a cancelled call is not answered)

    peer.send([1, 5, true, null]);
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', 'REQUEST: pattern must be a string, number or map']);
    peer.send([1, 5, 'echo', 'again']);
    expect(await peer.next(isFor(5))).toEqual([5, 5, 'PROTOCOL_ERROR', 'REQUEST id 5 was already used (ids must increase)']);

    const broken = encode([1, 7, 'echo', 'abc']);
    peer.sendBytes(broken.subarray(0, broken.length - 1)); // truncated: the header (type 1, id 7) is readable
    const err = await peer.next(isFor(7));
    expect(err.slice(0, 3)).toEqual([5, 7, 'PROTOCOL_ERROR']);
    expect(err[3]).toMatch(/^frame is not valid msgpack: /);
    peer.send([1, 7, 'echo', 'again']);
    expect(await peer.next(isFor(7))).toEqual([5, 7, 'PROTOCOL_ERROR', 'REQUEST id 7 was already used (ids must increase)']);
    peer.send([1, 9, 'echo', 'next']);
    expect(await peer.next(isFor(9))).toEqual([4, 9, 'next']);
    // A REQUEST in the server's own (even) id space is refused and uses no id of the peer's.
    peer.send([1, 12, 'echo', 'x']);
    expect(await peer.next(isFor(12))).toEqual([5, 12, 'PROTOCOL_ERROR', "REQUEST id 12 is in this side's id space"]);
    peer.send([1, 11, 'echo', 'fine']);
    expect(await peer.next(isFor(11))).toEqual([4, 11, 'fine']);
    expect(peer.frames).toEqual([]); // in particular nothing for the cancelled call 1
    peer.close();
  });
});

describe("PROTOCOL.md: a requester's ERROR on its request stream", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [DocController] });
  });
  afterAll(() => svc.close());

  const internal = { status: 'error', message: 'Internal server error' };

  it.each([
    ['APPLICATION_ERROR with data: the data as-is', ['APPLICATION_ERROR', 'bad', { why: 'x' }], { why: 'x' }],
    ['APPLICATION_ERROR without data: a WsMsgpackError', ['APPLICATION_ERROR', 'bad'], new WsMsgpackError('APPLICATION_ERROR', 'bad')],
    ['another code: a WsMsgpackError with code, message and details', ['CUSTOM', 'm', 7], new WsMsgpackError('CUSTOM', 'm', 7)],
  ])('the input errors with %s; the call goes on, and a handler that lets it propagate answers APPLICATION_ERROR "Internal server error"', async (tag, error, seen) => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'collect', null, { s: true }]);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 256]);
    peer.send([3, 1, tag]);
    peer.send([5, 1, ...error]);
    expect(await peer.next(isFor(1))).toEqual([5, 1, 'APPLICATION_ERROR', 'Internal server error', internal]);
    const got = inputErrors.get(tag);
    expect(got).toEqual(seen);
    if (seen instanceof WsMsgpackError) {
      expect(got).toBeInstanceOf(WsMsgpackError);
      expect((got as WsMsgpackError).code).toBe(seen.code);
      expect((got as WsMsgpackError).details).toEqual(seen.details);
    }
    peer.close();
  });

  it.each([
    ['gen-app', ['APPLICATION_ERROR', 'bad', { why: 'x' }], [5, 1, 'APPLICATION_ERROR', 'Internal server error', internal]],
    ['gen-custom', ['CUSTOM', 'm', 7], [5, 1, 'APPLICATION_ERROR', 'Internal server error', internal]],
  ])('an async generator handler (%s): the same mapping (Nest exception filters) as an Observable handler', async (tag, error, answer) => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'collect-gen', null, { s: true }]);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 256]);
    peer.send([3, 1, tag]);
    peer.send([5, 1, ...error]);
    expect(await peer.next(isFor(1))).toEqual(answer);
    peer.close();
  });

  it('a handler that maps the input error answers normally', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'collect-mapped', null, { s: true }]);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 256]);
    peer.send([3, 1, 'mapped']);
    peer.send([5, 1, 'CUSTOM', 'm']);
    expect(await peer.next(isFor(1))).toEqual([4, 1, { inputFailed: 'CUSTOM' }]);
    peer.close();
  });

  it('WsMsgpackClient: a request-stream Observable that errors with an Error fails the call with the default Nest payload', async () => {
    const client = svc.client();
    const e = await errorOf(
      client.send(
        'collect',
        concat(
          of('client-error'),
          throwError(() => new Error('boom')),
        ),
      ),
    );
    expect(e).toEqual(internal);
    expect(inputErrors.get('client-error')).toEqual(new WsMsgpackError('APPLICATION_ERROR', 'boom'));
  });
});

describe('PROTOCOL.md: credit and the last item', () => {
  let svc: TestService;
  let unlimited: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [DocController] }, { window: 5 });
    unlimited = await startService({ controllers: [DocController] }, { window: 0 });
  });
  afterAll(async () => {
    await svc.close();
    await unlimited.close();
  });

  it('window 5: the receiver tops up with CREDIT 3 once at most floor(5/2) = 2 granted items are left', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'collect', null, { s: true }]);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 5]);
    peer.send([3, 1, 'a']);
    peer.send([3, 1, 'b']);
    await nothingElse(peer, 3); // 3 left: no CREDIT yet
    peer.send([3, 1, 'c']);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 3]); // 2 left: back to 5 beyond the 3 consumed
    peer.send([3, 1, 'd']);
    peer.send([3, 1, 'e']);
    peer.send([3, 1, 'f']);
    expect(await peer.next(isFor(1))).toEqual([7, 1, 3]);
    peer.send([4, 1]);
    expect(await peer.next(isFor(1))).toEqual([4, 1, ['a', 'b', 'c', 'd', 'e', 'f']]);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('window option 0 (unlimited): a request stream gets one CREDIT of 2^53-1', async () => {
    const peer = await RawPeer.open(unlimited.url);
    peer.send([1, 1, 'collect', null, { s: true }]);
    expect(await peer.next(isFor(1))).toEqual([7, 1, MAX_ID]);
    peer.close();
  });

  it('wire n: 0 is zero initial credit: the responder sends nothing before CREDIT', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'of', null, { n: 0 }]);
    await holds(() => peer.frames.length === 0, 'no frame before CREDIT');
    peer.send([7, 1, 1]);
    expect(await peer.next(isFor(1))).toEqual([3, 1, 1]);
    peer.send([7, 1, 2]);
    expect(await peer.next(isFor(1))).toEqual([3, 1, 2]);
    expect(await peer.next(isFor(1))).toEqual([4, 1, 3]); // buffered Observable: the last item rides on COMPLETE
    peer.close();
  });

  it('a stream ends with COMPLETE carrying the last item, or with NEXT then [4, id]', async () => {
    const peer = await RawPeer.open(svc.url);
    const frames = async (id: number, n: number): Promise<unknown[][]> => {
      const out: unknown[][] = [];
      for (let i = 0; i < n; i++) out.push(await peer.next(isFor(id)));
      return out;
    };
    peer.send([1, 1, 'gen', null]);
    expect(await frames(1, 4)).toEqual([
      [3, 1, 1],
      [3, 1, 2],
      [3, 1, 3],
      [4, 1],
    ]);
    peer.send([1, 3, 'of', null]);
    expect(await frames(3, 3)).toEqual([
      [3, 3, 1],
      [3, 3, 2],
      [4, 3, 3],
    ]);
    peer.send([1, 5, 'later', null]);
    expect(await frames(5, 2)).toEqual([
      [3, 5, 1],
      [4, 5],
    ]);
    expect(peer.frames).toEqual([]);
    peer.close();
  });
});

/** A bare `ws` server speaking wsmp.v1 by hand, for checking what a WsMsgpackClient sends. */
class RawServer {
  readonly frames: unknown[][] = [];
  socket: WebSocket | undefined;
  private constructor(readonly wss: WebSocketServer) {
    wss.on('connection', (ws) => {
      this.socket = ws;
      ws.on('message', (data: Buffer) => this.frames.push(decode(data) as unknown[]));
    });
  }

  static async start(): Promise<RawServer> {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'wsmp.v1' });
    await within(new Promise<void>((resolve) => wss.once('listening', () => resolve())), undefined, 'raw server listen');
    return new RawServer(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as { port: number }).port}`;
  }

  send(value: unknown): void {
    this.socket!.send(encode(value));
  }

  async next(what = 'frame'): Promise<unknown[]> {
    await until(() => this.frames.length > 0, undefined, what);
    return this.frames.shift()!;
  }

  close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    return new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

describe('PROTOCOL.md, as seen by a raw server of the client', () => {
  let raw: RawServer;
  let client: WsMsgpackClient;
  beforeEach(async () => {
    raw = await RawServer.start();
  });
  afterEach(async () => {
    await client.close();
    await raw.close();
  });

  it('CANCEL carries DEADLINE_EXCEEDED when the deadline fired, nothing more when the caller unsubscribed (issue 16.7)', async () => {
    client = new WsMsgpackClient({ url: raw.url });
    const late = errorOf(client.send('x', new WsMsgpackRecordBuilder(1).setTimeout(50).build()), 5000);
    // t: what is left of the 50 ms once connected.
    expect(await raw.next()).toEqual([1, 1, 'x', 1, { n: 256, t: expect.any(Number) }]);
    expect(await late).toMatchObject({ code: WsMsgpackErrorCode.DEADLINE_EXCEEDED });
    expect(await raw.next()).toEqual([6, 1, 'DEADLINE_EXCEEDED']);
    const sub = client.send('y', 2).subscribe({ error: () => {} });
    expect(await raw.next()).toEqual([1, 3, 'y', 2, { n: 256 }]);
    sub.unsubscribe();
    expect(await raw.next()).toEqual([6, 3]);
  });

  it('window option 0 (unlimited): the REQUEST carries no n', async () => {
    client = new WsMsgpackClient({ url: raw.url, window: 0 });
    const sub = client.send('x', 1).subscribe({ error: () => {} });
    expect(await raw.next()).toEqual([1, 1, 'x', 1]);
    sub.unsubscribe();
  });

  it('window 5: the client tops up with CREDIT 3 after 3 items, then every 3 items', async () => {
    client = new WsMsgpackClient({ url: raw.url, window: 5 });
    const items = all(client.send('x', null));
    expect(await raw.next()).toEqual([1, 1, 'x', null, { n: 5 }]);
    for (const v of [1, 2, 3]) raw.send([3, 1, v]);
    expect(await raw.next()).toEqual([7, 1, 3]);
    for (const v of [4, 5, 6]) raw.send([3, 1, v]);
    expect(await raw.next()).toEqual([7, 1, 3]);
    raw.send([4, 1, 7]);
    expect(await items).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(raw.frames).toEqual([]);
  });

  it('accepts the last item either inside COMPLETE or as NEXT followed by [4, id]', async () => {
    client = new WsMsgpackClient({ url: raw.url });
    const a = all(client.send('a', null));
    await raw.next();
    raw.send([3, 1, 'x']);
    raw.send([4, 1]);
    expect(await a).toEqual(['x']);
    const b = all(client.send('b', null));
    await raw.next();
    raw.send([4, 3, 'x']);
    expect(await b).toEqual(['x']);
  });

  it('[9, own id] of a running call fails it locally with PROTOCOL_ERROR and sends CANCEL', async () => {
    client = new WsMsgpackClient({ url: raw.url });
    const e = errorOf(client.send('x', null));
    await raw.next();
    raw.send([9, 1]);
    const err = await e;
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(err).toMatchObject({ code: 'PROTOCOL_ERROR', message: 'unknown frame type 9' });
    expect(await raw.next()).toEqual([6, 1]);
  });

  it('a response item beyond credit fails the call locally and sends CANCEL', async () => {
    client = new WsMsgpackClient({ url: raw.url, window: 2 });
    const it = client.iterate('x', null);
    const first = it.next();
    expect(await raw.next()).toEqual([1, 1, 'x', null, { n: 2 }]);
    raw.send([3, 1, 'a']);
    expect(await first).toEqual({ value: 'a', done: false });
    // 'a' was taken by the waiting next(): half the window is consumed, so 1 more is granted (3 in all).
    expect(await raw.next()).toEqual([7, 1, 1]);
    raw.send([3, 1, 'b']);
    raw.send([3, 1, 'c']);
    raw.send([3, 1, 'd']);
    expect(await raw.next()).toEqual([6, 1]);
    expect(await it.next()).toEqual({ value: 'b', done: false }); // items received within credit are still delivered
    expect(await it.next()).toEqual({ value: 'c', done: false });
    await expect(it.next()).rejects.toMatchObject({ code: 'PROTOCOL_ERROR', message: 'NEXT beyond granted credit (window 2)' });
  });
});
