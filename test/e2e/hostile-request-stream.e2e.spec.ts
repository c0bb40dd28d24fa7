/**
 * Issue 15, item 5: what a request stream may hold on the server while its handler is slow.
 *
 * - Pulled (`for await (const item of input)`): credit follows the loop, so the caller's own source
 *   is only asked for items a window ahead of the handler: true backpressure end to end.
 * - Subscribed late, or consumed by pulling more slowly than items arrive: the items that wait are
 *   bounded in bytes (maxStreamBufferBytes, and maxInboundBytes for the connection), and the
 *   overflow strategy decides past it ('error' by default: RESOURCE_EXHAUSTED).
 *
 * Before: credit was granted as items were delivered, so 256 items of 1 MiB could wait for a
 * handler that subscribed late (uncounted), and nothing could pull.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { concatMap, lastValueFrom, reduce, type Observable } from 'rxjs';
import { WsMsgpackErrorCode, wsConcatMap, wsMergeMap, type WsRequestStream } from '../../src/index.js';
import { errorOf, first, startService, until, type TestService } from '../support/helpers.js';

const MB = 1024 * 1024;
let consumed = 0;
let mostRunning = 0;

@Controller()
class UploadController {
  /** Takes one item every 2 ms, by pulling. */
  @MessagePattern('slow-pull')
  async slowPull(@Payload() items: WsRequestStream<Buffer>): Promise<number> {
    let bytes = 0;
    for await (const item of items) {
      consumed++;
      bytes += item.length;
      await new Promise((r) => setTimeout(r, 2));
    }
    return bytes;
  }

  /** Subscribes, and waits 1 ms per item inside wsConcatMap: the caller is paced. */
  @MessagePattern('paced-concat')
  pacedConcat(@Payload() items: WsRequestStream<Buffer>): Observable<number> {
    return items.pipe(
      wsConcatMap(async (item) => {
        consumed++;
        await new Promise((r) => setTimeout(r, 1));
        return item.length;
      }),
      reduce((n, len) => n + len, 0),
    );
  }

  /** The same with rxjs's concatMap: items buffer inside rxjs, out of the transport's sight. */
  @MessagePattern('plain-concat')
  plainConcat(@Payload() items: WsRequestStream<Buffer>): Observable<number> {
    return items.pipe(
      concatMap(async (item) => {
        consumed++;
        await new Promise((r) => setTimeout(r, 1));
        return item.length;
      }),
      reduce((n, len) => n + len, 0),
    );
  }

  /** Four at a time, through wsMergeMap; records the most running at once. */
  @MessagePattern('paced-merge')
  pacedMerge(@Payload() items: WsRequestStream<Buffer>): Observable<number> {
    let running = 0;
    return items.pipe(
      wsMergeMap(async (item) => {
        running++;
        mostRunning = Math.max(mostRunning, running);
        await new Promise((r) => setTimeout(r, 1));
        running--;
        consumed++;
        return item.length;
      }, 4),
      reduce((n, len) => n + len, 0),
    );
  }

  /** Fails at the fifth item: the rest of the stream is refused. */
  @MessagePattern('paced-fail')
  pacedFail(@Payload() items: WsRequestStream<number>): Observable<number> {
    return items.pipe(
      wsConcatMap(async (n) => {
        consumed++;
        if (n === 5) throw new RpcException('bad row 5');
        return n;
      }),
    );
  }

  /** Subscribes only after 300 ms: everything the caller sent meanwhile waits. */
  @MessagePattern('late')
  async late(@Payload() items: WsRequestStream<Buffer>): Promise<number> {
    await new Promise((r) => setTimeout(r, 300));
    return lastValueFrom(items.pipe(reduce((n, b) => n + b.length, 0)));
  }
}

describe('request streams and slow handlers (issue 15, item 5)', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [UploadController] }, { window: 16, maxStreamBufferBytes: 4 * MB });
  });
  afterAll(() => svc.close());

  it('a handler that pulls with for await paces the caller: its source is asked for items a window ahead, not more', async () => {
    const client = svc.client();
    consumed = 0;
    let produced = 0;
    let worstLead = 0;
    async function* upload(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 300; i++) {
        produced++;
        worstLead = Math.max(worstLead, produced - consumed);
        yield Buffer.alloc(1024, i);
      }
    }
    expect(await first(client.send('slow-pull', upload()), 20_000)).toBe(300 * 1024);
    // The server's window (16) plus the item each side holds ahead, never hundreds.
    expect(worstLead).toBeLessThanOrEqual(16 + 4);
  });

  it('large items: credit is held back by bytes, so a handler that pulls slowly holds about maxStreamBufferBytes, and the call succeeds', async () => {
    const client = svc.client();
    consumed = 0;
    let produced = 0;
    let worstLead = 0;
    async function* big(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 60; i++) {
        produced++;
        worstLead = Math.max(worstLead, produced - consumed);
        yield Buffer.alloc(512 * 1024, i); // 30 MiB in all; 4 MiB allowed to wait on the server
      }
    }
    expect(await first(client.send('slow-pull', big()), 20_000)).toBe(60 * 512 * 1024);
    // The first window (16 items) goes out on trust; after that at most ~8 items of 512 KiB wait.
    expect(worstLead).toBeLessThanOrEqual(16 + 4);
  });

  it('a handler that subscribes late: what arrives meanwhile counts against maxInboundBytes; past it the call fails, nothing else', async () => {
    const small = await startService({ controllers: [UploadController] }, { window: 16, maxInboundBytes: 4 * MB });
    try {
      const client = small.client({ window: 0 });
      async function* big(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 16; i++) yield Buffer.alloc(512 * 1024, i); // 8 MiB within one window
      }
      const err = await errorOf(client.send('late', big()), 10_000);
      expect(err).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED });
      expect((err as Error).message).toMatch(/maxInboundBytes/);
      // Within the budget, the same late handler gets everything, on the same connection.
      async function* fits(): AsyncGenerator<Buffer> {
        for (let i = 0; i < 4; i++) yield Buffer.alloc(512 * 1024, i); // 2 MiB
      }
      expect(await first(client.send('late', fits()), 10_000)).toBe(2 * MB);
    } finally {
      await small.close();
    }
  });

  describe('a subscribed handler that waits per item: wsConcatMap / wsMergeMap pace the caller as for await does', () => {
    /** Sends `count` items of 1 KiB, recording how far the source ran ahead of the handler. */
    const upload = (count: number) => {
      const lead = { worst: 0 };
      let produced = 0;
      async function* items(): AsyncGenerator<Buffer> {
        for (let i = 0; i < count; i++) {
          produced++;
          lead.worst = Math.max(lead.worst, produced - consumed);
          yield Buffer.alloc(1024, i);
        }
      }
      return { items: items(), lead };
    };

    it('wsConcatMap: the source is asked for items a window ahead of the handler, not more', async () => {
      consumed = 0;
      const { items, lead } = upload(400);
      expect(await first(svc.client().send('paced-concat', items), 20_000)).toBe(400 * 1024);
      expect(lead.worst).toBeLessThanOrEqual(16 + 4);
    });

    it("rxjs's concatMap (the documented limit): credit follows delivery, so the same source runs hundreds of items ahead", async () => {
      consumed = 0;
      const { items, lead } = upload(400);
      expect(await first(svc.client().send('plain-concat', items), 20_000)).toBe(400 * 1024);
      expect(lead.worst).toBeGreaterThan(100);
    });

    it('wsMergeMap(project, 4): at most 4 run at once, and the source stays a window ahead', async () => {
      consumed = 0;
      mostRunning = 0;
      const { items, lead } = upload(400);
      expect(await first(svc.client().send('paced-merge', items), 20_000)).toBe(400 * 1024);
      expect({ mostRunning, paced: lead.worst <= 16 + 4 + 4 }).toEqual({ mostRunning: 4, paced: true });
    });

    it("the project's error fails the call through the handler, and the caller's source is stopped (not drained)", async () => {
      consumed = 0;
      let produced = 0;
      let finished = false;
      async function* numbers(): AsyncGenerator<number> {
        try {
          for (let i = 1; i <= 100_000; i++) {
            produced++;
            yield i;
          }
        } finally {
          finished = true;
        }
      }
      const err = await errorOf(svc.client().send('paced-fail', numbers()), 10_000);
      expect((err as Error).message).toMatch(/bad row 5/);
      await until(() => finished, 5_000, "the caller's generator closed");
      expect({ consumed, producedFewerThanAWindowPast: produced <= 5 + 16 + 4 }).toEqual({ consumed: 5, producedFewerThanAWindowPast: true });
    });
  });
});
