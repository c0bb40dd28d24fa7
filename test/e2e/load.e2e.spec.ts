import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { from, lastValueFrom, map, mergeMap, range, toArray, type Observable } from 'rxjs';
import { WsMsgpackClient } from '../../src/index.js';
import { startService, within } from '../support/helpers.js';

/**
 * 1,000 concurrent connections (one client each) making 100,000 calls, unary and streams mixed:
 * every response must match its request (0 lost, 0 duplicated, 0 misrouted). Throughput and
 * memory are printed for information only (speed lives in bench/: `npm run bench -- --only=conns`).
 */

const CLIENTS = 1000;
const CALLS_PER_CLIENT = 100;
/** Every tenth call is a stream of this many items. */
const STREAM_ITEMS = 5;

interface Ask {
  client: number;
  call: number;
}

@Controller()
class LoadController {
  @MessagePattern('echo')
  echo(@Payload() ask: Ask): Ask {
    return ask;
  }

  @MessagePattern({ cmd: 'stream' })
  stream(@Payload() ask: Ask): Observable<Ask & { item: number }> {
    return range(0, STREAM_ITEMS).pipe(map((item) => ({ ...ask, item })));
  }
}

describe('load: 1,000 connections, 100,000 calls', () => {
  it('every response matches its request: 0 lost, 0 duplicated, 0 misrouted', async () => {
    const svc = await startService({ controllers: [LoadController] });
    const clients = Array.from({ length: CLIENTS }, () => new WsMsgpackClient({ url: svc.url, keepAliveInterval: 0 }));
    try {
      global.gc?.();
      const before = process.memoryUsage();
      await within(
        lastValueFrom(
          from(clients).pipe(
            mergeMap((c) => c.connect(), 100),
            toArray(),
          ),
        ),
        60_000,
        '1,000 connections',
      );
      global.gc?.();
      const connected = process.memoryUsage();
      expect(svc.server.connectionCount).toBe(CLIENTS);

      const started = Date.now();
      const results = await within(
        Promise.all(
          clients.map((client, k) =>
            lastValueFrom(
              range(0, CALLS_PER_CLIENT).pipe(
                mergeMap((call) => {
                  const ask: Ask = { client: k, call };
                  const answer = call % 10 === 9 ? client.send<Ask>({ cmd: 'stream' }, ask) : client.send<Ask>('echo', ask);
                  return answer.pipe(
                    toArray(),
                    map((items) => ({ ask, items })),
                  );
                }, 10),
                toArray(),
              ),
            ),
          ),
        ),
        120_000,
        '100,000 calls',
      );
      const seconds = (Date.now() - started) / 1000;

      let lost = 0;
      let duplicated = 0;
      let misrouted = 0;
      for (const [k, calls] of results.entries()) {
        const seen = new Set<number>();
        for (const { ask, items } of calls) {
          if (seen.has(ask.call)) duplicated++;
          seen.add(ask.call);
          const expected = ask.call % 10 === 9 ? STREAM_ITEMS : 1;
          if (items.length < expected) lost += expected - items.length;
          if (items.length > expected) duplicated += items.length - expected;
          for (const item of items) if (item.client !== k || item.call !== ask.call) misrouted++;
        }
        lost += CALLS_PER_CLIENT - seen.size;
      }
      expect({ lost, duplicated, misrouted }).toEqual({ lost: 0, duplicated: 0, misrouted: 0 });
      const perConnection = (connected.heapUsed + connected.arrayBuffers - before.heapUsed - before.arrayBuffers) / CLIENTS / 1024;
      console.log(
        `load: ${CLIENTS} connections, ${CLIENTS * CALLS_PER_CLIENT} calls in ${seconds.toFixed(1)} s (${Math.round((CLIENTS * CALLS_PER_CLIENT) / seconds)} calls/s, ` +
          `server and clients in one process); heap + buffers per connection, both ends: ${perConnection.toFixed(1)} KiB`,
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await svc.close();
    }
  }, 240_000);
});
