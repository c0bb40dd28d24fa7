import { resourceExhausted } from '../protocol/errors.js';
import { Queue } from '../connection/queue.js';
import type { ReadControl, ReadOptions, SocketListener } from '../connection/socket.js';
import { startTimer, type Timer } from '../connection/timers.js';
import { bytesOfPartialMessage, hasReceiverInternals, rawSocketOf } from '../patches/ws.js';

/**
 * Most time one connection's messages are handled in one turn of the event loop, in ms. Past it,
 * the connection's next messages wait for a later turn (and its socket is not read meanwhile), so
 * one peer sending a flood of small frames cannot keep every other connection waiting. A turn
 * with traffic on many connections gives each its slice in the order their data arrived.
 */
export const FAIR_SLICE_MS = 2;

/** `ws`'s EventEmitter interface, and its public pause/resume (ws >= 8.0). */
interface NodeWebSocket {
  on(event: 'message', cb: (data: Uint8Array | ArrayBuffer | Uint8Array[], isBinary: boolean) => void): unknown;
  on(event: 'close', cb: (code: number, reason: { toString(): string }) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  pause?(): void;
  resume?(): void;
  terminate?(): void;
}

/**
 * What the incomplete-message check reads of `ws`'s Receiver (internals, not public API): the
 * bytes of a frame not yet complete (`_bufferedBytes`), the fragments of a message not yet
 * complete (`_fragments`). Read on ws 8.23.0 and the same throughout ws 8.x; test/unit/ws-internals.spec.ts
 * fails when the installed ws no longer has them (the check is then off, never wrong).
 */
/** The TCP socket under a `ws` WebSocket: where the bytes of a message arrive. */
interface DataSource {
  on(event: 'data', cb: () => void): unknown;
}

const now: () => number = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now();

const schedule: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/**
 * A message that arrives this long after the connection's last one was handled starts a new
 * slice: the event loop has been free for others meanwhile. Messages that come back to back (a
 * burst, a flood) share one slice until it runs out; then the rest wait for a later turn.
 */
const IDLE_GAP_MS = 1;

/**
 * Reads one `ws` WebSocket on behalf of a connection: delivers its messages (fairly, on a
 * server: at most {@link FAIR_SLICE_MS} at a time), pauses and resumes the socket for whoever asks
 * (the fair slice, the connection's congested outbound), and cuts a peer whose message takes
 * longer than `incompleteMessageTimeout` to arrive.
 */
export class WsReader implements ReadControl {
  private readonly inbox = new Queue<{ data: Uint8Array | string; isBinary: boolean }>();
  /** Time spent on this connection's messages in the current slice, and when the last one ended. */
  private spentMs = 0;
  private lastEnd = -Infinity;
  private draining = false;
  /** Why reading is paused: the fair slice ran out (`fair`), the outbound is congested (`outbound`). */
  private readonly pausedFor = new Set<'fair' | 'outbound'>();
  /** The socket has closed: true once the frames still waiting have been handled too. */
  private closed = false;
  /** The socket has closed (how), while frames still wait to be handled. */
  private closing: { code: number; reason: string } | undefined;
  /** The incomplete-message timer, and the message count when it started. */
  private incomplete: Timer | undefined;
  private messages = 0;

  constructor(
    private readonly ws: NodeWebSocket,
    private readonly listener: SocketListener,
    private readonly options: ReadOptions,
  ) {
    ws.on('message', (data, isBinary) => {
      this.messages++;
      if (this.incomplete) this.lastMessageAt = now();
      // binaryType 'nodebuffer': ws delivers one Buffer per message.
      this.arrived(isBinary ? (data as Uint8Array) : String(data), isBinary);
    });
    ws.on('close', (code, reason) => {
      this.incomplete?.cancel();
      this.incomplete = undefined;
      // The peer's last frames (events before its close frame, say) that wait for a later turn
      // are still handled, slice by slice, before the connection ends: a peer that emits and
      // closes loses nothing, and one that floods and closes stalls nobody.
      this.closing = { code, reason: reason.toString() };
      if (this.inbox.length === 0) this.end();
      else this.scheduleDrain();
    });
    ws.on('error', (err) => listener.onSocketError(err));
    const limit = options.incompleteMessageTimeout;
    if (limit > 0 && limit !== Infinity && hasReceiverInternals(ws)) {
      const raw = rawSocketOf<DataSource>(ws);
      // Registered after ws's own 'data' listener: the chunk has been parsed when this runs.
      if (raw && typeof raw.on === 'function') (raw as DataSource).on('data', () => this.watchIncomplete());
    }
  }

  pause(): void {
    this.setPaused('outbound', true);
  }

  resume(): void {
    this.setPaused('outbound', false);
    this.scheduleDrain();
  }

  /**
   * One message from ws: handled now, or queued behind the ones waiting: for a later turn (the
   * slice ran out), or until the peer reads (paused for the outbound: ws still hands over the
   * messages it had already read, and they must not add to what waits for the peer).
   */
  private arrived(data: Uint8Array | string, isBinary: boolean): void {
    if (this.closed || this.closing) return;
    if (!this.options.fair) return this.listener.onMessage(data, isBinary);
    if (this.inbox.length > 0 || this.pausedFor.has('outbound') || !this.hasTime()) {
      this.inbox.push({ data, isBinary });
      this.setPaused('fair', true);
      this.scheduleDrain();
      return;
    }
    this.deliver(data, isBinary);
  }

  private scheduleDrain(): void {
    if (this.draining || this.inbox.length === 0 || (this.pausedFor.has('outbound') && !this.closing)) return;
    this.draining = true;
    schedule(this.drain);
  }

  private hasTime(): boolean {
    if (now() - this.lastEnd > IDLE_GAP_MS) this.spentMs = 0; // others had their turn meanwhile
    return this.spentMs < FAIR_SLICE_MS;
  }

  private deliver(data: Uint8Array | string, isBinary: boolean): void {
    const t0 = now();
    try {
      this.listener.onMessage(data, isBinary);
    } finally {
      this.lastEnd = now();
      this.spentMs += this.lastEnd - t0;
    }
  }

  /** A later turn: this connection's next slice of waiting messages. */
  private readonly drain = (): void => {
    this.draining = false;
    this.spentMs = 0; // a later turn: a new slice
    // Once the socket has closed, nothing waits for the peer to read: only the slice limits.
    while (this.inbox.length > 0 && !this.closed && (this.closing || !this.pausedFor.has('outbound')) && this.hasTime()) {
      const m = this.inbox.shift()!;
      this.deliver(m.data, m.isBinary);
    }
    if (this.closed) return;
    if (this.inbox.length > 0)
      this.scheduleDrain(); // resume() schedules it when paused for the outbound
    else if (this.closing) this.end();
    else this.setPaused('fair', false);
  };

  /** Everything the peer sent has been handled: the connection ends. */
  private end(): void {
    const info = this.closing!;
    this.closed = true;
    this.listener.onClose(info.code, info.reason);
  }

  private setPaused(reason: 'fair' | 'outbound', paused: boolean): void {
    const was = this.pausedFor.size > 0;
    if (paused) this.pausedFor.add(reason);
    else this.pausedFor.delete(reason);
    const is = this.pausedFor.size > 0;
    if (was === is || this.closed) return;
    if (is) {
      this.ws.pause?.();
      // While this side does not read, the peer's message cannot progress: its time stops.
      if (this.incomplete) {
        this.incomplete.cancel();
        this.incomplete = undefined;
        this.incompleteLeft = Math.max(1, this.incompleteDue - now());
      }
    } else {
      this.ws.resume?.();
      const left = this.incompleteLeft;
      this.incompleteLeft = undefined;
      if (left !== undefined) this.armIncomplete(left, false);
      else this.watchIncomplete();
    }
  }

  /**
   * Part of a message has arrived (after a chunk was parsed): starts the incomplete-message
   * timer, unless it runs. It counts from the first bytes of the message (as near as a chunk
   * tells), not from the last read: a peer trickling a byte at a time, or answering pings between
   * fragments it never finishes, is cut all the same.
   */
  private watchIncomplete(): void {
    const limit = this.options.incompleteMessageTimeout;
    if (this.closed || this.closing || this.incomplete || this.pausedFor.size > 0 || !(limit > 0 && limit < Infinity)) return;
    if (bytesOfPartialMessage(this.ws) === 0) return;
    this.armIncomplete(limit, true);
  }

  /** Times the message under way for `ms` more (`fresh`: it began now). */
  private armIncomplete(ms: number, fresh: boolean): void {
    if (fresh) this.incompleteFrom = this.messages;
    this.incompleteDue = now() + ms;
    this.incomplete = startTimer(ms, this.checkIncomplete, false);
  }

  private readonly checkIncomplete = (): void => {
    this.incomplete = undefined;
    const held = bytesOfPartialMessage(this.ws);
    if (held === 0 || this.closed || this.closing) return;
    const limit = this.options.incompleteMessageTimeout;
    if (this.messages !== this.incompleteFrom) {
      // Messages completed meanwhile: the one under way began after the last of them.
      this.armIncomplete(Math.max(1, limit - (now() - this.lastMessageAt)), true);
      return;
    }
    this.listener.onSocketError(
      resourceExhausted(`a message from the peer did not complete within incompleteMessageTimeout (${limit} ms; ${held} bytes of it had arrived): the connection was cut`),
    );
    this.ws.terminate?.();
  };

  private incompleteFrom = 0;
  private lastMessageAt = 0;
  /** When the incomplete-message timer fires; what was left of it when reading was paused. */
  private incompleteDue = 0;
  private incompleteLeft: number | undefined;
}
