import {
  type ArgumentsHost,
  type CallHandler,
  Catch,
  Controller,
  type ExecutionContext,
  Injectable,
  Module,
  type INestMicroservice,
  type NestInterceptor,
  type RpcExceptionFilter,
  UseFilters,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientTCP, MessagePattern, Payload, RpcException, Transport } from '@nestjs/microservices';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { concat, type Observable, of, tap, throwError } from 'rxjs';
import type { WsMsgpackClient, WsMsgpackContext } from '../../src/index.js';
import { first, startService, until, WAIT_MS, within, type TestService } from '../support/helpers.js';

/**
 * Exception filters see every handler error alike on this transport, whichever form the handler
 * has: a sync throw, a rejected Promise, an erroring Observable, or an async generator (which the
 * transport iterates after Nest's RpcProxy has returned, see src/patches/nest-filters.ts).
 */

/** One exception as an exception filter saw it. */
interface Seen {
  by: 'global' | 'method' | 'fallback';
  error: unknown;
  pattern: string;
}

/** What the filters saw, in order (reset before each test). */
const seen: Seen[] = [];
/** What the handlers threw, in order (reset before each test). */
const thrown: unknown[] = [];
/** Errors the global interceptor saw travel down `next.handle()`. */
const intercepted: unknown[] = [];
/** Tags of generators whose `finally` ran. */
const finalized = new Set<string>();

let serial = 0;
/** A new error with a unique message, remembered as thrown. */
function fresh(what: string): Error {
  const e = new Error(`${what} failed #${++serial}`);
  thrown.push(e);
  return e;
}

function patternOf(host: ArgumentsHost): string {
  return host.switchToRpc().getContext<WsMsgpackContext>().getPattern();
}

@Catch()
class RecordingFilter implements RpcExceptionFilter<Error> {
  catch(exception: Error, host: ArgumentsHost): Observable<never> {
    seen.push({ by: 'global', error: exception, pattern: patternOf(host) });
    return throwError(() => ({ filtered: true, message: exception.message }));
  }
}

@Catch()
class MethodFilter implements RpcExceptionFilter<Error> {
  catch(exception: Error, host: ArgumentsHost): Observable<never> {
    seen.push({ by: 'method', error: exception, pattern: patternOf(host) });
    return throwError(() => ({ method: true, message: exception.message }));
  }
}

/** Answers an error with a value instead of an error. */
@Catch()
class FallbackFilter implements RpcExceptionFilter<Error> {
  catch(exception: Error, host: ArgumentsHost): Observable<string> {
    seen.push({ by: 'fallback', error: exception, pattern: patternOf(host) });
    return of('fallback');
  }
}

@Injectable()
class RecordingInterceptor implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(tap({ error: (e: unknown) => intercepted.push(e) }));
  }
}

@Controller()
class FailingController {
  @MessagePattern('ping')
  ping(): string {
    return 'pong';
  }

  @MessagePattern('sync')
  sync(): never {
    throw fresh('sync');
  }

  @MessagePattern('promise')
  async promise(): Promise<never> {
    await Promise.resolve();
    throw fresh('promise');
  }

  @MessagePattern('throwError')
  throwErrorObservable(): Observable<never> {
    const e = fresh('throwError');
    return throwError(() => e);
  }

  @MessagePattern('observableAfter2')
  observableAfter2(): Observable<number> {
    const e = fresh('observableAfter2');
    return concat(
      of(1, 2),
      throwError(() => e),
    );
  }

  @MessagePattern('generatorAfter2')
  async *generatorAfter2(): AsyncGenerator<number> {
    yield 1;
    yield 2;
    throw fresh('generatorAfter2');
  }

  @MessagePattern('generatorBeforeYield')
  async *generatorBeforeYield(@Payload() items: number[]): AsyncGenerator<number> {
    await Promise.resolve();
    if (items.length === 0) throw fresh('generatorBeforeYield');
    yield* items; // not reached: the test sends no items
  }

  @MessagePattern('promiseOfGenerator')
  async promiseOfGenerator(): Promise<AsyncGenerator<number>> {
    await Promise.resolve();
    return (async function* () {
      yield 1;
      yield 2;
      throw fresh('promiseOfGenerator');
    })();
  }

  @MessagePattern('methodFiltered')
  @UseFilters(new MethodFilter())
  async *methodFiltered(): AsyncGenerator<number> {
    yield 1;
    throw fresh('methodFiltered');
  }

  @MessagePattern('rpcExceptionGenerator')
  async *rpcExceptionGenerator(@Payload() message: string): AsyncGenerator<number> {
    yield 1;
    throw new RpcException(message);
  }

  /** Endless; its `finally` records the tag. */
  @MessagePattern('endless')
  async *endless(@Payload() tag: string): AsyncGenerator<number> {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      finalized.add(tag);
    }
  }
}

/** The same error on Nest's TCP transport, as an Observable (TCP does not iterate generators). */
@Controller()
class TcpRpcExceptionController {
  @MessagePattern('rpcExceptionGenerator')
  rpcExceptionObservable(@Payload() message: string): Observable<number> {
    return concat(
      of(1),
      throwError(() => new RpcException(message)),
    );
  }
}

@Module({ controllers: [TcpRpcExceptionController] })
class TcpModule {}

type Event = { next: unknown } | { error: unknown } | 'complete';

/** Everything a call delivers, in order, up to its end (bounded). */
function outcome(o: Observable<unknown>): Promise<Event[]> {
  const events: Event[] = [];
  return within(
    new Promise<Event[]>((resolve) => {
      o.subscribe({
        next: (value) => events.push({ next: value }),
        error: (error: unknown) => resolve([...events, { error }]),
        complete: () => resolve([...events, 'complete']),
      });
    }),
    WAIT_MS,
    'call',
  );
}

const items = (...values: unknown[]): Event[] => values.map((next) => ({ next }));

/** [name, pattern, payload, items sent before the error] */
const CASES: Array<[string, string, unknown, unknown[]]> = [
  ['sync throw', 'sync', null, []],
  ['async Promise rejection', 'promise', null, []],
  ['throwError Observable', 'throwError', null, []],
  ['Observable that errors after 2 items', 'observableAfter2', null, [1, 2]],
  ['async generator that throws after 2 items', 'generatorAfter2', null, [1, 2]],
  ['async generator that throws before yielding', 'generatorBeforeYield', [], []],
  ['Promise resolving to an async generator that throws after 2 items', 'promiseOfGenerator', null, [1, 2]],
];

function reset(): void {
  seen.length = 0;
  thrown.length = 0;
  intercepted.length = 0;
}

/**
 * Awaits one more round trip on the same connection before asserting what the filters saw: a
 * second, late filter run for the failed call would have had that long to show.
 */
async function barrier(client: WsMsgpackClient): Promise<void> {
  expect(await first(client.send('ping', null))).toBe('pong');
}

/** The failed call reached the filter once, with the error the handler threw, and the client got the filter's payload. */
async function expectFilteredOnce(client: WsMsgpackClient, pattern: string, payload: unknown, before: unknown[]): Promise<void> {
  const events = await outcome(client.send(pattern, payload));
  await barrier(client);
  expect(thrown).toHaveLength(1);
  const error = thrown[0] as Error;
  expect(events).toEqual([...items(...before), { error: { filtered: true, message: error.message } }]);
  expect(seen).toHaveLength(1);
  expect(seen[0]!.by).toBe('global');
  expect(seen[0]!.error).toBe(error);
  expect(seen[0]!.pattern).toBe(pattern);
}

/** A generator stopped by the client's take(1) runs its `finally`, and no filter sees an error. */
async function expectCancelledQuietly(client: WsMsgpackClient, tag: string): Promise<void> {
  expect(await first(client.send('endless', tag))).toBe(0);
  await until(() => finalized.has(tag), WAIT_MS, `finally of the generator ${tag}`);
  await barrier(client);
  expect(seen).toEqual([]);
}

describe('a global exception filter sees every handler error alike', () => {
  let svc: TestService;
  let client: WsMsgpackClient;

  beforeAll(async () => {
    svc = await startService({ controllers: [FailingController] }, {}, (app) => app.useGlobalFilters(new RecordingFilter()));
    client = svc.client();
  });
  afterAll(() => svc.close());
  beforeEach(reset);

  it.each(CASES)("%s: the filter sees the error once; the client gets the items, then the filter's payload", async (_name, pattern, payload, before) => {
    await expectFilteredOnce(client, pattern, payload, before);
  });

  it('a method-scoped @UseFilters filter on a generator handler wins over the global one', async () => {
    const events = await outcome(client.send('methodFiltered', null));
    await barrier(client);
    expect(thrown).toHaveLength(1);
    const error = thrown[0] as Error;
    expect(events).toEqual([...items(1), { error: { method: true, message: error.message } }]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual({ by: 'method', error, pattern: 'methodFiltered' });
    expect(seen[0]!.error).toBe(error);
  });

  it('cancellation (take(1)) still ends a generator handler routed through the filters: its finally runs, no filter sees an error', async () => {
    await expectCancelledQuietly(client, 'cancel-global-filter');
  });
});

describe('with a global interceptor too (the generator is then an Observable of a generator inside Nest)', () => {
  let svc: TestService;
  let client: WsMsgpackClient;

  beforeAll(async () => {
    svc = await startService({ controllers: [FailingController] }, {}, (app) => {
      app.useGlobalInterceptors(new RecordingInterceptor());
      app.useGlobalFilters(new RecordingFilter());
    });
    client = svc.client();
  });
  afterAll(() => svc.close());
  beforeEach(reset);

  it.each(CASES)("%s: the filter sees the error once; the client gets the items, then the filter's payload", async (_name, pattern, payload, before) => {
    await expectFilteredOnce(client, pattern, payload, before);
  });

  it.each(CASES.filter(([, pattern]) => !/enerator/.test(pattern)))(
    '%s: the interceptor sees the error on its way to the filter (as on any transport)',
    async (_name, pattern, payload) => {
      await outcome(client.send(pattern, payload));
      expect(intercepted).toHaveLength(1);
      expect(intercepted[0]).toBe(thrown[0]);
    },
  );

  it('cancellation (take(1)) still ends a generator handler: its finally runs, no filter sees an error', async () => {
    await expectCancelledQuietly(client, 'cancel-interceptor');
  });
});

describe('a filter that answers a generator error with a value', () => {
  let svc: TestService;
  let client: WsMsgpackClient;

  beforeAll(async () => {
    svc = await startService({ controllers: [FailingController] }, {}, (app) => app.useGlobalFilters(new FallbackFilter()));
    client = svc.client();
  });
  afterAll(() => svc.close());
  beforeEach(reset);

  it("the client receives the items, then 'fallback', then completion", async () => {
    const events = await outcome(client.send('generatorAfter2', null));
    await barrier(client);
    expect(events).toEqual([...items(1, 2, 'fallback'), 'complete']);
    expect(thrown).toHaveLength(1);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toEqual({ by: 'fallback', error: thrown[0], pattern: 'generatorAfter2' });
    expect(seen[0]!.error).toBe(thrown[0]);
  });

  it('for a generator that throws before yielding: just the fallback, then completion', async () => {
    const events = await outcome(client.send('generatorBeforeYield', []));
    expect(events).toEqual([...items('fallback'), 'complete']);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.error).toBe(thrown[0]);
  });
});

describe('no custom filter: an RpcException thrown inside a generator arrives as on Nest TCP', () => {
  let svc: TestService;
  let client: WsMsgpackClient;
  let tcpApp: INestMicroservice;
  let tcp: ClientTCP;

  beforeAll(async () => {
    svc = await startService({ controllers: [FailingController] });
    client = svc.client();
    tcpApp = await NestFactory.createMicroservice(TcpModule, { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: false });
    await within(tcpApp.listen());
    const port = (tcpApp.unwrap<NetServer>().address() as AddressInfo).port;
    tcp = new ClientTCP({ host: '127.0.0.1', port });
  });
  afterAll(async () => {
    await tcp.close();
    await within(tcpApp.close());
    await svc.close();
  });
  beforeEach(reset);

  it("{ status: 'error', message } after the items, the same as TCP delivers for the Observable form", async () => {
    const viaWs = await outcome(client.send('rpcExceptionGenerator', 'not allowed'));
    const viaTcp = await outcome(tcp.send('rpcExceptionGenerator', 'not allowed'));
    expect(viaWs).toEqual([...items(1), { error: { status: 'error', message: 'not allowed' } }]);
    expect(viaWs).toEqual(viaTcp);
  });
});
