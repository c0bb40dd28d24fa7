import type { Context, Span } from '@opentelemetry/api';
import { isObservable, Observable } from 'rxjs';
import type { OutboundSource } from '../connection/outbound-types.js';
import type { Tracing } from './tracing.js';

/** How a call ended, for its span. */
export type Outcome = { readonly kind: 'ok' } | { readonly kind: 'cancelled' } | { readonly kind: 'error'; readonly error: unknown };

/** A call that succeeded. */
export const OK: Outcome = { kind: 'ok' };
/** A call its caller gave up. */
export const CANCELLED: Outcome = { kind: 'cancelled' };

/** @internal A span the handler runs in (its context active), ended by the subclass's `end`. */
abstract class ActiveSpan {
  constructor(
    protected readonly tracing: Tracing,
    protected readonly span: Span,
    private readonly ctx: Context,
  ) {}

  /** Runs `fn` (the handler, with Nest's processing hook around it) with the span active. */
  run<T>(fn: () => T): T {
    return this.tracing.runIn(this.ctx, fn);
  }
}

/**
 * @internal The SERVER span of one call: the handler runs with it active ({@link run}), the
 * response it returns is watched for an error ({@link watch}), and {@link end} (from the call's
 * onEnd) ends it, once the response has ended however it ended.
 */
export class ServerCallSpan extends ActiveSpan {
  private error: { value: unknown } | undefined;
  private ended = false;

  /** The handler threw, or its promise rejected. */
  failed(error: unknown): void {
    this.error ??= { value: error };
  }

  /**
   * The handler's response, so that an Observable is subscribed with the span active (what it
   * does when subscribed nests under it) and the error it fails with is seen. Other sources
   * are sent as they are.
   */
  watch(source: OutboundSource): OutboundSource {
    if (!isObservable(source)) return source;
    return new Observable<unknown>((subscriber) =>
      this.run(() =>
        source.subscribe({
          next: (value) => subscriber.next(value),
          error: (error: unknown) => {
            this.failed(error);
            subscriber.error(error);
          },
          complete: () => subscriber.complete(),
        }),
      ),
    );
  }

  /**
   * The call ended on this side. `signal`: the call's; aborted when it did not end by the
   * handler's doing (cancelled, past its deadline, the connection closed, an overflow).
   */
  end(signal: AbortSignal): void {
    if (this.ended) return;
    this.ended = true;
    if (!this.span.isRecording()) return;
    const outcome: Outcome = this.error ? { kind: 'error', error: this.error.value } : signal.aborted ? { kind: 'error', error: signal.reason } : OK;
    this.tracing.endCall(this.span, outcome, 'server');
  }
}

/** @internal The CONSUMER span of one event: the handler runs with it active, ended once it has returned. */
export class EventSpan extends ActiveSpan {
  /** The handler returned (`error`: it threw, or its promise rejected). */
  end(error?: { value: unknown }): void {
    try {
      if (!this.span.isRecording()) return;
      if (error) this.tracing.fail(this.span, error.value, false);
      this.span.end();
    } catch {
      /* tracing never breaks an event */
    }
  }
}
