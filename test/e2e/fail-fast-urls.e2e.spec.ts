import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { WsMsgpackClient } from '../../src/index.js';
import { first, freePort, startService, type TestService } from '../support/helpers.js';

@Controller()
class MathController {
  @MessagePattern('double')
  double(@Payload() n: number): number {
    return n * 2;
  }
}

describe('fail-fast with several URLs (replicas)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [MathController] });
  });
  afterAll(() => svc.close());

  it('first URL refused, second answers: the first call succeeds (default options)', async () => {
    const down = `ws://127.0.0.1:${await freePort()}`;
    const client = new WsMsgpackClient({ url: [down, svc.url], reconnect: { initialDelay: 5, maxDelay: 20 } });
    client.on('error', () => {});
    try {
      expect(await first(client.send('double', 2), 3000)).toBe(4);
    } finally {
      await client.close();
    }
  });

  it('first URL refused, second answers, reconnect: false: the first call succeeds ("one replica refusing while the next answers never fails a call")', async () => {
    const down = `ws://127.0.0.1:${await freePort()}`;
    const client = new WsMsgpackClient({ url: [down, svc.url], reconnect: false });
    client.on('error', () => {});
    try {
      expect(await first(client.send('double', 3), 3000)).toBe(6);
    } finally {
      await client.close();
    }
  });

  it('first URL refused, second answers, reconnect: false: some call eventually reaches the second replica', async () => {
    const down = `ws://127.0.0.1:${await freePort()}`;
    const client = new WsMsgpackClient({ url: [down, svc.url], reconnect: false });
    client.on('error', () => {});
    try {
      const outcomes: unknown[] = [];
      for (let i = 0; i < 5; i++) {
        outcomes.push(await first(client.send('double', i), 3000).catch((e: { code?: string }) => e.code));
      }
      expect(outcomes).toContain(8);
    } finally {
      await client.close();
    }
  });

  it('both down once, then the second URL up: a call after the backoff window succeeds', async () => {
    const a = await freePort();
    const b = await freePort();
    const client = new WsMsgpackClient({ url: [`ws://127.0.0.1:${a}`, `ws://127.0.0.1:${b}`], reconnect: { initialDelay: 5, maxDelay: 10 } });
    client.on('error', () => {});
    let svcB: TestService | undefined;
    try {
      await expect(first(client.send('double', 1), 3000)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      svcB = await startService({ controllers: [MathController] }, { port: b });
      await new Promise((r) => setTimeout(r, 200));
      expect(await first(client.send('double', 5), 3000)).toBe(10);
    } finally {
      await client.close();
      await svcB?.close();
    }
  });
});
