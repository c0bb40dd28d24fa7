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
import { MessagePattern, Payload } from '@nestjs/microservices';
import { lastValueFrom, reduce } from 'rxjs';
import { WsMsgpackErrorCode, type WsRequestStream } from '../../src/index.js';
import { errorOf, first, startService, type TestService } from '../support/helpers.js';

const MB = 1024 * 1024;
let consumed = 0;

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
});
