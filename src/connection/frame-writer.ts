import type { FrameCodec } from '../protocol/codec.js';
import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { FrameType, type ErrorFrame, type Frame } from '../protocol/frames.js';
import { describeError } from './errors.js';
import { READY_STATE_NAMES, type CorkableSocket, type SocketSupport, type WebSocketLike } from './socket.js';

/** Most frames written together in one corked batch. */
const MAX_BATCH_FRAMES = 32;

/** Binary values at least this big are sent without a copy (Node `ws` only). */
const ZERO_COPY_BYTES = 64 * 1024;

/** Runs `fn` once the current tick's synchronous work and promise jobs are done. */
const scheduleFlush: (fn: () => void) => void =
  typeof process !== 'undefined' && typeof process.nextTick === 'function' ? (fn) => process.nextTick(fn) : (fn) => queueMicrotask(fn);

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
  /** The TCP socket under a Node `ws` WebSocket; null: none (a browser socket); undefined: not looked up yet. */
  private tcp: CorkableSocket | null | undefined;
  private corked = false;
  private batched = 0;
  private readonly drainWaiters = new Set<() => void>();
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly socket: WebSocketLike,
    private readonly codec: FrameCodec,
    private readonly limits: { readonly maxPayload: number; readonly maxBufferedBytes: number },
    /** Where failures go that no caller can be told about. */
    private readonly report: (error: Error) => void,
    /** A Node `ws` socket's extras (corking, fragmented sends); none for a standard socket. */
    private readonly support?: SocketSupport,
  ) {}

  /** Encodes and sends `frame`; throws a WsMsgpackError when it cannot. */
  send(frame: Frame): void {
    this.write(this.checkSize(this.encode(frame, false)));
  }

  /** Like {@link send}, but a failure is reported instead of thrown; nothing when stopped. */
  sendControl(frame: Frame): void {
    if (this.stopped) return;
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
    if (this.stopped) return;
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
    const type = final ? FrameType.COMPLETE : FrameType.NEXT;
    if (this.sendBinaryValue(type, id, value)) return;
    this.send(final ? { type: FrameType.COMPLETE, id, hasValue: true, value } : { type: FrameType.NEXT, id, value });
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
    this.uncork();
  }

  /** The connection ended: no more writes, no more drain polling. */
  stop(): void {
    this.stopped = true;
    if (this.drainTimer !== undefined) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.drainWaiters.clear();
  }

  private encode(frame: Frame, shared: boolean): Uint8Array {
    try {
      return shared ? this.codec.encodeShared(frame) : this.codec.encode(frame);
    } catch (e) {
      throw new WsMsgpackError(WsMsgpackErrorCode.INTERNAL, `value could not be encoded as msgpack: ${asError(e).message}`);
    }
  }

  private checkSize(bytes: Uint8Array): Uint8Array {
    if (bytes.byteLength > this.limits.maxPayload) throw this.tooBig(bytes.byteLength);
    return bytes;
  }

  private tooBig(size: number): WsMsgpackError {
    return new WsMsgpackError(WsMsgpackErrorCode.RESOURCE_EXHAUSTED, `frame of ${size} bytes exceeds maxPayload (${this.limits.maxPayload} bytes)`);
  }

  private write(bytes: Uint8Array): void {
    this.assertOpen();
    this.corkForTick();
    this.socket.send(bytes);
    // Cap the batch: a whole tick's frames in one write turns a window of calls into lockstep
    // batches (each side idle while the other works); smaller writes let both cores overlap.
    if (this.corked && ++this.batched >= MAX_BATCH_FRAMES) this.uncork();
  }

  private assertOpen(): void {
    const state = this.socket.readyState;
    if (state === 1 && !this.stopped) return;
    throw new WsMsgpackError(
      WsMsgpackErrorCode.UNAVAILABLE,
      `the frame was not sent: the connection is ${this.stopped ? 'closed' : `not open (WebSocket ${READY_STATE_NAMES[state] ?? state})`}`,
    );
  }

  /**
   * Node only: a large binary value (a file, an echoed Buffer) goes out without being copied into
   * the encoder: the frame head as one WebSocket fragment, the bytes themselves as the final
   * fragment. On the wire it is one ordinary message. Returns false when this path does not apply.
   */
  private sendBinaryValue(type: typeof FrameType.NEXT | typeof FrameType.COMPLETE, id: number, value: unknown): boolean {
    if (!(value instanceof Uint8Array) || value.byteLength < ZERO_COPY_BYTES) return false;
    if (this.tcp === undefined) this.tcp = this.support?.tcpSocket(this.socket) ?? null;
    if (this.tcp === null) return false;
    this.assertOpen();
    const head = this.codec.valueFrameHead(type, id, value.byteLength);
    if (head.byteLength + value.byteLength > this.limits.maxPayload) throw this.tooBig(head.byteLength + value.byteLength);
    this.uncork(); // what waited goes first; the value's bytes are too big to batch
    this.support!.sendFragmented(this.socket, head, value);
    return true;
  }

  /**
   * Node only: hold the TCP socket's writes until the end of the tick, so every frame sent in it
   * leaves in one `writev` instead of one system call each. No protocol change: each frame is
   * still its own message.
   */
  private corkForTick(): void {
    if (this.corked) return;
    if (this.tcp === undefined) this.tcp = this.support?.tcpSocket(this.socket) ?? null;
    if (this.tcp === null) return;
    this.corked = true;
    this.tcp.cork();
    scheduleFlush(this.uncork);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.batched = 0;
    this.tcp?.uncork();
  };

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

/** `e` as an Error (non-errors are wrapped with their string form). */
export function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
