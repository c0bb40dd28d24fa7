import { Controller, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { from, type Observable, tap } from 'rxjs';
import { startService, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

/**
 * Exact credit at the wire level: a receiver that grants exactly N credit for an N-item stream
 * receives the N items and COMPLETE, and never has to send another CREDIT to learn the end.
 */

async function* count(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve)); // a real async producer
    yield i;
  }
}

@Controller()
class CountController {
  @MessagePattern('gen')
  async *gen(@Payload() n: number): AsyncGenerator<number> {
    yield* count(n);
  }

  @MessagePattern('gen-promise')
  async genPromise(@Payload() n: number): Promise<AsyncGenerator<number>> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return count(n);
  }

  @MessagePattern('iterable-observable')
  iterableObservable(@Payload() n: number): Observable<number> {
    return from(count(n));
  }
}

class PassThrough implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(tap(() => {}));
  }
}

const N = 5;

describe.each([
  ['an async generator handler', 'gen', []],
  ['a Promise of an async generator', 'gen-promise', []],
  ['an Observable of an async iterable (from(asyncGen))', 'iterable-observable', []],
  ['an async generator behind an interceptor', 'gen', [new PassThrough()]],
] as const)('exact credit: %s', (_name, pattern, interceptors) => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [CountController] }, {}, (app) => {
      if (interceptors.length) app.useGlobalInterceptors(...interceptors);
    });
  });
  afterAll(() => svc.close());

  it(`n: ${N} up front: ${N} NEXT, then COMPLETE, with no further CREDIT`, async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, pattern, N, { n: N }]);
      const end = await peer.next((f) => (f[0] === 4 || f[0] === 5) && f[1] === 1, 'end of call 1');
      expect(end).toEqual([4, 1]);
      expect(peer.frames).toEqual(Array.from({ length: N }, (_, i) => [3, 1, i]));
    } finally {
      peer.close();
    }
  });

  it('n: 1, then one CREDIT of 1 per item received: COMPLETE follows the last item without another CREDIT', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, pattern, N, { n: 1 }]);
      const got: unknown[][] = [];
      for (let i = 0; i < N; i++) {
        got.push(await peer.next((f) => f[1] === 1, `item ${i}`));
        if (i < N - 1) peer.send([7, 1, 1]);
      }
      // The last item comes as NEXT + COMPLETE, or inside COMPLETE (rxjs's from() pushes, and a
      // buffered last item rides on COMPLETE): either way no further CREDIT is needed.
      expect(got.map((f) => f[2])).toEqual(Array.from({ length: N }, (_, i) => i));
      expect(got.slice(0, N - 1).every((f) => f[0] === 3)).toBe(true);
      if (got[N - 1]![0] === 3) expect(await peer.next((f) => f[1] === 1, 'COMPLETE')).toEqual([4, 1]);
      else expect(got[N - 1]).toEqual([4, 1, N - 1]);
    } finally {
      peer.close();
    }
  });
});
