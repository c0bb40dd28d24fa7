import { RpcProxy } from '@nestjs/microservices/context/rpc-proxy.js';
import { isObservable } from 'rxjs';
import { expandIterables, isAsyncIterable, iterateThrough } from '../connection/iteration.js';
import { WsMsgpackContext } from './ws-msgpack.context.js';

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
  return true;
}

function asIterationSource(result: unknown, ctx: WsMsgpackContext): unknown {
  if (isObservable(result)) return expandIterables(result);
  if (isAsyncIterable(result)) {
    return iterateThrough(result, (disposeIfUnused) => ctx.onCallEnd(() => disposeIfUnused().catch((e: unknown) => ctx.reportError(e))));
  }
  return result;
}
