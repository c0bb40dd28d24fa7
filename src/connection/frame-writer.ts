import type { FrameCodec } from '../protocol/codec.js';
import { WsMsgpackError, WsMsgpackErrorCode, internalError, resourceExhausted, unavailable } from '../protocol/errors.js';
import { FrameType, type ErrorFrame, type Frame } from '../protocol/frames.js';
import { describeError, sendBufferFull } from './errors.js';
import { startTimer, type Timer } from './timers.js';
import type { StreamSink } from './outbound-types.js';
import { READY_STATE_NAMES, type SocketSupport, type WebSocketLike, type WriteBatching } from './socket.js';

/**
 * Turns frames into socket writes: encoding, the size limit, per-tick write batching (corking),
 * zero-copy sends of large binaries, and waiting for a congested socket to drain.
 *
 * `send` fails loudly (a {@link WsMsgpackError}) when a frame cannot be encoded (INTERNAL), is
 * over `maxPayload` (RESOURCE_EXHAUSTED) or the socket is not open (UNAVAILABLE): a frame is never
 * dropped silently. `sendControl` is for frames whose loss only the peer could notice (CREDIT,
 * CANCEL, the end of a call the peer has gone from): it never throws.
 */
export class FrameWriter {
  /** Corking and zero-copy sends (Node `ws`); null: none (a standard socket); undefined: not looked up yet. */
  private batch: WriteBatching | null | undefined;
  private readonly drainWaiters = new Set<() => void>();
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** Server: told when the peer takes nothing of what waits for it (see {@link cutWhenStalled}). */
  private onStalled: ((waiting: number) => void) | undefined;
  private stallTimer: Timer | undefined;
  /** What waited when the stall timer started. */
  private stallFrom = 0;

  constructor(
    private readonly socket: WebSocketLike,
    private readonly codec: FrameCodec,
    private readonly limits: { readonly maxPayload: number; readonly maxBufferedBytes: number; readonly maxSendBufferSize: number },
    /** Where failures go that no caller can be told about. */
    private readonly report: (error: Error) => void,
    /** A Node `ws` socket's extras (corking, zero-copy sends); none for a standard socket. */
    private readonly support?: SocketSupport,
  ) {}

  /**
   * Throws RESOURCE_EXHAUSTED when the socket already holds more than `maxSendBufferSize` bytes
   * the peer has not read: a new event or call is refused (loudly) rather than queued without
   * bound. Answers and control frames are not refused (they are bounded otherwise).
   */
  assertRoom(): void {
    const max = this.limits.maxSendBufferSize;
    if (!(max > 0)) return;
    const waiting = this.socket.bufferedAmount;
    if (waiting > max) throw sendBufferFull(waiting, max);
  }

  /**
   * A server cuts a peer that lets more than `maxSendBufferSize` bytes pile up and takes none of
   * them for {@link STALL_MS}: `onStalled` is then called with what waits.
   */
  cutWhenStalled(onStalled: (waiting: number) => void): void {
    this.onStalled = onStalled;
  }

  /** What an outbound stream writes through; `report` gets what no caller can be told about. */
  streamSink(report: (error: unknown) => void): StreamSink {
    return {
      sendItem: (id, value, final) => this.sendItem(id, value, final),
      encodeItem: (id, value) => this.encodeItem(id, value),
      sendEncoded: (bytes) => this.sendEncoded(bytes),
      sendComplete: (id) => this.sendControl({ type: FrameType.COMPLETE, id, hasValue: false }),
      sendError: (id, error) => this.sendError(id, error),
      congested: () => this.congested(),
      whenDrained: (resume) => this.whenDrained(resume),
      report,
    };
  }

  /** Encodes and sends `frame`; throws a WsMsgpackError when it cannot. */
  send(frame: Frame): void {
    this.write(this.checkSize(this.encode(frame, false)));
  }

  /** Like {@link send}, but a failure is reported instead of thrown; nothing when stopped. */
  sendControl(frame: Frame): void {
    if (this.stopped || this.socket.readyState !== 1) return; // cheaper than the UNAVAILABLE error send() would make
    try {
      this.send(frame);
    } catch (e) {
      if (!(e instanceof WsMsgpackError && e.code === WsMsgpackErrorCode.UNAVAILABLE)) this.report(asError(e));
    }
  }

  /**
   * Sends ERROR for call `id` as a local error maps onto the wire; when the error's own data
   * cannot be sent (unencodable, too big), an INTERNAL error saying so goes instead.
   */
  sendError(id: number, error: unknown): void {
    if (this.stopped || this.socket.readyState !== 1) return;
    const d = describeError(error);
    const frame: ErrorFrame = { type: FrameType.ERROR, id, code: d.code, message: d.message };
    if (d.data !== undefined) frame.data = d.data;
    try {
      this.send(frame);
    } catch (e) {
      if (e instanceof WsMsgpackError && e.code === WsMsgpackErrorCode.UNAVAILABLE) return;
      this.sendControl({ type: FrameType.ERROR, id, code: WsMsgpackErrorCode.INTERNAL, message: `error payload could not be sent: ${asError(e).message}` });
    }
  }

  /** Sends a stream item: NEXT, or COMPLETE with the value when `final`. Throws like {@link send}. */
  sendItem(id: number, value: unknown, final: boolean): void {
    const frame: Frame = final ? { type: FrameType.COMPLETE, id, hasValue: true, value } : { type: FrameType.NEXT, id, value };
    if (this.batching()?.sendValue(frame, this.headOf, this.limits.maxPayload, this.tooBigError)) return this.watchStall();
    this.send(frame);
  }

  /** Encodes NEXT for call `id` into the encoder's buffer: valid until the next encode. Throws like {@link send}. */
  encodeItem(id: number, value: unknown): Uint8Array {
    return this.checkSize(this.encode({ type: FrameType.NEXT, id, value }, true));
  }

  /** Sends frame bytes encoded earlier. Throws UNAVAILABLE when the socket is not open. */
  sendEncoded(bytes: Uint8Array): void {
    this.write(bytes);
  }

  /** True while the socket holds more unsent bytes than `maxBufferedBytes`. */
  congested(): boolean {
    return this.socket.bufferedAmount > this.limits.maxBufferedBytes;
  }

  /** Calls `resume` once the socket is no longer congested; asking twice with the same function calls it once. */
  whenDrained(resume: () => void): void {
    if (this.stopped) return;
    this.drainWaiters.add(resume);
    // Neither `ws` nor browsers expose a drain event: poll `bufferedAmount` every millisecond.
    this.drainTimer ??= setTimeout(this.checkDrain, 1);
  }

  /** Writes what the current batch holds now (a CANCEL should not wait for the end of the tick). */
  flush(): void {
    this.batch?.flush();
  }

  /** The connection ended: no more writes, no more drain polling. */
  stop(): void {
    this.stopped = true;
    this.stallTimer?.cancel();
    this.stallTimer = undefined;
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.drainWaiters.clear();
  }

  private encode(frame: Frame, shared: boolean): Uint8Array {
    try {
      return shared ? this.codec.encodeShared(frame) : this.codec.encode(frame);
    } catch (e) {
      throw internalError(`value could not be encoded as msgpack: ${asError(e).message}`);
    }
  }

  private checkSize(bytes: Uint8Array): Uint8Array {
    if (bytes.byteLength > this.limits.maxPayload) throw this.tooBig(bytes.byteLength);
    return bytes;
  }

  private tooBig(size: number): WsMsgpackError {
    return resourceExhausted(`frame of ${size} bytes exceeds maxPayload (${this.limits.maxPayload} bytes)`);
  }

  private write(bytes: Uint8Array): void {
    this.assertOpen();
    const batch = this.batching();
    batch?.beforeWrite();
    this.socket.send(bytes);
    batch?.afterWrite();
    this.watchStall();
  }

  /** After a write: past `maxSendBufferSize`, start watching whether the peer takes any of it. */
  private watchStall(): void {
    if (!this.onStalled || this.stallTimer) return;
    const max = this.limits.maxSendBufferSize;
    if (!(max > 0) || this.socket.bufferedAmount <= max) return;
    this.stallFrom = Infinity; // this tick's writes may still be batched: measure at the first check
    this.stallTimer = startTimer(STALL_MS, this.checkStall, false);
  }

  private readonly checkStall = (): void => {
    this.stallTimer = undefined;
    if (this.stopped) return;
    this.flush();
    const waiting = this.socket.bufferedAmount;
    if (waiting <= this.limits.maxSendBufferSize) return;
    if (waiting >= this.stallFrom) {
      this.onStalled?.(waiting); // nothing taken in STALL_MS
      return;
    }
    this.stallFrom = waiting; // it reads, slowly: watch on
    this.stallTimer = startTimer(STALL_MS, this.checkStall, false);
  };

  /** The bytes of a stream item frame before its value: the frame with a nil value, minus the nil. */
  private readonly headOf = (frame: Frame): Uint8Array => {
    this.assertOpen();
    return this.encode({ ...frame, value: null } as Frame, false).subarray(0, -1);
  };

  private readonly tooBigError = (size: number): Error => this.tooBig(size);

  private batching(): WriteBatching | null {
    if (this.batch === undefined) this.batch = this.support?.batching(this.socket) ?? null;
    return this.batch;
  }

  private assertOpen(): void {
    const state = this.socket.readyState;
    if (state === 1 && !this.stopped) return;
    throw unavailable(`the frame was not sent: the connection is ${this.stopped ? 'closed' : `not open (WebSocket ${READY_STATE_NAMES[state] ?? state})`}`);
  }

  private readonly checkDrain = (): void => {
    this.drainTimer = undefined;
    if (this.stopped) return;
    if (this.congested()) {
      this.drainTimer = setTimeout(this.checkDrain, 1);
      return;
    }
    const waiters = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (const w of waiters) w();
  };
}

/**
 * How long a peer holding more than `maxSendBufferSize` unread bytes may take none of them before
 * a server cuts it (a burst of this side's own writes to a peer that reads is not cut).
 */
export const STALL_MS = 1000;

/** `e` as an Error (non-errors are wrapped with their string form). */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
