import 'reflect-metadata';
import { Controller, Injectable, Scope, ValidationPipe, type PipeTransform } from '@nestjs/common';
import { APP_PIPE } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { from, Observable, reduce } from 'rxjs';
import { first, startService, type TestService } from '../support/helpers.js';

@Controller()
class StreamController {
  @MessagePattern('sum')
  sum(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((a, n) => a + n, 0));
  }
}

@Injectable({ scope: Scope.REQUEST })
class RequestCopyPipe implements PipeTransform {
  transform(value: unknown): unknown {
    return typeof value === 'object' && value !== null ? new Observable() : value;
  }
}

describe('request streams behind global pipes registered through APP_PIPE', () => {
  let svc: TestService | undefined;
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  it('APP_PIPE (singleton, useFactory) ValidationPipe({ transform: true }) is skipped for a request stream', async () => {
    svc = await startService({
      controllers: [StreamController],
      providers: [{ provide: APP_PIPE, useFactory: () => new ValidationPipe({ transform: true }) }],
    });
    expect(await first(svc.client().send('sum', from([1, 2, 3, 4])), 3000)).toBe(10);
  });

  it('request-scoped APP_PIPE with useClass is skipped for a request stream', async () => {
    svc = await startService({
      controllers: [StreamController],
      providers: [{ provide: APP_PIPE, scope: Scope.REQUEST, useClass: RequestCopyPipe }],
    });
    expect(await first(svc.client().send('sum', from([1, 2, 3, 4])), 3000)).toBe(10);
  });

  it('request-scoped APP_PIPE with useFactory (ValidationPipe({ transform: true })) is skipped for a request stream', async () => {
    svc = await startService({
      controllers: [StreamController],
      providers: [{ provide: APP_PIPE, scope: Scope.REQUEST, useFactory: () => new ValidationPipe({ transform: true }) }],
    });
    expect(await first(svc.client().send('sum', from([1, 2, 3, 4])), 3000)).toBe(10);
  });
});
