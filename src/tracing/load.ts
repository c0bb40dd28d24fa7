import { createRequire } from 'node:module';
import { join } from 'node:path';
import type * as OtelApi from '@opentelemetry/api';

/** The `@opentelemetry/api` module (types only: nothing here makes it a required dependency). */
export type OtelApiModule = typeof OtelApi;

/** `undefined`: not tried yet; `null`: tried, not installed (or unusable). */
let loaded: OtelApiModule | null | undefined;
/** This package's version; `null`: not found. */
let version: string | null | undefined;

/**
 * `@opentelemetry/api`, resolved once (the first time tracing is asked about) with `require`,
 * or `undefined` when it cannot be loaded. Never throws.
 *
 * Why `require`: a static `import` would make the optional peer a required one (the module
 * would fail to load without it), and `import()` is asynchronous (the first calls would go
 * untraced). A synchronous `require` works in both halves of the dual build: Node's
 * `module.createRequire` is there in ES modules and CommonJS alike; what differs is the path
 * it is created from. `import.meta.url` cannot be written in a file the CommonJS build also
 * compiles (a SyntaxError there), so the path is this file's own, taken from `__filename` in
 * CommonJS and from V8's call site in an ES module (see {@link anchors}); the application's
 * working directory is the last resort.
 *
 * The API keeps its registered tracer provider, context manager and propagator on
 * `globalThis` (under a versioned `Symbol.for` key), so the copy loaded here (its CommonJS
 * build) sees what an ES-module application registered through the ESM build.
 */
export function loadOtelApi(): OtelApiModule | undefined {
  if (loaded === undefined) loaded = resolveFirst('@opentelemetry/api', isUsableApi) ?? null;
  return loaded ?? undefined;
}

/** This package's version, for the tracer's instrumentation scope (a self-reference through "exports"); resolved once. */
export function packageVersion(): string | undefined {
  if (version === undefined) {
    const pkg = resolveFirst('nestjs-ws-msgpack/package.json', (p): p is { version: string } => typeof (p as { version?: unknown } | null)?.version === 'string');
    version = pkg?.version ?? null;
  }
  return version ?? undefined;
}

/** `id` required from the first anchor that has it and passes `accept`; `undefined` when none does. */
function resolveFirst<T>(id: string, accept: (value: unknown) => value is T): T | undefined {
  for (const anchor of anchors()) {
    try {
      const value: unknown = createRequire(anchor)(id);
      if (accept(value)) return value;
    } catch {
      // not installed where this anchor looks (or not loadable): try the next one
    }
  }
  return undefined;
}

/** The parts of the API the tracing code uses (every 1.x has them; anything else is not it). */
export function isUsableApi(api: unknown): api is OtelApiModule {
  const a = api as Partial<OtelApiModule> | null;
  return (
    typeof a?.trace?.getTracer === 'function' &&
    typeof a.trace.setSpan === 'function' &&
    typeof a.context?.active === 'function' &&
    typeof a.context.with === 'function' &&
    typeof a.propagation?.inject === 'function' &&
    typeof a.propagation.extract === 'function' &&
    a.ROOT_CONTEXT !== undefined
  );
}

/**
 * Where to resolve the optional peer from, best first: this file (so the package's own
 * `node_modules` lookup applies, as for any dependency: pnpm, nested installs, monorepos),
 * then the working directory (a bundled application whose file paths say nothing).
 */
function anchors(): string[] {
  const list: string[] = [];
  // CommonJS: the module wrapper's own `__filename`. In an ES module there is none (typeof is safe).
  if (typeof __filename === 'string' && __filename !== '') list.push(__filename);
  const own = thisFile();
  if (own !== undefined && !list.includes(own)) list.push(own);
  list.push(join(process.cwd(), '[nestjs-ws-msgpack]'));
  return list;
}

/**
 * The file (path or `file:` URL) this function is defined in, from V8's structured stack
 * trace: the ES-module build's stand-in for `import.meta.url`. `undefined` when the runtime
 * gives no call sites (another engine, a stack trace API replaced by a tool).
 */
function thisFile(): string | undefined {
  const { stackTraceLimit, prepareStackTrace } = Error;
  try {
    Error.stackTraceLimit = 1;
    Error.prepareStackTrace = (_error, frames) => frames;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder, thisFile);
    // Read while the structured formatter is in place (the stack is formatted on first access).
    const frames = holder.stack as NodeJS.CallSite[] | undefined;
    const file = Array.isArray(frames) ? frames[0]?.getFileName() : undefined;
    return typeof file === 'string' && file !== '' ? file : undefined;
  } catch {
    return undefined;
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
    Error.prepareStackTrace = prepareStackTrace;
  }
}
