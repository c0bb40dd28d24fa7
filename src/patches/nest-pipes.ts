/**
 * A patch of Nest's internals for pipes on request streams, checked against Nest 11.0 - 12.5
 * (`RpcContextCreator.prototype.getParamValue` of @nestjs/microservices and
 * `PipesContextCreator.prototype.getGlobalMetadata` of @nestjs/core; `test/unit/nest-internals.spec.ts`
 * fails when they change shape). See {@link installPipeBridge}.
 */
import { PipesContextCreator } from '@nestjs/core/pipes/pipes-context-creator.js';
import { RpcContextCreator } from '@nestjs/microservices/context/rpc-context-creator.js';
import { isObservable, Observable } from 'rxjs';
import { inboundStreamOf, type InboundStream } from '../connection/inbound-stream.js';
import { isAsyncIterable } from '../connection/iteration.js';

/** The part of a Nest pipe this bridge calls. */
interface Pipe {
  transform(value: unknown, metadata: unknown): unknown;
}

type GetParamValue = (this: unknown, value: unknown, metadata: unknown, pipes: Pipe[]) => Promise<unknown>;
type GetGlobalMetadata = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Every global pipe instance Nest has handed out: what `PipesContextCreator.getGlobalMetadata`
 * returns (`useGlobalPipes`, `APP_PIPE`, and the instances of request-scoped `APP_PIPE`s, however
 * they were provided), recorded as Nest builds each handler's pipes, before any call.
 */
const GLOBAL_PIPES = new WeakSet<object>();

/** This copy of the package's mark on `RpcContextCreator.prototype`. */
const INSTALLED = Symbol('nestjs-ws-msgpack pipe bridge');

/**
 * Makes a request stream reach its handler intact through Nest's pipes.
 *
 * Nest runs every pipe (global, controller, method, parameter) on every parameter. Global pipes
 * are written for values: `new ValidationPipe({ transform: true })` turns a request stream into
 * a new, empty `Observable` (class-transformer's copy of it), and the handler then waits for ever
 * on items that never come. So, for a parameter whose value is a request stream:
 *
 * - global pipes (`useGlobalPipes`, `APP_PIPE`) are not applied to it: it reaches the handler as
 *   it arrived (its items are not values a global pipe could validate);
 * - the other pipes (`@UsePipes` on the controller or method, `@Payload(pipe)`) are applied, and
 *   may return the stream, a stream made from it (`stream.pipe(map(...))`, an async generator
 *   over it), or anything at all once they consumed it themselves (a pipe that collects the items);
 * - a pipe that returns something else while the stream is still untouched (an object, a value,
 *   an `Observable` that can never emit) replaced it: the call fails at once, through the
 *   exception filters, with an error naming the pipe, instead of hanging.
 *
 * Patches `RpcContextCreator.prototype.getParamValue` (@nestjs/microservices) and
 * `PipesContextCreator.prototype.getGlobalMetadata` (@nestjs/core), present with these signatures
 * in Nest 11.0 through 12.5; `test/unit/nest-internals.spec.ts` fails when they change. Global
 * pipes are told from the others by instance, as Nest hands them out. Values that are not request streams take Nest's own path untouched. Idempotent;
 * returns false when Nest's internals do not look as expected (then pipes apply as Nest applies them).
 */
export function installPipeBridge(): boolean {
  const proto = (RpcContextCreator as { prototype?: unknown } | undefined)?.prototype as ({ getParamValue?: GetParamValue } & Record<symbol, unknown>) | undefined;
  const pipesProto = (PipesContextCreator as { prototype?: unknown } | undefined)?.prototype as ({ getGlobalMetadata?: GetGlobalMetadata } & Record<symbol, unknown>) | undefined;
  if (!proto || typeof proto.getParamValue !== 'function' || !pipesProto || typeof pipesProto.getGlobalMetadata !== 'function') return false;
  if (proto[INSTALLED]) return true;
  const original = proto.getParamValue;
  proto.getParamValue = function (this: unknown, value, metadata, pipes) {
    const stream = inboundStreamOf(value);
    if (!stream || !Array.isArray(pipes) || pipes.length === 0) return original.call(this, value, metadata, pipes);
    return applyToStream(stream, value, metadata, pipes);
  };
  const globals = pipesProto.getGlobalMetadata;
  pipesProto.getGlobalMetadata = function (this: unknown, ...args: unknown[]) {
    const result = globals.apply(this, args);
    if (Array.isArray(result)) for (const pipe of result) if (typeof pipe === 'object' && pipe !== null) GLOBAL_PIPES.add(pipe);
    return result;
  };
  proto[INSTALLED] = true;
  return true;
}

async function applyToStream(stream: InboundStream, value: unknown, metadata: unknown, pipes: Pipe[]): Promise<unknown> {
  let current = value;
  for (const pipe of pipes) {
    if (GLOBAL_PIPES.has(pipe)) continue;
    const next = await pipe.transform(current, metadata);
    if (next !== current && !stream.taken && !isLiveStream(next)) throw replacedError(pipe, next);
    current = next;
  }
  return current;
}

/** An Observable that may emit (not a bare `new Observable()`), or an async iterable. */
function isLiveStream(value: unknown): boolean {
  if (isObservable(value)) {
    const o = value as unknown as { source?: unknown; _subscribe?: unknown };
    return o.source != null || o._subscribe !== (Observable.prototype as unknown as { _subscribe: unknown })._subscribe;
  }
  return isAsyncIterable(value);
}

function replacedError(pipe: Pipe, got: unknown): Error {
  const name = (pipe as { constructor?: { name?: string } }).constructor?.name || 'a pipe';
  const what = isObservable(got)
    ? 'an Observable that can never emit'
    : got === null
      ? 'null'
      : typeof got === 'object'
        ? `a ${(got as object).constructor?.name ?? 'null-prototype'} object`
        : typeof got;
  return new TypeError(
    `nestjs-ws-msgpack: the pipe ${name} replaced the request stream with ${what}, so the handler could never read the items: ` +
      'the call was failed. A pipe on a request-stream parameter must return the stream, a stream made from it (stream.pipe(...)), ' +
      'or consume it itself; global pipes are not applied to request streams.',
  );
}
