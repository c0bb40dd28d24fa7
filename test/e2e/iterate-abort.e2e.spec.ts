import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern } from '@nestjs/microservices';
import { Observable } from 'rxjs';
import { WsMsgpackContext } from '../../src/index.js';
import { startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

const seen = { started: 0, aborted: 0 };

@Controller()
class SlowController {
  @MessagePattern('never')
  never(@Ctx() ctx: WsMsgpackContext): Observable<number> {
    seen.started++;
    ctx.getSignal().addEventListener('abort', () => seen.aborted++);
    return new Observable<number>(() => {});
  }
}

describe('iterate() with an AbortSignal', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [SlowController] });
  });
  afterAll(() => svc.close());

  it('abort while next() waits for an item: next() rejects with CANCELLED and the handler is cancelled', async () => {
    const client = svc.client();
    await client.connect();
    seen.started = seen.aborted = 0;
    const controller = new AbortController();
    const it = client.iterate<number>('never', null, { signal: controller.signal });
    const pending = it.next();
    await until(() => seen.started === 1, WAIT_MS, 'handler started');
    controller.abort();
    await expect(within(pending, 2000, 'pending next()')).rejects.toMatchObject({ code: 'CANCELLED' });
    await until(() => seen.aborted === 1, WAIT_MS, 'handler aborted');
  });

  it('abort while next() is still connecting: rejects with CANCELLED, no call reaches the server', async () => {
    const client = svc.client();
    seen.started = seen.aborted = 0;
    const controller = new AbortController();
    const it = client.iterate<number>('never', null, { signal: controller.signal });
    const pending = it.next();
    controller.abort();
    await expect(within(pending, 2000, 'pending next()')).rejects.toMatchObject({ code: 'CANCELLED' });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.started).toBe(0);
  });

  it('signal aborted before the first next(): rejects with CANCELLED, no call', async () => {
    const client = svc.client();
    seen.started = 0;
    const it = client.iterate<number>('never', null, { signal: AbortSignal.abort() });
    await expect(within(it.next(), 2000)).rejects.toMatchObject({ code: 'CANCELLED' });
    await new Promise((r) => setTimeout(r, 100));
    expect(seen.started).toBe(0);
  });
});
