// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- see the next line
// @ts-nocheck -- type-checked in the fresh apps (run.mjs drops this line): the repo's typecheck runs before dist/ exists
// The server side of the fresh app: a unary handler and a stream handler, as a user writes them.
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { interval, map, take, type Observable } from 'rxjs';

@Controller()
export class MathController {
  @MessagePattern('sum')
  sum(@Payload() values: number[]): number {
    return values.reduce((a, b) => a + b, 0);
  }

  /** n squares, one every 2 ms. */
  @MessagePattern('squares')
  squares(@Payload() n: number): Observable<number> {
    return interval(2).pipe(
      take(n),
      map((i) => i * i),
    );
  }
}
