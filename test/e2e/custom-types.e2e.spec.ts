/**
 * Custom types on the wire (issue 11): msgpack extension types for the application's own classes
 * on the server, the Nest client and the browser client, inside a stream and inside an error
 * payload; Nest's serializer/deserializer options refused with a clear error, never ignored.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { ExtensionCodec } from '@msgpack/msgpack';
import { from, map, type Observable } from 'rxjs';
import { WebSocket as UndiciWebSocket } from 'undici';
import { ExtData, WsMsgpackClient, WsMsgpackServer, type WsMsgpackExtension } from '../../src/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { all, errorOf, first, startService, type TestService } from '../support/helpers.js';

/** The application's money type: integer cents and a currency. */
class Money {
  constructor(
    readonly cents: bigint,
    readonly currency: string,
  ) {}

  plus(other: Money): Money {
    return new Money(this.cents + other.cents, this.currency);
  }
}

const MONEY: WsMsgpackExtension<Money> = {
  type: 1,
  encode: (v) => (v instanceof Money ? new TextEncoder().encode(`${v.currency}:${v.cents}`) : null),
  decode: (bytes) => {
    const [currency, cents] = new TextDecoder().decode(bytes).split(':');
    return new Money(BigInt(cents!), currency!);
  },
};

/** A decimal type registered the other way: an @msgpack/msgpack ExtensionCodec. */
class Decimal {
  constructor(readonly text: string) {}
}
const decimals = new ExtensionCodec();
decimals.register({
  type: 2,
  encode: (v) => (v instanceof Decimal ? new TextEncoder().encode(v.text) : null),
  decode: (bytes) => new Decimal(new TextDecoder().decode(bytes)),
});

@Controller()
class LedgerController {
  /** Money in, Money out. */
  @MessagePattern('add')
  add(@Payload() [a, b]: [Money, Money]): { isMoney: boolean; total: Money } {
    return { isMoney: a instanceof Money && b instanceof Money, total: a.plus(b) };
  }

  /** A stream of Money. */
  @MessagePattern('statement')
  statement(@Payload() n: number): Observable<Money> {
    return from(Array.from({ length: n }, (_, i) => i)).pipe(map((i) => new Money(BigInt(i * 100), 'EUR')));
  }

  /** An error whose payload carries Money. */
  @MessagePattern('withdraw')
  withdraw(@Payload() amount: Money): never {
    throw new RpcException({ status: 'error', message: 'insufficient funds', balance: new Money(50n, amount.currency) });
  }

  @MessagePattern('decimal')
  decimal(@Payload() d: Decimal): { isDecimal: boolean; back: Decimal } {
    return { isDecimal: d instanceof Decimal, back: new Decimal(`${d.text}0`) };
  }

  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    return v;
  }
}

let svc: TestService;
beforeAll(async () => {
  svc = await startService({ controllers: [LedgerController] }, { extensions: [MONEY], extensionCodec: decimals });
});
afterAll(async () => {
  await svc.close();
});

describe('extension types (Nest client)', () => {
  it('a class arrives as that class: both ways, inside a stream, inside an error payload', async () => {
    const client = svc.client({ extensions: [MONEY], extensionCodec: decimals });
    const r = await first(client.send<{ isMoney: boolean; total: Money }>('add', [new Money(250n, 'EUR'), new Money(5n, 'EUR')]));
    expect(r.isMoney).toBe(true);
    expect(r.total).toBeInstanceOf(Money);
    expect(r.total).toEqual(new Money(255n, 'EUR'));

    const items = await all(client.send<Money>('statement', 3));
    expect(items.every((m) => m instanceof Money)).toBe(true);
    expect(items.map((m) => m.cents)).toEqual([0n, 100n, 200n]);

    const err = (await errorOf(client.send('withdraw', new Money(999n, 'USD')))) as { message: string; balance: Money };
    expect(err.message).toBe('insufficient funds');
    expect(err.balance).toBeInstanceOf(Money);
    expect(err.balance).toEqual(new Money(50n, 'USD'));

    const d = await first(client.send<{ isDecimal: boolean; back: Decimal }>('decimal', new Decimal('1.5')));
    expect(d).toEqual({ isDecimal: true, back: new Decimal('1.50') });
  });

  it('a peer without the extension gets the raw ExtData (type and bytes), not an error', async () => {
    const plain = svc.client();
    const v = await first(plain.send<ExtData>('echo', new ExtData(1, new TextEncoder().encode('EUR:7'))));
    expect(v).toBeInstanceOf(ExtData);
    expect(v.type).toBe(1);
    expect(new TextDecoder().decode(v.data as Uint8Array)).toBe('EUR:7');
    // The server decoded it as Money and encoded it back as type 1: the same bytes.
  });
});

describe('extension types (browser client)', () => {
  it('the same extensions work on the web client', async () => {
    const web = new WsMsgpackWebClient({ url: svc.url, WebSocket: UndiciWebSocket as unknown as WebSocketConstructor, extensions: [MONEY] });
    try {
      const r = await web.call<{ total: Money }>('add', [new Money(1n, 'GBP'), new Money(2n, 'GBP')]);
      expect(r.total).toEqual(new Money(3n, 'GBP'));
      const got: Money[] = [];
      for await (const m of web.iterate<Money>('statement', 2)) got.push(m);
      expect(got).toEqual([new Money(0n, 'EUR'), new Money(100n, 'EUR')]);
    } finally {
      await web.close();
    }
  });
});

describe('options are checked', () => {
  it.each([
    [{ extensions: [{ type: -1, encode: () => null, decode: () => 1 }] }, /type must be a whole number 0-127 \(got -1\); -128..-1 are reserved by msgpack/],
    [{ extensions: [{ type: 128, encode: () => null, decode: () => 1 }] }, /0-127 \(got 128\)/],
    [{ extensions: [MONEY, MONEY] }, /extension type 1 is registered twice/],
    [{ extensions: [{ type: 3 }] }, /extension type 3 needs encode and decode functions/],
    [{ extensionCodec: {} }, /extensionCodec must be an @msgpack\/msgpack ExtensionCodec/],
  ])('%j is refused on server and clients', (bad, message) => {
    expect(() => new WsMsgpackServer({ port: 0, ...(bad as object) })).toThrow(message);
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', ...(bad as object) })).toThrow(message);
    expect(() => new WsMsgpackWebClient({ url: 'ws://127.0.0.1:1', WebSocket: UndiciWebSocket as unknown as WebSocketConstructor, ...(bad as object) })).toThrow(message);
  });
});

describe("Nest's serializer / deserializer options", () => {
  const serializer = { serialize: (v: unknown) => v };
  const deserializer = { deserialize: (v: unknown) => v };
  it.each([
    ['serializer', { serializer }],
    ['deserializer', { deserializer }],
  ])('%s is refused with a clear error on the server, the Nest client and the web client (never ignored)', (name, option) => {
    const message = new RegExp(`the \`${name}\` option of Nest's transports is not supported: .*use the \`extensions\` option`);
    expect(() => new WsMsgpackServer({ port: 0, ...(option as object) })).toThrow(message);
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', ...(option as object) })).toThrow(message);
    expect(() => new WsMsgpackWebClient({ url: 'ws://127.0.0.1:1', WebSocket: UndiciWebSocket as unknown as WebSocketConstructor, ...(option as object) })).toThrow(message);
  });
});
