import type { FrameCodecOptions } from '../protocol/codec.js';
import { OVERFLOW_STRATEGIES, type WsMsgpackCallHeaders, type OverflowStrategy } from '../protocol/frames.js';

export type { OverflowStrategy } from '../protocol/frames.js';

/** Tunables shared by server and client connections (docs/PROTOCOL.md, "Limits"). */
export interface ConnectionLimits extends FrameCodecOptions {
  /**
   * Credit window this side grants the peer for each inbound stream (response items of its own
   * calls, request-stream items of the peer's calls). 0 = unlimited. Default 256.
   */
  window?: number;
  /**
   * What an outbound push stream (an Observable emitting faster than the receiver's credit or the
   * socket allow) does with items it cannot send yet. A stream's only value (a unary answer) is
   * never dropped: it fails with RESOURCE_EXHAUSTED instead. Default `'error'`. See {@link OverflowStrategy}.
   */
  overflow?: OverflowStrategy;
  /**
   * Most bytes one outbound stream may hold while it waits for credit or for the socket: encoded
   * frames plus 8 bytes of bookkeeping per item. Inbound, the credit this side grants is held back
   * so that a stream's items waiting for their consumer, plus those its credit may still bring
   * (at the average item size), stay about within it. Default 64 MiB.
   */
  maxStreamBufferBytes?: number;
  /** Most bytes all outbound push streams of one connection may hold together. Default 128 MiB. */
  maxConnectionBufferBytes?: number;
  /**
   * Socket `bufferedAmount` above which this side stops adding to it: stream items and answers
   * wait in their stream's buffer (counted in `maxStreamBufferBytes` / `maxConnectionBufferBytes`),
   * and a server stops reading the peer's frames until the peer has read enough of its own.
   * Default 4 MiB.
   */
  maxBufferedBytes?: number;
  /**
   * Most bytes that may wait in the socket for a peer that does not read them. While more wait, a
   * new event or call is refused at once with RESOURCE_EXHAUSTED (answers and control frames still
   * go). A server also cuts a peer that has more than this waiting and takes none of it for a
   * second (no closing handshake: it is not reading); its calls fail with UNAVAILABLE and the
   * reason is reported. Nest TCP's option of the same name (which cuts at once). Default 64 MiB;
   * 0 or `Infinity`: no limit.
   */
  maxSendBufferSize?: number;
  /**
   * Most ms one message from the peer may take to arrive, from its first bytes to its last (a
   * fragmented message, or one large frame trickling in). Past it the connection is cut (its
   * calls fail with UNAVAILABLE) and the reason is reported, so a peer cannot hold a
   * half-received message (up to `maxPayload`) for ever while answering pings. Nest TCP's option
   * of the same name restarts its timer at every read; this one counts from the message's start.
   * Default 30,000 ms; 0 or `Infinity`: no limit.
   */
  incompleteMessageTimeout?: number;
  /**
   * Most memory the peer's frames may hold on this side of one connection at once, in bytes, as
   * estimated from each frame before it is decoded (docs/PROTOCOL.md, "Limits": what a value
   * costs once decoded; a one-byte empty map is about 64 bytes). It bounds what decoding one
   * frame may allocate, and what the frames this side keeps hold: the request of each call whose
   * handler still runs, events while their async handlers run, request-stream and response items
   * waiting for their consumer, frames held while a connected hook runs. A frame that does not fit fails its call with RESOURCE_EXHAUSTED (an
   * event is dropped and reported) before anything of it is allocated; the connection and the
   * other calls go on. Default 256 MiB; 0 or `Infinity`: no limit.
   */
  maxInboundBytes?: number;
  /** Most calls the peer may have running on this side at once; more are refused. Default 1,000. */
  maxConcurrentCalls?: number;
  /** Largest frame this side sends or accepts, in bytes. Default 16 MiB. */
  maxPayload?: number;
  /**
   * Interval of keep-alive pings: WebSocket pings from Node `ws` sockets, keep-alive calls from
   * sockets that cannot ping (a browser's). A peer that does not answer is dropped after
   * `keepAliveTimeout`, not at the next ping. Default 30,000 ms; 0 or `Infinity` disables it.
   */
  keepAliveInterval?: number;
  /**
   * How long a ping may wait for its pong before the peer is presumed dead and the connection is
   * cut (its calls fail with UNAVAILABLE). A dead peer is found within interval + timeout.
   * Default 10,000 ms; 0 means `keepAliveInterval`; `Infinity` never cuts (pings still go out
   * every interval, which keeps proxies and NATs from dropping an idle connection).
   */
  keepAliveTimeout?: number;
}

/** Default of {@link ConnectionLimits.maxPayload}, also used for `ws`'s own limit. */
export const DEFAULT_MAX_PAYLOAD = 16 * 1024 * 1024;

/** Default of {@link ConnectionLimits.keepAliveInterval}. */
export const DEFAULT_KEEPALIVE_INTERVAL = 30_000;

/** Default of {@link ConnectionLimits.keepAliveTimeout}. */
export const DEFAULT_KEEPALIVE_TIMEOUT = 10_000;

/** Every limit with its default. */
export const DEFAULT_LIMITS = Object.freeze({
  window: 256,
  overflow: 'error' as OverflowStrategy,
  maxStreamBufferBytes: 64 * 1024 * 1024,
  maxConnectionBufferBytes: 128 * 1024 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
  maxSendBufferSize: 64 * 1024 * 1024,
  incompleteMessageTimeout: 30_000,
  maxConcurrentCalls: 1000,
  maxInboundBytes: 256 * 1024 * 1024,
  maxPayload: DEFAULT_MAX_PAYLOAD,
  keepAliveInterval: DEFAULT_KEEPALIVE_INTERVAL,
  keepAliveTimeout: DEFAULT_KEEPALIVE_TIMEOUT,
});

/** The limits in force: every option set. */
export type ResolvedLimits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: (typeof DEFAULT_LIMITS)[K] };

const NO_SERIALIZERS =
  'is not supported: this transport encodes frames and payloads with MessagePack in one pass, so there is no separate payload (de)serialization step to replace. ' +
  'For your own classes on the wire (Decimal, ObjectId, money), use the `extensions` option (docs/guides/server.md, "Custom types on the wire")';

/**
 * Options of Nest's built-in transports that a user moving from them may pass, and that cannot
 * work here: refused with why, never silently ignored.
 */
const NEST_OPTIONS_REFUSED: Record<string, string> = {
  serializer: `the \`serializer\` option of Nest's transports ${NO_SERIALIZERS}`,
  deserializer: `the \`deserializer\` option of Nest's transports ${NO_SERIALIZERS}`,
};

/** The one message format of a refused option: `nestjs-ws-msgpack: option <name> must be <what>, got <value>`. */
export function optionError(name: string, what: string, value: unknown): TypeError {
  let shown: string;
  try {
    shown = typeof value === 'string' || (typeof value === 'object' && value !== null) ? (JSON.stringify(value) ?? String(value)) : String(value);
  } catch {
    shown = String(value); // a bigint inside, a cycle: the message still names the option
  }
  return new TypeError(`nestjs-ws-msgpack: option ${name} must be ${what}, got ${shown}`);
}

/**
 * The options with defaults filled in. Throws a `TypeError` naming the option for a value that
 * cannot work (a negative window, an unknown overflow strategy, Nest's `serializer`).
 */
export function resolveLimits(options: ConnectionLimits): ResolvedLimits {
  for (const key of Object.keys(NEST_OPTIONS_REFUSED)) {
    if ((options as Record<string, unknown>)[key] !== undefined) throw new TypeError(`nestjs-ws-msgpack: ${NEST_OPTIONS_REFUSED[key]}`);
  }
  const limits: ResolvedLimits = { ...DEFAULT_LIMITS };
  for (const key of ['keepAliveInterval', 'keepAliveTimeout', 'incompleteMessageTimeout'] as const) {
    const v = options[key];
    if (v !== undefined) (limits as Record<typeof key, number>)[key] = checkDuration(key, v);
  }
  const numeric = [
    'window',
    'maxStreamBufferBytes',
    'maxConnectionBufferBytes',
    'maxBufferedBytes',
    'maxConcurrentCalls',
    'maxInboundBytes',
    'maxSendBufferSize',
    'maxPayload',
  ] as const;
  for (const key of numeric) {
    const v = options[key];
    if (v === undefined) continue;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw optionError(key, 'a number >= 0', v);
    (limits as Record<typeof key, number>)[key] = v;
  }
  for (const key of ['window', 'maxConcurrentCalls'] as const) {
    const v = limits[key];
    if (!Number.isSafeInteger(v)) throw optionError(key, 'a whole number up to 2^53-1', v);
  }
  for (const key of ['maxStrLength', 'maxBinLength', 'maxArrayLength', 'maxMapLength', 'maxExtLength', 'maxDepth'] as const) {
    const v = options[key];
    if (v === undefined) continue;
    const min = key === 'maxDepth' ? 2 : 0; // a frame is an array: depth 1 alone rejects every frame
    if (typeof v !== 'number' || !(v === Infinity || (Number.isInteger(v) && v >= min))) {
      throw optionError(key, `a whole number >= ${min} (or Infinity)`, v);
    }
  }
  if (options.overflow !== undefined) limits.overflow = checkOverflow(options.overflow, 'option overflow');
  return limits;
}

/**
 * Returns `value` when it is a time option's value: a number of ms >= 0, or `Infinity` (no limit,
 * or off: each option says which). Throws a `TypeError` naming `option` otherwise (negative, NaN,
 * a string), so a typo fails at construction instead of acting as a 1 ms timer.
 */
export function checkDuration(option: string, value: unknown): number {
  if (typeof value === 'number' && value >= 0) return value; // NaN fails the comparison
  throw optionError(option, 'a number of ms >= 0 or Infinity', value);
}

/** Returns `value` when it is an {@link OverflowStrategy}; throws a `TypeError` otherwise. */
export function checkOverflow(value: unknown, what: string): OverflowStrategy {
  if (!OVERFLOW_STRATEGIES.includes(value as OverflowStrategy)) {
    throw new TypeError(`nestjs-ws-msgpack: ${what} must be one of ${OVERFLOW_STRATEGIES.map((s) => `'${s}'`).join(', ')}, got ${String(value)}`);
  }
  return value as OverflowStrategy;
}

/**
 * The `ws` options both the server (`WebSocketServer`) and the client (`WebSocket`) use, so both
 * ends agree: the frame limit, and no compression (msgpack frames are small or already binary;
 * per-message deflate costs CPU and memory per connection).
 */
export function wsSocketOptions(limits: Pick<ConnectionLimits, 'maxPayload'>): { maxPayload: number; perMessageDeflate: false } {
  return { maxPayload: limits.maxPayload ?? DEFAULT_MAX_PAYLOAD, perMessageDeflate: false };
}

/** Options of one call: what `WsMsgpackRecordBuilder` sets, and what `Connection.call` takes. */
export interface WsMsgpackCallOptions {
  /** Headers for the handler (`ctx.getHeaders()` / `@WsHeaders()`). */
  headers?: WsMsgpackCallHeaders;
  /** Deadline in milliseconds; the call fails with DEADLINE_EXCEEDED and the handler is aborted after it. */
  timeout?: number;
  /** Credit window for this call's response stream (0 = unlimited). */
  window?: number;
  /**
   * Overflow strategy for this call's streams: the request stream this side sends, and (sent as
   * meta `o`) the response stream the peer sends. Default: each side's own `overflow` option.
   */
  overflow?: OverflowStrategy;
  /**
   * While the client is not connected: `true` waits for a connection through reconnect attempts,
   * up to the call's deadline (or the client's `readyTimeout`); `false` fails fast (gRPC's
   * semantics): it waits only for an attempt under way and fails with its UNAVAILABLE, or at once
   * while the last attempt failed. Default: the client's `waitForReady` option (default false).
   */
  waitForReady?: boolean;
  /** @internal The deadline as the caller set it, when `timeout` is what is left of it (for messages). */
  declaredTimeout?: number;
  /** @internal A keep-alive call: also sent while the connection is going away (PROTOCOL.md 16.1). */
  keepAlive?: boolean;
}
