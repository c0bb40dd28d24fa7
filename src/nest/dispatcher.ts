import { Server, type MessageHandler } from '@nestjs/microservices';
import type { IncomingMessage } from 'node:http';
import { isObservable, lastValueFrom } from 'rxjs';
import type { WebSocket } from 'ws';
import type { CloseInfo, Connection, IncomingEvent } from '../connection/connection.js';
import { asError } from '../connection/frame-writer.js';
import type { IncomingCall } from '../connection/incoming.js';
import { SingleValue, type OutboundSource } from '../connection/outbound-types.js';
import { WS_MSGPACK_TRANSPORT, WS_PEER_CONNECTED, WS_PEER_DISCONNECTED, type WsPeerConnected, type WsPeerDisconnected } from './constants.js';
import type { ConnectionPeer } from '../peer/peer.js';
import { unimplemented } from '../protocol/errors.js';
import { NO_MESSAGE_HANDLER } from '../protocol/constants.js';
import type { ServerCallSpan } from '../tracing/spans.js';
import { activeTracing } from '../tracing/tracing.js';
import { installFilterBridge } from '../patches/nest-filters.js';
import { installPipeBridge } from '../patches/nest-pipes.js';
import { UnhandledEventLog, type CallLog } from './call-log.js';
import { patternAsString } from './patterns.js';
import { WsMsgpackContext, type WsMsgpackCallInfo } from './ws-msgpack.context.js';
import { PeerWorkHold } from '../connection/peer-work-hold.js';

/** Nest's message when no handler matches (the same text as the TCP transport). */
export { NO_MESSAGE_HANDLER };

/** Most distinct pattern strings whose resolution is remembered. */
const MAX_RESOLVED_PATTERNS = 1024;

/** What a connection's calls and events need to reach Nest handlers. */
export interface Attachment {
  readonly connection: Connection;
  readonly peer: ConnectionPeer;
  readonly socket: WebSocket;
  /** The upgrade request (server side). */
  readonly request: IncomingMessage | undefined;
}

/**
 * What the server and the client-side handler strategy share: dispatching a connection's calls and
 * events into Nest's handlers (`@MessagePattern`, `@EventPattern`, and the `Ws…` variants), with
 * the context, the processing hooks, the exception-filter bridge, and the connection hooks
 * ({@link WS_PEER_CONNECTED} / {@link WS_PEER_DISCONNECTED}).
 */
// `Function` as in Nest's own `Server<EventsMap extends Record<string, Function>>`.
// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export abstract class WsMsgpackDispatcher<EventsMap extends Record<string, Function>, Status extends string> extends Server<EventsMap, Status> {
  override transportId = WS_MSGPACK_TRANSPORT;
  /** Pattern strings (as sent) already resolved to a handler by Nest's normalisation. */
  private readonly resolved = new Map<string, MessageHandler>();
  /** The connected hook of each attached connection, until it is detached. */
  private readonly connectedHooks = new WeakMap<Connection, Promise<void>>();
  /** Disconnected hooks under way (close() waits for them). */
  private readonly pendingHooks = new Set<Promise<void>>();

  constructor() {
    super();
    installFilterBridge();
    installPipeBridge();
    activeTracing(); // resolves the optional @opentelemetry/api now, not during the first call
  }

  /** Reports an error no caller can be told about. */
  protected abstract reportError(error: Error): void;

  /** Per-call logging (option `logCalls`), when on. */
  protected callLog: CallLog | undefined;
  /**
   * How an event without a handler is logged: an error on a server (its clients emit what it
   * should handle); debug on a client exposing handlers (the server broadcasts to every client,
   * each handling what it chose to).
   */
  protected unhandledEventLevel: 'error' | 'debug' = 'error';
  /** Nest's "no matching event handler" line: once per pattern, at most 10 a second. */
  private readonly unhandledEvents = new UnhandledEventLog((line) => (this.unhandledEventLevel === 'error' ? this.logger.error(line) : this.logger.debug?.(line)));

  /**
   * Sends the connection's calls and events to Nest handlers. The connected hook is dispatched
   * first: the peer's calls and events wait until it has returned (frames of calls this side
   * makes meanwhile flow, so the hook may call the peer and await the answer).
   */
  protected attach(a: Attachment): void {
    a.connection.onRequest((call) => this.handleCall(call, a));
    a.connection.onEvent((event) => this.dispatchEvent(event, a));
    if (this.findHandler(WS_PEER_CONNECTED)) {
      const payload: WsPeerConnected = { peerId: a.peer.id };
      const connected = this.runHook(WS_PEER_CONNECTED, payload, a);
      this.connectedHooks.set(a.connection, connected);
      a.connection.gateWith((host) => new PeerWorkHold(host, connected)); // the peer's work waits for the hook
    }
  }

  /**
   * The connection of `a` ended (after its calls were torn down): once the connected hook has
   * returned, the disconnected hook runs, then the peer's state goes.
   */
  protected detach(a: Attachment, info: CloseInfo): void {
    const connected = this.connectedHooks.get(a.connection) ?? Promise.resolve();
    this.connectedHooks.delete(a.connection);
    const payload: WsPeerDisconnected = { peerId: a.peer.id, code: info.code, reason: info.reason };
    const done = connected.then(() => (this.findHandler(WS_PEER_DISCONNECTED) ? this.runHook(WS_PEER_DISCONNECTED, payload, a) : undefined)).then(() => a.peer.state.clear());
    this.pendingHooks.add(done);
    void done.then(() => this.pendingHooks.delete(done));
  }

  /** Resolves once every disconnected hook under way has returned, or after `ms`. */
  protected hooksSettled(ms: number): Promise<void> {
    if (this.pendingHooks.size === 0) return Promise.resolve();
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([Promise.all([...this.pendingHooks]).then(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]).finally(() =>
      clearTimeout(timer),
    );
  }

  /**
   * Runs a connection hook's handlers (all of them, when several controllers have one) between
   * the processing hooks, and resolves once they have returned: a returned Promise settled, a
   * returned Observable (an interceptor's, several handlers') completed. A failure is reported.
   */
  private runHook(pattern: string, payload: WsPeerConnected | WsPeerDisconnected, a: Attachment): Promise<void> {
    const handler = this.findHandler(pattern);
    if (!handler) return Promise.resolve();
    const ctx = new WsMsgpackContext([pattern, {}, this.eventCall, a.socket, a.request, a.peer]);
    const fail = (e: unknown): void => this.reportError(new Error(`the ${pattern} hook failed: ${describe(e)}`, { cause: e }));
    return new Promise<void>((resolve) => {
      const run = async (): Promise<void> => {
        try {
          const result: unknown = await handler(payload, ctx);
          if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
        } catch (e) {
          fail(e);
        } finally {
          try {
            this.onProcessingEndHook?.(this.transportId, ctx);
          } finally {
            resolve();
          }
        }
      };
      try {
        void this.onProcessingStartHook(this.transportId, ctx, run);
      } catch (e) {
        fail(e);
        resolve();
      }
    });
  }

  private handleCall(call: IncomingCall, a: Attachment): Promise<OutboundSource> | OutboundSource {
    const pattern = patternAsString(call.pattern);
    // The connection hooks' patterns are this side's own: a peer cannot call them.
    const handler = pattern === undefined || isReserved(pattern) ? null : this.findHandler(pattern);
    if (!handler) {
      const error = unimplemented(NO_MESSAGE_HANDLER);
      this.callLog?.refused(call, pattern, a.peer.id, error);
      throw error;
    }
    const logged = this.callLog?.watch(call, pattern!, a.peer.id);
    const ctx = new WsMsgpackContext([pattern!, call.headers, call, a.socket, a.request, a.peer]);
    const endHook = this.onProcessingEndHook;
    if (endHook) call.onEnd(() => endHook(this.transportId, ctx));
    // With tracing: a SERVER span continuing the caller's trace, ended once the response has.
    const span = activeTracing()?.serverCall(pattern!, call.headers);
    if (span) call.onEnd(() => span.end(call.signal));
    const result = this.runHandler(handler, call.payload, ctx, span);
    return logged ? logged(result) : result;
  }

  /**
   * `getHandlerByPattern` as Nest's TCP transport uses it, with a fast path: a registered route
   * that equals the pattern string needs no `JSON.parse` (which throws, expensively, for every
   * plain string pattern).
   */
  private findHandler(pattern: string): MessageHandler | null {
    const direct = this.messageHandlers.get(pattern) ?? this.resolved.get(pattern);
    if (direct) return direct;
    // Nest's lookup JSON-parses the pattern first. A pattern that starts with a letter is not JSON
    // (or is true/false/null, which no route is): its route is itself, already looked up above.
    // Skipping the parse (and the exception it throws) keeps a flood of unknown patterns cheap.
    if (startsWithLetter(pattern)) return null;
    // Object patterns arrive JSON-encoded in whatever key order the caller used; Nest parses and
    // normalises them on every lookup. Remember hits (bounded: callers choose the strings).
    const handler = this.getHandlerByPattern(pattern);
    if (handler && this.resolved.size < MAX_RESOLVED_PATTERNS) this.resolved.set(pattern, handler);
    return handler;
  }

  /**
   * Runs a Nest handler after the processing start hook (Nest's instrumentation point; the end
   * hook runs when the connection ends the call, see handleCall). A plain value or an async
   * iterable needs no Observable. With a tracing `span`, the hook and the handler run with it
   * active, and the response is watched for its error.
   */
  private runHandler(handler: MessageHandler, data: unknown, ctx: WsMsgpackContext, span?: ServerCallSpan): Promise<OutboundSource> {
    return new Promise<OutboundSource>((resolve, reject) => {
      const fail = (e: unknown): void => {
        span?.failed(e);
        reject(e);
      };
      const run = async (): Promise<void> => {
        try {
          const result: unknown = await handler(data, ctx);
          const source = isObservable(result) ? result : new SingleValue(result);
          resolve(span ? span.watch(source) : source);
        } catch (e) {
          fail(e);
        }
      };
      const start = (): unknown => this.onProcessingStartHook(this.transportId, ctx, run);
      try {
        void (span ? span.run(start) : start());
      } catch (e) {
        fail(e);
      }
    });
  }

  /** Runs the handlers of an event; the promise settles once they are done (the event's memory is counted until then). */
  private dispatchEvent(event: IncomingEvent, a: Attachment): Promise<unknown> | undefined {
    const pattern = patternAsString(event.pattern);
    if (pattern === undefined || !this.findHandler(pattern)) {
      this.unhandledEvents.offer(pattern, event.pattern);
      return undefined;
    }
    if (isReserved(pattern)) {
      this.reportError(new Error(`the peer ${a.peer.id} emitted an event with the reserved pattern ${pattern}; it was dropped`));
      return undefined;
    }
    const ctx = new WsMsgpackContext([pattern, event.headers, this.eventCall, a.socket, a.request, a.peer]);
    const handle = (): Promise<unknown> => this.handleEvent(pattern, { pattern: event.pattern as string, data: event.payload }, ctx);
    // With tracing (and a handler to run): a CONSUMER span continuing the emitter's trace, until the handler has returned.
    const tracing = activeTracing();
    const span = tracing && this.findHandler(pattern) ? tracing.consumer(pattern, event.headers) : undefined;
    const handled = span
      ? span.run(handle).then(
          () => span.end(),
          (err: unknown) => {
            span.end({ value: err });
            throw err;
          },
        )
      : handle();
    return handled.catch((err: unknown) => this.logger.error(err));
  }

  /** The call info of every event: no call id, never aborted, no end. */
  private readonly eventCall: WsMsgpackCallInfo = {
    id: 0,
    signal: new AbortController().signal,
    onEnd: () => {},
    report: (error) => this.reportError(asError(error)),
  };
}

/** Patterns of this transport's own events (the connection hooks): `wsmp:` and a name. */
const RESERVED_PREFIX = 'wsmp:';

function isReserved(pattern: string): boolean {
  return pattern.startsWith(RESERVED_PREFIX);
}

/** True when `s` starts with an ASCII letter or `_` (never the start of a JSON value Nest would route differently). */
function startsWithLetter(s: string): boolean {
  const c = s.charCodeAt(0) | 0x20; // lower case for letters
  return (c >= 0x61 && c <= 0x7a) || s.charCodeAt(0) === 0x5f;
}

/** An error for a message: its message, or the value as JSON (a Nest error payload). */
function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
