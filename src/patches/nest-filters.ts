/**
 * Patches of Nest's internals for exception filters, checked against @nestjs/microservices 11.0 -
 * 12.5 (`test/unit/nest-internals.spec.ts` fails when they change shape):
 * - `RpcProxy.prototype.create`: errors of async generator handlers reach the exception filters;
 * - `BaseRpcExceptionFilter.prototype.catch`: a transport error a handler lets through reaches the
 *   caller typed, in this side's words.
 * Both act only on this transport's calls (the context is a `WsMsgpackContext`).
 */
import { RpcProxy } from '@nestjs/microservices/context/rpc-proxy.js';
import { BaseRpcExceptionFilter } from '@nestjs/microservices/exceptions/base-rpc-exception-filter.js';
import { isObservable, throwError } from 'rxjs';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { isFromPeer, isFromRequestStream } from '../connection/errors.js';
import { expandIterables, isAsyncIterable, iterateThrough } from '../connection/iteration.js';
import { WsMsgpackContext } from '../nest/ws-msgpack.context.js';

type Callback = (...args: unknown[]) => Promise<unknown>;
type Create = (this: unknown, targetCallback: Callback, ...rest: unknown[]) => Callback;

/** This copy of the package's mark on `RpcProxy.prototype` (a second copy installs its own). */
const INSTALLED = Symbol('nestjs-ws-msgpack filter bridge');

/**
 * Makes errors thrown inside async generator handlers reach Nest's exception filters, like errors
 * of returned Observables.
 *
 * Nest wraps every handler in an `RpcProxy` that pipes a returned Observable through
 * `catchError(→ exception filters)`, but passes anything else through untouched: an async
 * generator is iterated later, by the transport, where no filter can see what it throws. This
 * wraps the handler callback `RpcProxy.create` receives so that, for calls of this transport only
 * (the context is a {@link WsMsgpackContext}), an async iterable result becomes an Observable that
 * hands the iterable to the transport and errors with whatever the iteration throws, before the
 * proxy adds its `catchError`. The transport still pulls the iterable on credit. Other transports'
 * calls are not touched.
 *
 * Idempotent. Returns false when Nest's internals do not look as expected; the transport then maps
 * generator errors the way Nest's default filter would (custom filters do not see them).
 */
export function installFilterBridge(): boolean {
  const proto = (RpcProxy as { prototype?: unknown } | undefined)?.prototype as ({ create?: Create } & Record<symbol, unknown>) | undefined;
  if (!proto || typeof proto.create !== 'function') return false;
  if (proto[INSTALLED]) return true;
  const original = proto.create;
  proto.create = function (this: unknown, targetCallback: Callback, ...rest: unknown[]): Callback {
    const bridged: Callback = async (...args) => {
      const result = await targetCallback(...args);
      const ctx = args[1];
      return ctx instanceof WsMsgpackContext ? asIterationSource(result, ctx) : result;
    };
    return original.call(this, bridged, ...rest);
  };
  proto[INSTALLED] = true;
  installTransportErrors();
  return true;
}

type Catch = (this: unknown, exception: unknown, host: { getArgByIndex?(i: number): unknown }) => unknown;

/**
 * Lets Nest's default RPC exception filter pass a transport error (a {@link WsMsgpackError}: a
 * peer's UNIMPLEMENTED, a DEADLINE_EXCEEDED, an UNAVAILABLE) thrown in a handler of this transport
 * to the caller typed, with its code, instead of `Internal server error`: a handler that relays a
 * call to a peer fails the way the peer failed, in this side's words (see `relayed` for what is
 * told). Not the caller's own errors: an ERROR the caller sent on its request stream, let through
 * by the handler, is answered as any other error. Custom filters (`@Catch(WsMsgpackError)`, or
 * catch-all ones) run first and see the error itself, as before; other errors and other
 * transports' calls are untouched. Patches `BaseRpcExceptionFilter.prototype.catch` (the default
 * filter, and `super.catch` of filters extending it; checked against @nestjs/microservices 11.0 -
 * 12.5, `test/unit/nest-internals.spec.ts`).
 */
function installTransportErrors(): void {
  const proto = (BaseRpcExceptionFilter as { prototype?: unknown } | undefined)?.prototype as ({ catch?: Catch } & Record<symbol, unknown>) | undefined;
  if (!proto || typeof proto.catch !== 'function' || proto[INSTALLED]) return;
  const original = proto.catch;
  proto.catch = function (this: unknown, exception, host) {
    if (exception instanceof WsMsgpackError && !isFromRequestStream(exception) && host?.getArgByIndex?.(1) instanceof WsMsgpackContext) {
      const told = relayed(exception);
      if (told) return throwError(() => told);
    }
    return original.call(this, exception, host);
  };
  proto[INSTALLED] = true;
}

function asIterationSource(result: unknown, ctx: WsMsgpackContext): unknown {
  if (isObservable(result)) return expandIterables(result);
  if (isAsyncIterable(result)) {
    return iterateThrough(result, (disposeIfUnused) => ctx.onCallEnd(() => disposeIfUnused().catch((e: unknown) => ctx.reportError(e))));
  }
  return result;
}

/** The codes this transport defines: the only ones relayed typed. */
const KNOWN_CODES = new Set<string>(Object.values(WsMsgpackErrorCode));

/**
 * What a caller is told of a transport error its handler let through, or undefined when it is
 * answered as any other error (Internal server error). Only codes this transport defines, except
 * APPLICATION_ERROR (a peer's handler failed: this handler's business), are relayed typed:
 * - an error a peer sent (its ERROR frame): the code only, with a message of this side's and no
 *   details, since the peer's words would reach callers it has nothing to do with;
 * - UNAVAILABLE: a message of its own and no details, since this side's may name its own
 *   infrastructure (the address a client could not reach, the socket error);
 * - PROTOCOL_ERROR (a peer's broken frame, in this side's words about it): the same;
 * - anything else this side raised (a deadline, a cancel, a limit, what the handler threw itself): as it is.
 */
function relayed(error: WsMsgpackError): WsMsgpackError | undefined {
  if (!KNOWN_CODES.has(error.code) || error.code === WsMsgpackErrorCode.APPLICATION_ERROR) return undefined;
  if (error.code === WsMsgpackErrorCode.UNAVAILABLE) return new WsMsgpackError(error.code, 'a service this call depends on is unavailable');
  // The peer's words, or what this side made of its broken frames: the code only.
  if (isFromPeer(error) || error.code === WsMsgpackErrorCode.PROTOCOL_ERROR) return new WsMsgpackError(error.code, `a call this one depends on failed with ${error.code}`);
  return error;
}
