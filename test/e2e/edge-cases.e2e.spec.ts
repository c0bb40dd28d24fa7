import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { of } from 'rxjs';
import { CloseCode, WsMsgpackRecordBuilder } from '../../src/index.js';
import { all, errorOf, first, startService, until, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { gate, type Gate } from '../support/streams.js';

const log: string[] = [];
let release: Gate | undefined;

@Controller()
class EdgeController {
  @MessagePattern('gen')
  async *gen(): AsyncGenerator<number> {
    for (let i = 0; i < 3; i++) {
      log.push(`item ${i}`);
      yield i;
    }
  }

  @MessagePattern('pending')
  async pending(): Promise<string> {
    log.push('pending started');
    await release!.promise;
    return 'late';
  }

  @MessagePattern('undefinedLast')
  undefinedLast(): unknown {
    return of(1, undefined);
  }

  @MessagePattern('echo')
  echo(@Payload() d: unknown): unknown {
    return d;
  }
}

describe('edge cases found in review', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [EdgeController] });
    svc.server.setOnProcessingEndHook((_transport, ctx) => log.push(`end ${(ctx as { getPattern(): string }).getPattern()}`));
  });
  afterAll(() => svc.close());

  beforeEach(() => {
    log.length = 0;
  });

  it("Nest's processing end hook runs after an async generator's last item, once", async () => {
    expect(await all(svc.client().send('gen', {}))).toEqual([0, 1, 2]);
    await until(() => log.includes('end gen'), undefined, 'end hook');
    expect(log).toEqual(['item 0', 'item 1', 'item 2', 'end gen']);
  });

  it('the end hook runs once for a call cancelled while its handler is still pending', async () => {
    release = gate();
    const sub = svc
      .client()
      .send('pending', {})
      .subscribe({ error: () => {} });
    await until(() => log.includes('pending started'), undefined, 'handler started');
    const c = svc.client();
    sub.unsubscribe();
    await until(() => log.includes('end pending'), undefined, 'end hook after cancel');
    release.open();
    expect(await first(c.send('echo', 'after'))).toBe('after');
    expect(log.filter((l) => l === 'end pending')).toHaveLength(1);
  });

  it('a stream whose last item is undefined keeps it (as null); only a void answer completes empty', async () => {
    expect(await all(svc.client().send('undefinedLast', {}))).toEqual([1, null]);
  });

  it('deadlines beyond 2^31-1 ms do not fire at once; Infinity means none', async () => {
    const c = svc.client();
    expect(await first(c.send('echo', new WsMsgpackRecordBuilder('far').setTimeout(3e9).build()))).toBe('far');
    expect(await first(c.send('echo', new WsMsgpackRecordBuilder('never').setTimeout(Infinity).build()))).toBe('never');
  });

  it('Connection.iterate(): next() after return() does not start an orphan call', async () => {
    const c = svc.client();
    const conn = await c.connect();
    const it = conn.iterate('gen', {}); // the core's iterator (client.iterate wraps it in an async generator)
    await it.return!();
    expect((await within(it.next())).done).toBe(true);
    expect(conn.outgoingCalls).toBe(0);
  });

  it('a payload with a subscribe() method that is not an rxjs Observable is data, and fails cleanly', async () => {
    const c = svc.client();
    const conn = await c.connect();
    expect(await errorOf(c.send('echo', { subscribe: () => undefined }))).toMatchObject({ code: 'INTERNAL' });
    expect(conn.outgoingCalls).toBe(0);
  });

  it('connect(), close(), connect() leaves exactly one live connection', async () => {
    const c = svc.client();
    const before = svc.server.connectionCount;
    const p1 = c.connect();
    await c.close();
    const p2 = c.connect();
    await Promise.allSettled([p1, p2]);
    expect(await first(c.send('echo', 1))).toBe(1);
    await until(() => svc.server.connectionCount === before + 1, undefined, 'one connection');
    await c.connect(); // no third socket either
    expect(await first(c.send('echo', 2))).toBe(2);
    expect(svc.server.connectionCount).toBe(before + 1);
  });

  it("the 'connection' event fires only for peers that pass the version check", async () => {
    const seen: string[] = [];
    svc.server.on('connection', (ws) => seen.push(ws.protocol));
    const refused = await RawPeer.open(svc.url, ['wsmp.v2']);
    expect((await refused.whenClosed()).code).toBe(CloseCode.UNSUPPORTED_VERSION);
    const ok = await RawPeer.open(svc.url);
    await until(() => seen.length === 1, undefined, 'connection event');
    expect(seen).toEqual(['wsmp.v1']);
    ok.close();
  });
});

describe('close() while authenticate() is still deciding', () => {
  it('resolves, and the pending upgrade is refused with 503 instead of slipping in', async () => {
    let decide: (ok: boolean) => void = () => {};
    let asked = false;
    const svc = await startService(
      { controllers: [EdgeController] },
      {
        authenticate: () =>
          new Promise<boolean>((resolve) => {
            asked = true;
            decide = resolve;
          }),
      },
    );
    const c = svc.client({ reconnect: false }); // one attempt: its refusal is the outcome
    const pending = errorOf(c.send('echo', 1));
    await until(() => asked, undefined, 'authenticate called');
    const closing = svc.server.close(); // the transport alone, with the client still open
    decide(true);
    await within(closing, 4000, 'close with a pending authenticate');
    expect(await pending).toMatchObject({ code: 'UNAVAILABLE' });
    await svc.close();
  });
});
