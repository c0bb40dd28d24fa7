import { Controller, Injectable } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { take, type Observable } from 'rxjs';
import { WsMsgpackRecordBuilder, WsMsgpackTopics } from '../../src/index.js';
import { all, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

/** The pub/sub idiom: a topic per symbol, a handler that returns the topic's stream. */

interface Price {
  symbol: string;
  tick: number;
}

@Injectable()
class PriceService {
  readonly topics = new WsMsgpackTopics<Price>();
}

@Controller()
class PriceController {
  constructor(private readonly prices: PriceService) {}

  @MessagePattern('prices')
  subscribe(@Payload() { symbol }: { symbol: string }): Observable<Price> {
    return this.prices.topics.subscribe(symbol);
  }
}

describe('pub/sub as streams (WsMsgpackTopics)', () => {
  let svc: TestService;
  let topics: WsMsgpackTopics<Price>;
  beforeAll(async () => {
    svc = await startService({ controllers: [PriceController], providers: [PriceService] });
    topics = svc.app.get(PriceService).topics;
  });
  afterAll(() => svc.close());

  it('each subscriber gets its topic only; unsubscribing ends the remote subscription; the last one removes the topic', async () => {
    const a = all(svc.client().send<Price>('prices', { symbol: 'ACME' }).pipe(take(3)));
    const b = all(svc.client().send<Price>('prices', { symbol: 'ACME' }).pipe(take(2)));
    const c = all(svc.client().send<Price>('prices', { symbol: 'XYZ' }).pipe(take(1)));
    await until(() => topics.subscribers('ACME') === 2 && topics.subscribers('XYZ') === 1, WAIT_MS, 'three subscriptions');
    expect(topics.publish('XYZ', { symbol: 'XYZ', tick: 1 })).toBe(1);
    for (let tick = 1; tick <= 3; tick++) topics.publish('ACME', { symbol: 'ACME', tick });
    expect((await within(a)).map((p) => p.tick)).toEqual([1, 2, 3]);
    expect((await within(b)).map((p) => p.tick)).toEqual([1, 2]);
    expect(await within(c)).toEqual([{ symbol: 'XYZ', tick: 1 }]);
    await until(() => topics.topics.length === 0, WAIT_MS, 'every topic gone with its last subscriber');
    expect(topics.publish('ACME', { symbol: 'ACME', tick: 4 })).toBe(0);
  });

  it("a slow subscriber with overflow 'latest' gets the newest price, and the server holds one item, not the backlog", async () => {
    const record = new WsMsgpackRecordBuilder({ symbol: 'SLOW' }).setWindow(1).setOverflow('latest').build();
    const it = svc.client().iterate<Price>('prices', record);
    const firstPrice = it.next();
    await until(() => topics.subscribers('SLOW') === 1, WAIT_MS, 'subscribed');
    for (let tick = 1; tick <= 10_000; tick++) topics.publish('SLOW', { symbol: 'SLOW', tick: tick });
    expect(svc.server.bufferedBytes).toBeLessThan(100); // one waiting price, whatever the publisher did
    expect((await within(firstPrice)).value).toEqual({ symbol: 'SLOW', tick: 1 });
    expect((await within(it.next())).value).toEqual({ symbol: 'SLOW', tick: 10_000 });
    await it.return!();
    await until(() => topics.subscribers('SLOW') === 0, WAIT_MS, 'unsubscribed');
  });

  it('end(topic) completes every subscription of it', async () => {
    const sub = all(svc.client().send<Price>('prices', { symbol: 'END' }));
    await until(() => topics.subscribers('END') === 1, WAIT_MS, 'subscribed');
    topics.publish('END', { symbol: 'END', tick: 1 });
    topics.end('END');
    expect(await within(sub)).toEqual([{ symbol: 'END', tick: 1 }]);
  });
});
