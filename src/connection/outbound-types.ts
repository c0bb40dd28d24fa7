import type { Observable } from 'rxjs';
import type { OverflowStrategy } from '../protocol/frames.js';
import type { BufferBudget } from './frame-queue.js';

/** What an {@link OutboundStream} needs from its connection's frame writer. */
export interface StreamSink {
  /** Sends NEXT (or COMPLETE with a final value) now. Throws a WsMsgpackError when it cannot. */
  sendItem(id: number, value: unknown, final: boolean): void;
  /** Encodes NEXT for later: a view valid until the next encode (copy it). Throws like sendItem. */
  encodeItem(id: number, value: unknown): Uint8Array;
  /** Sends frame bytes encoded earlier. Throws a WsMsgpackError when it cannot. */
  sendEncoded(frame: Uint8Array): void;
  /** Sends COMPLETE without a value. */
  sendComplete(id: number): void;
  /** Sends ERROR for this stream. */
  sendError(id: number, error: unknown): void;
  /** True while the socket holds more unsent bytes than the connection allows. */
  congested(): boolean;
  /** Calls `resume` once the socket is no longer congested (once, however often it is asked). */
  whenDrained(resume: () => void): void;
  /** Reports an error that concerns nobody on the wire (a failed clean-up). */
  report(error: unknown): void;
}

/** One value as a whole response (no Observable needed): sent as COMPLETE with the value. */
export class SingleValue {
  constructor(readonly value: unknown) {}
}

/** A source of outbound items: push (Observable), pull (async or sync iterable), or one value. */
export type OutboundSource = Observable<unknown> | AsyncIterable<unknown> | Iterable<unknown> | SingleValue;

/** Settings of one {@link OutboundStream}. */
export interface OutboundStreamOptions {
  /** Initial credit (Infinity: unlimited). */
  credit: number;
  /** What to do with push items that do not fit the buffer. */
  overflow: OverflowStrategy;
  /** Most bytes this stream may buffer. */
  maxBytes: number;
  /** The connection's shared buffer bound. */
  budget: BufferBudget;
  /** Called once when the stream ended, however it ended. */
  onEnd: () => void;
  /** Maps what a pulled iterator throws before it is sent (the server applies Nest's default filter). */
  mapPullError?: (error: unknown) => unknown;
  /**
   * Called instead of sending ERROR when the stream fails on this side (overflow, an item that
   * cannot be encoded or is too big): a request stream fails its whole call instead.
   */
  onFail?: (error: unknown) => void;
  /** Told first when the stream fails on this side, before anything is sent or stopped (a response aborts its call with it). */
  beforeFail?: (error: unknown) => void;
}
