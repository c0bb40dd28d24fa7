import { Catch, type RpcExceptionFilter } from '@nestjs/common';
import { throwError, type Observable } from 'rxjs';

/** A domain error thrown in the middle of a stream. */
export class OutOfStockError extends Error {
  constructor(readonly sku: string) {
    super(`${sku} is out of stock`);
  }
}

/**
 * An ordinary Nest exception filter. It also sees errors thrown inside async generator handlers,
 * which the transport iterates after Nest has returned.
 */
@Catch(OutOfStockError)
export class OutOfStockFilter implements RpcExceptionFilter<OutOfStockError> {
  catch(error: OutOfStockError): Observable<never> {
    return throwError(() => ({ code: 'OUT_OF_STOCK', sku: error.sku }));
  }
}
