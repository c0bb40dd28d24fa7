import { Logger } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { map, type Observable } from 'rxjs';
import { isAsyncIterable } from '../connection/outbound-stream.js';
import { WsMsgpackError } from '../protocol/errors.js';

const logger = new Logger('RpcExceptionsHandler');

/**
 * What Nest's default RPC exception filter makes of an error: an `RpcException`'s error
 * (strings wrapped as `{ status: 'error', message }`), anything else logged and replaced by
 * `Internal server error`. Transport errors keep their code.
 */
export function toRpcErrorPayload(error: unknown): unknown {
  if (error instanceof WsMsgpackError) return error;
  if (error instanceof RpcException) {
    const res = error.getError();
    return typeof res === 'object' && res !== null ? res : { status: 'error', message: res };
  }
  logger.error(error);
  return { status: 'error', message: 'Internal server error' };
}

/**
 * Nest runs exception filters on errors of the Observables that handlers return, but an async
 * generator is only iterated later, by the transport, outside Nest's reach. Errors thrown while
 * iterating get the default filter's mapping here, so a stream fails the same way whichever form
 * the handler used. (Custom exception filters do not see them: documented in the README.)
 */
export function mapIterableErrors(stream$: Observable<unknown>): Observable<unknown> {
  return stream$.pipe(map((value) => (isAsyncIterable(value) ? withMappedErrors(value) : value)));
}

function withMappedErrors(source: AsyncIterable<unknown>): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<unknown> {
      const it = source[Symbol.asyncIterator]();
      const wrapped: AsyncIterator<unknown> = {
        next: async (...args: [] | [unknown]) => {
          try {
            return await it.next(...args);
          } catch (e) {
            throw toRpcErrorPayload(e);
          }
        },
      };
      if (it.return) wrapped.return = (value?: unknown) => it.return!(value);
      return wrapped;
    },
  };
}
