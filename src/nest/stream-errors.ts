import { Logger } from '@nestjs/common';
import { RpcException } from '@nestjs/microservices';
import { WsMsgpackError } from '../protocol/errors.js';

const logger = new Logger('RpcExceptionsHandler');

/**
 * What Nest's default RPC exception filter makes of an error: an `RpcException`'s error
 * (strings wrapped as `{ status: 'error', message }`), anything else logged and replaced by
 * `Internal server error`. Transport errors keep their code.
 *
 * Nest runs exception filters on errors of the Observables that handlers return, but an async
 * generator is only iterated later, by the transport, outside Nest's reach: the server gives this
 * function to the connection for errors thrown while pulling one, so a stream fails the same way
 * whichever form the handler used. (Custom exception filters do not see them: see the README.)
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
