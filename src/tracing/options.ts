/**
 * A `TracerProvider` of `@opentelemetry/api` (the SDK's `TracerProvider`, `NodeTracerProvider`,
 * or `trace.getTracerProvider()`). Described by its shape, so this package's types do not need
 * `@opentelemetry/api` installed.
 */
export interface WsMsgpackTracerProvider {
  getTracer(name: string, version?: string): object;
}

/**
 * The `@opentelemetry/api` module itself (`import * as api from '@opentelemetry/api'`).
 * Described by its shape, so this package's types do not need `@opentelemetry/api` installed.
 */
export interface WsMsgpackOtelApi {
  readonly trace: object;
  readonly context: object;
  readonly propagation: object;
}

/**
 * Options of {@link configureWsMsgpackTracing}. Tracing needs the optional peer dependency
 * `@opentelemetry/api`; without it none of this does anything.
 */
export interface WsMsgpackTracingOptions {
  /**
   * `false`: no spans and no trace headers, even with `@opentelemetry/api` installed and an SDK
   * registered (calls then cost nothing more than a check). Default `true`.
   */
  enabled?: boolean;
  /**
   * Where the spans come from. Default: the global tracer provider
   * (`trace.setGlobalTracerProvider()`, what the Node SDK's `start()` registers), looked up at
   * every call, so a provider registered after the clients and servers were made is used.
   * The tracer is named `nestjs-ws-msgpack` (the instrumentation scope), with this package's version.
   */
  tracerProvider?: WsMsgpackTracerProvider;
  /**
   * The `@opentelemetry/api` module to use (`import * as api from '@opentelemetry/api'`), instead
   * of the one this package resolves from its own location with `require` (and then from the
   * working directory). Only needed where that resolution cannot work: a bundle without
   * `node_modules`, or a layout where this package cannot see the application's copy.
   * (Several copies of the API 1.x share what was registered with any of them.)
   */
  api?: WsMsgpackOtelApi;
}
