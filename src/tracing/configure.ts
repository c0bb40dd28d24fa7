import { isUsableApi } from './load.js';
import type { WsMsgpackTracingOptions } from './options.js';

/** The instrumentation scope name of this package's spans, and their `rpc.system.name` / `messaging.system`. */
export const WS_MSGPACK_TRACER_NAME = 'nestjs-ws-msgpack';

let settings: Readonly<WsMsgpackTracingOptions> = {};
/** Bumped by every configure call: the tracing state is resolved again after it. */
let generation = 0;

/**
 * Configures this package's OpenTelemetry tracing, for every client and server of the process
 * (the settings are read at each call, so this may come before or after they are made). Each
 * call replaces the previous settings; `configureWsMsgpackTracing()` restores the defaults.
 *
 * Without it, tracing is on whenever `@opentelemetry/api` (an optional peer dependency) can be
 * loaded: trace context (`traceparent`, `tracestate`: whatever the registered propagator
 * writes) travels in the call and event headers, and spans go to the global tracer provider.
 * With no SDK registered the API is a no-op, and so is this.
 *
 * ```ts
 * configureWsMsgpackTracing({ enabled: false });            // never trace
 * configureWsMsgpackTracing({ tracerProvider: provider });  // this provider, not the global one
 * configureWsMsgpackTracing({ api });                       // import * as api from '@opentelemetry/api' (bundles)
 * ```
 *
 * The settings belong to the copy of this package that was imported: an application that loads
 * it both as an ES module and through `require` configures each copy.
 *
 * @throws TypeError for an option of the wrong type.
 */
export function configureWsMsgpackTracing(options: WsMsgpackTracingOptions = {}): void {
  const { enabled, tracerProvider, api } = (options ?? {}) as Record<string, unknown>;
  if (enabled !== undefined && typeof enabled !== 'boolean') throw new TypeError('configureWsMsgpackTracing: options.enabled must be a boolean');
  if (tracerProvider !== undefined && typeof (tracerProvider as { getTracer?: unknown } | null)?.getTracer !== 'function') {
    throw new TypeError('configureWsMsgpackTracing: options.tracerProvider must be a TracerProvider (with getTracer())');
  }
  if (api !== undefined && !isUsableApi(api)) {
    throw new TypeError("configureWsMsgpackTracing: options.api must be the @opentelemetry/api module (import * as api from '@opentelemetry/api')");
  }
  settings = Object.freeze({ ...options });
  generation++;
}

/** @internal Changes with every configure call. */
export function tracingGeneration(): number {
  return generation;
}

/** @internal The settings of the last configure call. */
export function tracingOptions(): Readonly<WsMsgpackTracingOptions> {
  return settings;
}
