import type { Context, Span, SpanKind, TextMapGetter, Tracer } from '@opentelemetry/api';
import { Observable } from 'rxjs';
import { deferredIterator } from '../connection/deferred-iterator.js';
import { describeError } from '../connection/errors.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import { WsMsgpackErrorCode } from '../protocol/errors.js';
import type { WsMsgpackCallHeaders } from '../protocol/frames.js';
import { CANCELLED, EventSpan, OK, ServerCallSpan, type Outcome } from './spans.js';
import { tracingGeneration, tracingOptions, WS_MSGPACK_TRACER_NAME } from './configure.js';
import { loadOtelApi, packageVersion, type OtelApiModule } from './load.js';
import type { WsMsgpackTracingOptions } from './options.js';
import { patternText } from '../protocol/patterns.js';

/** Attribute names (OpenTelemetry semantic conventions for RPC and messaging). */
const ATTR = {
  /** Stable RPC conventions: the RPC system. */
  RPC_SYSTEM_NAME: 'rpc.system.name',
  /** Its older name (deprecated by the conventions, still what many back ends group by): set too. */
  RPC_SYSTEM: 'rpc.system',
  /** The method: the pattern as a string (object patterns JSON-encoded, as on the wire). */
  RPC_METHOD: 'rpc.method',
  /** 'OK', or this transport's error code (WsMsgpackErrorCode). */
  RPC_STATUS_CODE: 'rpc.status_code',
  /** On failure: this transport's error code. */
  ERROR_TYPE: 'error.type',
  MESSAGING_SYSTEM: 'messaging.system',
  MESSAGING_DESTINATION: 'messaging.destination.name',
  MESSAGING_OPERATION_TYPE: 'messaging.operation.type',
  MESSAGING_OPERATION_NAME: 'messaging.operation.name',
} as const;

/** Reads call headers (values of any msgpack type) as a text map: strings, and arrays of strings. */
const headerGetter: TextMapGetter<WsMsgpackCallHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const value = carrier[key];
    if (typeof value === 'string') return value;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
    return undefined;
  },
};

/** The tracing of the settings of generation `seenGeneration`; `null`: off. */
let current: Tracing | null = null;
let seenGeneration = -1;

/**
 * @internal The tracing of this process, or `undefined` when it is off (disabled with
 * `configureWsMsgpackTracing`, or `@opentelemetry/api` not installed): callers then do
 * exactly what they do without tracing. Resolved once per configuration.
 */
export function activeTracing(): Tracing | undefined {
  const generation = tracingGeneration();
  if (generation !== seenGeneration) {
    seenGeneration = generation;
    current = resolveTracing(tracingOptions());
  }
  return current ?? undefined;
}

function resolveTracing(options: Readonly<WsMsgpackTracingOptions>): Tracing | null {
  if (options.enabled === false) return null;
  const api = (options.api as OtelApiModule | undefined) ?? loadOtelApi();
  return api ? new Tracing(api, options.tracerProvider as { getTracer(name: string, version?: string): Tracer } | undefined) : null;
}

/**
 * @internal Spans and trace context for this transport's calls and events, over a loaded
 * `@opentelemetry/api`. A span that does not record (no SDK registered, or sampled out) gets
 * no bookkeeping: the call only carries the trace context it runs in, if any, and the options
 * reach the core unchanged when there is none.
 */
export class Tracing {
  private readonly version = packageVersion();

  constructor(
    private readonly api: OtelApiModule,
    private readonly provider: { getTracer(name: string, version?: string): Tracer } | undefined,
  ) {}

  private tracer(): Tracer {
    return (this.provider ?? this.api.trace.getTracerProvider()).getTracer(WS_MSGPACK_TRACER_NAME, this.version);
  }

  /**
   * A `send()`: a CLIENT span per subscription (the call starts on subscription; its parent is
   * the span active then), the trace context in the call headers, ended when the call completes,
   * fails, or the subscriber gives up (unsubscribes).
   */
  clientCall(pattern: unknown, options: WsMsgpackCallOptions, start: (options: WsMsgpackCallOptions) => Observable<unknown>): Observable<unknown> {
    return new Observable<unknown>((subscriber) => {
      const call = this.startCall(pattern, options, this.api.SpanKind.CLIENT);
      const source = start(call.options);
      if (!call.span) return source.subscribe(subscriber);
      const span = call.span;
      let ended = false;
      const end = (outcome: Outcome): void => {
        if (ended) return;
        ended = true;
        this.endCall(span, outcome, 'client');
      };
      /** Items being handed to the subscriber right now (an unsubscribe from inside next()). */
      let delivering = 0;
      const inner = source.subscribe({
        next: (value) => {
          delivering++;
          try {
            subscriber.next(value);
          } finally {
            delivering--;
          }
        },
        error: (error: unknown) => {
          end({ kind: 'error', error });
          subscriber.error(error);
        },
        complete: () => {
          end(OK);
          subscriber.complete();
        },
      });
      return () => {
        if (ended || delivering === 0) {
          inner.unsubscribe();
          end(CANCELLED);
          return;
        }
        // Unsubscribed while taking an item (firstValueFrom, take(1)): the response's COMPLETE
        // may be the rest of this very frame (a unary answer is one COMPLETE with its value,
        // handed out as next then complete). Giving up one microtask later lets that complete
        // be seen, so such a call counts as answered, not cancelled; a stream is cancelled then.
        queueMicrotask(() => {
          inner.unsubscribe();
          end(CANCELLED);
        });
      };
    });
  }

  /**
   * An `iterate()`: the call starts on the first `next()` (that is when the CLIENT span starts,
   * its parent the span active then); ended when the iterator is done, fails, or is closed early
   * (`return()`: `break` out of `for await`).
   */
  clientIterate<T>(pattern: unknown, options: WsMsgpackCallOptions, start: (options: WsMsgpackCallOptions) => AsyncIterableIterator<T>): AsyncIterableIterator<T> {
    let span: Span | undefined;
    return deferredIterator(
      () => {
        const call = this.startCall(pattern, options, this.api.SpanKind.CLIENT);
        span = call.span;
        return start(call.options);
      },
      (end) => {
        if (span) this.endCall(span, end.kind === 'done' ? OK : end.kind === 'error' ? { kind: 'error', error: end.error } : CANCELLED, 'client');
      },
    );
  }

  /**
   * An `emit()`: a PRODUCER span (`emit <pattern>`, parent: the span active at `emit()`), the
   * trace context in the event headers, ended once the event was handed to the socket or failed.
   */
  producer(pattern: unknown, options: WsMsgpackCallOptions, send: (options: WsMsgpackCallOptions) => Promise<void>): Promise<void> {
    let span: Span | undefined;
    let traced: WsMsgpackCallOptions;
    try {
      const destination = patternText(pattern);
      const parent = this.api.context.active();
      span = this.tracer().startSpan(`emit ${destination}`, { kind: this.api.SpanKind.PRODUCER, attributes: this.messagingAttributes(destination, 'send', 'emit') }, parent);
      traced = this.inject(this.api.trace.setSpan(parent, span), options);
    } catch {
      safely(() => span?.end()); // tracing never fails an event: this one goes untraced
      return send(options);
    }
    const s = span;
    if (!s.isRecording()) return send(traced);
    return send(traced).then(
      () => safely(() => s.end()),
      (error: unknown) => {
        safely(() => {
          this.fail(s, error, false);
          s.end();
        });
        throw error;
      },
    );
  }

  /**
   * A call the peer made to a handler here: a SERVER span continuing the trace in the call's
   * headers (a call without one starts a trace; the context the socket happened to be in is
   * never the parent). `undefined` when it would neither record nor carry a trace.
   */
  serverCall(pattern: string, headers: WsMsgpackCallHeaders): ServerCallSpan | undefined {
    // Tracing never fails a call: a propagator that throws on the peer's headers, or a throwing
    // tracer, leaves the call untraced.
    return safely(() => {
      const parent = this.api.propagation.extract(this.api.ROOT_CONTEXT, headers, headerGetter);
      const span = this.tracer().startSpan(pattern, { kind: this.api.SpanKind.SERVER, attributes: this.rpcAttributes(pattern) }, parent);
      if (!span.isRecording() && !this.api.trace.isSpanContextValid(span.spanContext())) return undefined;
      return new ServerCallSpan(this, span, this.api.trace.setSpan(parent, span));
    });
  }

  /** An event the peer emitted to a handler here: a CONSUMER span (`process <pattern>`), as {@link serverCall}. */
  consumer(pattern: string, headers: WsMsgpackCallHeaders): EventSpan | undefined {
    return safely(() => {
      const parent = this.api.propagation.extract(this.api.ROOT_CONTEXT, headers, headerGetter);
      const span = this.tracer().startSpan(`process ${pattern}`, { kind: this.api.SpanKind.CONSUMER, attributes: this.messagingAttributes(pattern, 'process', 'process') }, parent);
      if (!span.isRecording() && !this.api.trace.isSpanContextValid(span.spanContext())) return undefined;
      return new EventSpan(this, span, this.api.trace.setSpan(parent, span));
    });
  }

  /** @internal Runs `fn` with `ctx` active. */
  runIn<T>(ctx: Context, fn: () => T): T {
    return this.api.context.with(ctx, fn);
  }

  /** @internal Ends a call's span with its outcome. On the server, the caller's cancel is no error of the handler's. */
  endCall(span: Span, outcome: Outcome, side: 'client' | 'server'): void {
    if (outcome.kind === 'error' && side === 'server' && describeError(outcome.error).code === WsMsgpackErrorCode.CANCELLED) outcome = CANCELLED;
    const o = outcome;
    safely(() => {
      if (o.kind === 'ok') span.setAttribute(ATTR.RPC_STATUS_CODE, 'OK');
      else if (o.kind === 'cancelled') span.setAttribute(ATTR.RPC_STATUS_CODE, WsMsgpackErrorCode.CANCELLED);
      else this.fail(span, o.error, true);
      span.end();
    });
  }

  /**
   * @internal Marks `span` failed with `error`: status ERROR with the error's message, its code
   * (a WsMsgpackErrorCode; APPLICATION_ERROR for a handler's own error) as `error.type`, and for
   * a call also as `rpc.status_code`.
   */
  fail(span: Span, error: unknown, isCall: boolean): void {
    const { code, message } = describeError(error);
    if (isCall) span.setAttribute(ATTR.RPC_STATUS_CODE, code);
    span.setAttribute(ATTR.ERROR_TYPE, code);
    span.setStatus({ code: this.api.SpanStatusCode.ERROR, message });
  }

  /** A call's span (CLIENT), and its options with the trace context added to the headers. */
  private startCall(pattern: unknown, options: WsMsgpackCallOptions, kind: SpanKind): { span: Span | undefined; options: WsMsgpackCallOptions } {
    let span: Span | undefined;
    try {
      const method = patternText(pattern);
      const parent = this.api.context.active();
      span = this.tracer().startSpan(method, { kind, attributes: this.rpcAttributes(method) }, parent);
      const traced = this.inject(this.api.trace.setSpan(parent, span), options);
      return { span: span.isRecording() ? span : undefined, options: traced };
    } catch {
      // Tracing never fails a call: a throwing tracer or propagator leaves this call untraced.
      safely(() => span?.end());
      return { span: undefined, options };
    }
  }

  /**
   * The options with what the registered propagator writes for `ctx` merged into the headers;
   * the caller's own headers win (a `traceparent` set by hand is sent as it is). The same
   * options object when the propagator writes nothing (none registered, no valid span).
   */
  private inject(ctx: Context, options: WsMsgpackCallOptions): WsMsgpackCallOptions {
    const carrier: Record<string, string> = {};
    this.api.propagation.inject(ctx, carrier);
    if (Object.keys(carrier).length === 0) return options;
    return { ...options, headers: { ...carrier, ...options.headers } };
  }

  private rpcAttributes(method: string): Record<string, string> {
    return { [ATTR.RPC_SYSTEM_NAME]: WS_MSGPACK_TRACER_NAME, [ATTR.RPC_SYSTEM]: WS_MSGPACK_TRACER_NAME, [ATTR.RPC_METHOD]: method };
  }

  private messagingAttributes(destination: string, type: 'send' | 'process', name: string): Record<string, string> {
    return {
      [ATTR.MESSAGING_SYSTEM]: WS_MSGPACK_TRACER_NAME,
      [ATTR.MESSAGING_DESTINATION]: destination,
      [ATTR.MESSAGING_OPERATION_TYPE]: type,
      [ATTR.MESSAGING_OPERATION_NAME]: name,
    };
  }
}

/** Runs `fn`; what it throws is dropped (tracing must never fail or break a call). */
function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
