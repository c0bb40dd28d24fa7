import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { firstValueFrom, lastValueFrom, merge, map, toArray } from 'rxjs';
import { startService, within, type TestService } from '../support/helpers.js';

let releaseSlow: (() => void) | undefined;

@Controller()
class ConcurrencyController {
  @MessagePattern('slow')
  slow(): Promise<string> {
    return new Promise((resolve) => {
      releaseSlow = () => resolve('slow done');
    });
  }

  @MessagePattern('fast')
  fast(@Payload() n: number): number {
    return n * 2;
  }

  @MessagePattern('jitter')
  async jitter(@Payload() n: number): Promise<number> {
    // Finish in an order unrelated to the order of arrival.
    await new Promise((r) => setImmediate(r));
    if (n % 3 === 0) await new Promise((r) => setImmediate(r));
    return n;
  }
}

describe('many calls in flight on one connection', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [ConcurrencyController] });
  });
  afterAll(() => svc.close());

  it('a slow handler does not delay a fast one (no head-of-line blocking)', async () => {
    const c = svc.client();
    const order: string[] = [];
    const slow = firstValueFrom(c.send<string>('slow', {})).then((v) => {
      order.push(v);
      return v;
    });
    // Every fast call completes while the slow one is still pending on the same socket.
    const fast = await within(Promise.all([1, 2, 3].map((n) => firstValueFrom(c.send<number>('fast', n)))));
    order.push('fast done');
    expect(fast).toEqual([2, 4, 6]);
    expect(releaseSlow).toBeDefined();
    releaseSlow!();
    expect(await within(slow)).toBe('slow done');
    expect(order).toEqual(['fast done', 'slow done']);
  });

  it('answers 1,000 concurrent calls (the default per-connection limit), each with its own result, over one socket', async () => {
    const c = svc.client();
    await c.connect();
    const socket = c.unwrap();
    const results = await within(lastValueFrom(merge(...Array.from({ length: 1000 }, (_, i) => c.send<number>('jitter', i).pipe(map((v) => [i, v] as const)))).pipe(toArray())));
    expect(results).toHaveLength(1000);
    for (const [sent, got] of results) expect(got).toBe(sent);
    expect(c.unwrap()).toBe(socket); // still the one connection
  });

  it('several clients are served independently', async () => {
    const clients = [svc.client(), svc.client(), svc.client()];
    const got = await within(Promise.all(clients.map((c, i) => firstValueFrom(c.send<number>('fast', i)))));
    expect(got).toEqual([0, 2, 4]);
    expect(svc.server.connectionCount).toBeGreaterThanOrEqual(3);
  });
});
