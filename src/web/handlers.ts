import { isObservable, type Observable } from 'rxjs';
import type { Connection, IncomingEvent } from '../connection/connection.js';
import type { IncomingCall } from '../connection/incoming.js';
import { isAsyncIterable } from '../connection/iteration.js';
import { SingleValue, type OutboundSource } from '../connection/outbound-types.js';
import { NO_MESSAGE_HANDLER } from '../protocol/constants.js';
import { unimplemented } from '../protocol/errors.js';
import type { WsMsgpackCallHeaders } from '../protocol/frames.js';
import { routeKey } from '../protocol/patterns.js';

/** What a handler registered with `client.handle()` is told about the call. */
export interface WsMsgpackWebCallContext {
  /** The pattern as the server sent it. */
  readonly pattern: unknown;
  /** Headers the server sent with the call (`{}` when none). */
  readonly headers: WsMsgpackCallHeaders;
  /**
   * Aborted when the call ends early: the server cancelled it (unsubscribed), its deadline
   * passed, or the connection closed. Stop the work then (`fetch(url, { signal })`).
   */
  readonly signal: AbortSignal;
  /** Absolute deadline (ms since epoch) when the server set one. */
  readonly deadline: number | undefined;
  /** False for an event (`peer.emit()`, `server.broadcast()`): nobody waits for the result. */
  readonly isCall: boolean;
}

/**
 * A handler for the server's calls and events with one pattern. `data` is the payload, or, when
 * the server sends a request stream, an Observable of its items. Return a value, a Promise, an
 * Observable or an async iterable (a response stream, pulled with backpressure); throw (or
 * reject) to fail the call: a {@link WsMsgpackError} keeps its code, any other error reaches the
 * server as APPLICATION_ERROR with its message.
 */
export type WsMsgpackWebHandler<TData = unknown, TResult = unknown> = (
  data: TData,
  context: WsMsgpackWebCallContext,
) => TResult | Promise<TResult> | Observable<TResult> | AsyncIterable<TResult>;

/**
 * The handlers a browser client exposes to the server: one map for calls and events, attached
 * to every connection the client makes (so they keep working after a reconnect).
 */
export class WebHandlers {
  private readonly routes = new Map<string, WsMsgpackWebHandler<never, unknown>>();
  /** Events from the server that no handler took (not an error: see {@link WsMsgpackWebClient.droppedEvents}). */
  dropped = 0;

  constructor(private readonly report: (error: Error) => void) {}

  /** Registers `fn` for `pattern`, replacing an earlier one; returns a function that removes it. */
  add(pattern: unknown, fn: WsMsgpackWebHandler<never, unknown>): () => void {
    if (typeof fn !== 'function') throw new TypeError('client.handle(pattern, fn): fn must be a function');
    if (typeof pattern !== 'string' && typeof pattern !== 'number' && (pattern === null || typeof pattern !== 'object')) {
      throw new TypeError('client.handle(pattern, fn): the pattern must be a string, a number or an object, as Nest patterns are');
    }
    const key = routeKey(pattern);
    if (key.startsWith('wsmp:')) throw new TypeError(`client.handle(): patterns starting with "wsmp:" are reserved for the protocol (got ${key})`);
    this.routes.set(key, fn);
    return () => {
      if (this.routes.get(key) === fn) this.routes.delete(key);
    };
  }

  /** Serves the server's calls and events on `connection`. */
  attach(connection: Connection): void {
    connection.onRequest((call) => this.onCall(call));
    connection.onEvent((event) => this.onEvent(event));
  }

  private onCall(call: IncomingCall): OutboundSource | Promise<OutboundSource> {
    const fn = this.routes.get(routeKey(call.pattern));
    if (!fn) throw unimplemented(NO_MESSAGE_HANDLER);
    const context: WsMsgpackWebCallContext = { pattern: call.pattern, headers: call.headers, signal: call.signal, deadline: call.deadline, isCall: true };
    const result = fn(call.payload as never, context);
    return toSource(result);
  }

  private onEvent(event: IncomingEvent): void {
    const fn = this.routes.get(routeKey(event.pattern));
    if (!fn) {
      // A page handles the events it chose to (client.handle()); a broadcast of another pattern is no error.
      this.dropped++;
      return;
    }
    const name = JSON.stringify(event.pattern);
    const context: WsMsgpackWebCallContext = { pattern: event.pattern, headers: event.headers, signal: new AbortController().signal, deadline: undefined, isCall: false };
    const failed = (e: unknown): void => this.report(new Error(`the handler of event ${name} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    try {
      const result = fn(event.payload as never, context);
      if (isObservable(result)) result.subscribe({ error: failed });
      else if (isPromiseLike(result)) result.then(undefined, failed);
      else if (isAsyncIterable(result)) void drain(result).catch(failed); // an async generator runs to its end
    } catch (e) {
      failed(e);
    }
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/** What a handler returned, as the connection core sends it: streams as streams, anything else as one value. */
function toSource(result: unknown): OutboundSource | Promise<OutboundSource> {
  if (isObservable(result)) return result;
  if (isPromiseLike(result)) return Promise.resolve(result).then((v) => (isObservable(v) || isAsyncIterable(v) ? v : new SingleValue(v)));
  if (isAsyncIterable(result)) return result;
  return new SingleValue(result);
}

/** Runs an async iterable to its end, dropping its items (an event has nobody to send them to). */
async function drain(source: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of source) {
    /* dropped */
  }
}
