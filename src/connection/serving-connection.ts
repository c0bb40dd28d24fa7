import { WsMsgpackErrorCode, unavailable } from '../protocol/errors.js';
import { FrameType, type Frame } from '../protocol/frames.js';
import { Connection, type HeldFrame } from './connection.js';
import { Queue } from './queue.js';

/** Most time held frames are dispatched for in one turn of the event loop, in ms. */
const RELEASE_SLICE_MS = 2;

const now: () => number = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now();

const schedule: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/**
 * The connection of a Nest side (the server, and the Nest client that exposes handlers): a
 * {@link Connection} that can also hold the peer's work while a connected hook runs, and announce
 * that it is going away (a drain). The browser client uses the plain Connection, so this code is
 * not in its bundle.
 */
export class ServingConnection extends Connection {
  /**
   * @internal Holds back the peer's REQUESTs and EVENTs (and the frames of those calls) until
   * `until` settles; frames of this side's own calls flow meanwhile, so work behind `until` may
   * call the peer and wait for the answer. More than 10,000 held frames, or
   * more than `maxConnectionBufferBytes` of them, close the connection (1008). A held REQUEST's
   * deadline counts from when it arrived.
   */
  holdPeerWork(until: Promise<unknown>): void {
    if (this.held) return;
    this.held = new Queue<HeldFrame>();
    this.heldBytes = 0;
    const release = (): void => this.releaseHeld();
    until.then(release, release);
  }

  /**
   * Dispatches the held frames in order, a slice of time per turn of the event loop (thousands of
   * them at once would stop it); frames that arrive meanwhile are held behind them.
   */
  private releaseHeld(): void {
    const held = this.held;
    if (!held || this.closedInfo) return;
    const start = now();
    while (held.length > 0 && !this.closedInfo) {
      if (now() - start >= RELEASE_SLICE_MS) {
        schedule(() => this.releaseHeld());
        return;
      }
      const { frame, at, bytes, cost } = held.shift()!;
      this.heldBytes -= bytes;
      this.inbound.charge(-cost); // charged again by the call it starts, for as long as that runs
      if (frame.type === FrameType.REQUEST && frame.timeout !== undefined) frame.timeout = Math.max(1, frame.timeout - (Date.now() - at));
      this.dispatchSafely(frame, cost);
    }
    if (this.held === held && held.length === 0) this.held = undefined;
  }

  /**
   * @internal This side is shutting down: tells the peer (a connection-level ERROR with code
   * GOING_AWAY, `data` as its details), answers the peer's new REQUESTs with UNAVAILABLE, and
   * starts no new calls of its own. Calls under way go on; close() ends them.
   */
  goAway(message: string, data?: unknown): void {
    if (this.goingAway || this.closedInfo) return;
    this.goingAway = unavailable(`the connection is going away: ${message}`);
    this.incoming.refuseNew(this.goingAway);
    const frame: Frame = { type: FrameType.ERROR, id: 0, code: WsMsgpackErrorCode.GOING_AWAY, message };
    if (data !== undefined) frame.data = data;
    this.writer.sendControl(frame);
    this.writer.flush();
  }

  /**
   * @internal Resolves once no call runs in either direction: neither the peer's calls here nor
   * this side's calls to the peer (closing ends them all). What a drain waits for.
   */
  whenNoCalls(): Promise<void> {
    return Promise.all([this.incoming.whenNone(), this.outgoing.whenNone()]).then(() => undefined);
  }
}
