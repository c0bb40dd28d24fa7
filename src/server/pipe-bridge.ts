import { RpcContextCreator } from '@nestjs/microservices/context/rpc-context-creator.js';
import { isObservable, Observable } from 'rxjs';
import { inboundStreamOf, type InboundStream } from '../connection/inbound-stream.js';
import { isAsyncIterable } from '../connection/iteration.js';

/** The part of a Nest pipe this bridge calls. */
interface Pipe {
  transform(value: unknown, metadata: unknown): unknown;
}

type GetParamValue = (this: RpcContextCreatorLike, value: unknown, metadata: unknown, pipes: Pipe[]) => Promise<unknown>;

/** What the bridge reads of Nest's `RpcContextCreator` (checked against @nestjs/microservices 11.0 - 12.1). */
interface RpcContextCreatorLike {
  pipesContextCreator?: { config?: { getGlobalPipes?(): unknown[]; getGlobalRequestPipes?(): { metatype?: unknown }[] } };
}

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
 * Patches `RpcContextCreator.prototype.getParamValue` (present with this signature in
 * @nestjs/microservices 11.0 through 12.1; `test/unit/nest-internals.spec.ts` fails when it
 * changes). Values that are not request streams take Nest's own path untouched. Idempotent;
 * returns false when Nest's internals do not look as expected (then pipes apply as Nest applies them).
 */
export function installPipeBridge(): boolean {
  const proto = (RpcContextCreator as { prototype?: unknown } | undefined)?.prototype as ({ getParamValue?: GetParamValue } & Record<symbol, unknown>) | undefined;
  if (!proto || typeof proto.getParamValue !== 'function') return false;
  if (proto[INSTALLED]) return true;
  const original = proto.getParamValue;
  proto.getParamValue = function (this: RpcContextCreatorLike, value, metadata, pipes) {
    const stream = inboundStreamOf(value);
    if (!stream || !Array.isArray(pipes) || pipes.length === 0) return original.call(this, value, metadata, pipes);
    return applyToStream(this, stream, value, metadata, pipes);
  };
  proto[INSTALLED] = true;
  return true;
}

async function applyToStream(creator: RpcContextCreatorLike, stream: InboundStream, value: unknown, metadata: unknown, pipes: Pipe[]): Promise<unknown> {
  const isGlobal = globalPipes(creator);
  let current = value;
  for (const pipe of pipes) {
    if (isGlobal(pipe)) continue;
    const next = await pipe.transform(current, metadata);
    if (next !== current && !stream.taken && !isLiveStream(next)) throw replacedError(pipe, next);
    current = next;
  }
  return current;
}

/** Tells the app's global pipes (instances, and the classes of request-scoped ones) from the others. */
function globalPipes(creator: RpcContextCreatorLike): (pipe: Pipe) => boolean {
  const config = creator.pipesContextCreator?.config;
  const instances = new Set(config?.getGlobalPipes?.() ?? []);
  const scoped = new Set((config?.getGlobalRequestPipes?.() ?? []).map((w) => w.metatype));
  return (pipe) => instances.has(pipe) || scoped.has((pipe as { constructor?: unknown }).constructor);
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
  const what = isObservable(got) ? 'an Observable that can never emit' : got === null ? 'null' : typeof got === 'object' ? `a ${(got as object).constructor?.name ?? 'null-prototype'} object` : typeof got;
  return new TypeError(
    `nestjs-ws-msgpack: the pipe ${name} replaced the request stream with ${what}, so the handler could never read the items: ` +
      'the call was failed. A pipe on a request-stream parameter must return the stream, a stream made from it (stream.pipe(...)), ' +
      'or consume it itself; global pipes are not applied to request streams.',
  );
}
