/**
 * Issue 16, item 1: a request stream behind pipes. `app.useGlobalPipes(new ValidationPipe({
 * transform: true }))` handed `@Payload() numbers$: Observable<number>` a new, empty Observable
 * (class-transformer's copy of the stream), and the call hung for ever, nothing logged. A request
 * stream now reaches the handler intact whatever the pipes do with it; a pipe that replaces it with
 * something that is not a stream derived from it fails the call at once, naming the pipe.
 */
import 'reflect-metadata';
import { jest } from '@jest/globals';
import { Controller, Logger, UsePipes, ValidationPipe, type ArgumentMetadata, type PipeTransform } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { IsInt } from 'class-validator';
import { from, lastValueFrom, map, Observable, reduce, toArray } from 'rxjs';
import type { WsRequestStream } from '../../src/index.js';
import { errorOf, first, startService, type TestService } from '../support/helpers.js';

class Point {
  @IsInt() x!: number;
}

/** A global pipe that replaces every value it sees (as a careless custom pipe would). */
class StringifyPipe implements PipeTransform {
  transform(value: unknown): unknown {
    return typeof value === 'object' && value !== null && !(value instanceof Array) ? { ...value } : value;
  }
}

/** A pipe that maps a stream: a stream derived from the request stream is what the handler gets. */
class DoublePipe implements PipeTransform {
  transform(value: unknown, _meta: ArgumentMetadata): unknown {
    return value instanceof Observable ? value.pipe(map((n) => (n as number) * 2)) : value;
  }
}

/** A method-scoped pipe that throws the stream away. */
class ReplacePipe implements PipeTransform {
  transform(): unknown {
    return new Observable<number>();
  }
}

/** A pipe that collects the items itself: it consumed the stream, so whatever it returns stands. */
class CollectPipe implements PipeTransform {
  transform(value: unknown): Promise<unknown> {
    return lastValueFrom((value as Observable<number>).pipe(toArray()));
  }
}

@Controller()
class StreamController {
  @MessagePattern('sum')
  sum(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, n) => a + n, 0));
  }

  @MessagePattern('sum.pull')
  async sumPull(@Payload() numbers: WsRequestStream<number>): Promise<number> {
    let total = 0;
    for await (const n of numbers) total += n;
    return total;
  }

  @MessagePattern('sum.iterable')
  async sumIterable(@Payload() numbers: AsyncIterable<number>): Promise<number> {
    let total = 0;
    for await (const n of numbers) total += n;
    return total;
  }

  @MessagePattern('sum.doubled')
  @UsePipes(new DoublePipe())
  doubled(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, n) => a + n, 0));
  }

  @MessagePattern('sum.replaced')
  @UsePipes(new ReplacePipe())
  replaced(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, n) => a + n, 0));
  }

  @MessagePattern('sum.validated')
  @UsePipes(new ValidationPipe({ transform: true }))
  validated(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, n) => a + n, 0));
  }

  @MessagePattern('sum.collected')
  collected(@Payload(new CollectPipe()) numbers: number[]): number {
    return numbers.reduce((a, n) => a + n, 0);
  }

  @MessagePattern('point')
  point(@Payload() p: Point, @Payload('x') x: number): unknown {
    return { instance: p instanceof Point, x };
  }
}

const pipes: [string, () => PipeTransform[]][] = [
  ['ValidationPipe({ transform: true })', () => [new ValidationPipe({ transform: true })]],
  ['ValidationPipe({ transform: false })', () => [new ValidationPipe({ transform: false })]],
  ['ValidationPipe({ transform: true, whitelist: true })', () => [new ValidationPipe({ transform: true, whitelist: true })]],
  ['ValidationPipe({ whitelist: true, forbidNonWhitelisted: true })', () => [new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true })]],
  ['a custom global pipe that copies objects', () => [new StringifyPipe()]],
];

describe.each(pipes)('a request stream behind the global %s', (_name, make) => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [StreamController] }, {}, (app) => app.useGlobalPipes(...make()));
  });
  afterAll(() => svc.close());

  it('reaches an Observable handler intact', async () => {
    expect(await first(svc.client().send('sum', from([1, 2, 3, 4])), 5000)).toBe(10);
  });

  it('reaches a pulling handler (WsRequestStream, AsyncIterable) intact', async () => {
    expect(await first(svc.client().send('sum.pull', from([1, 2, 3])), 5000)).toBe(6);
    expect(await first(svc.client().send('sum.iterable', from([5, 6])), 5000)).toBe(11);
  });

  it('a method-scoped pipe that maps the stream still applies', async () => {
    expect(await first(svc.client().send('sum.doubled', from([1, 2, 3])), 5000)).toBe(12);
  });

  it('a method-scoped pipe that replaces the stream fails the call at once, naming the pipe', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    try {
      // Nest's exception filter answers what is not an RpcException with "Internal server error"...
      const err = await errorOf(svc.client().send('sum.replaced', from([1, 2, 3])), 5000);
      expect(err).toEqual({ status: 'error', message: 'Internal server error' });
      // ...and logs the error, which names the pipe.
      const messages = logged.mock.calls.map((args) => (args[0] instanceof Error ? args[0].message : String(args[0])));
      expect(messages).toContainEqual(expect.stringMatching(/^nestjs-ws-msgpack: the pipe ReplacePipe replaced the request stream with an Observable that can never emit/));
    } finally {
      logged.mockRestore();
    }
  });

  it('a method-scoped ValidationPipe({ transform: true }) fails the call at once, naming it', async () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    try {
      expect(await errorOf(svc.client().send('sum.validated', from([1, 2])), 5000)).toEqual({ status: 'error', message: 'Internal server error' });
      const messages = logged.mock.calls.map((args) => (args[0] instanceof Error ? args[0].message : String(args[0])));
      expect(messages).toContainEqual(expect.stringMatching(/the pipe ValidationPipe replaced the request stream/));
    } finally {
      logged.mockRestore();
    }
  });

  it('a parameter pipe that consumes the stream itself may return anything', async () => {
    expect(await first(svc.client().send('sum.collected', from([1, 2, 3, 4])), 5000)).toBe(10);
  });

  it('plain payloads and @Payload(field) go through the pipes as before', async () => {
    const got = (await first(svc.client().send('point', { x: 3 }), 5000)) as { instance: boolean; x: number };
    expect(got.x).toBe(3);
  });
});
