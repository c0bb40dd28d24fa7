import { BadRequestException, Controller, Get, Inject, ParseFloatPipe, Query } from '@nestjs/common';
import type { ClientProxy } from '@nestjs/microservices';
import { catchError, map, type Observable } from 'rxjs';
import { MATH_CLIENT, type DivRequest } from '../shared.js';

/**
 * Plain HTTP route of the hybrid app. It answers by calling the microservice through the
 * ClientsModule-injected WsMsgpackClient, the way any Nest service calls another one.
 */
@Controller('http')
export class HttpController {
  constructor(@Inject(MATH_CLIENT) private readonly math: ClientProxy) {}

  @Get('div')
  div(@Query('a', ParseFloatPipe) a: number, @Query('b', ParseFloatPipe) b: number): Observable<{ a: number; b: number; result: number }> {
    return this.math.send<number, DivRequest>('div', { a, b }).pipe(
      map((result) => ({ a, b, result })),
      // The RpcException payload ({ code, message }) arrives as the error; answer 400 with it.
      catchError((err: unknown) => {
        throw new BadRequestException(err);
      }),
    );
  }
}
