import { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
import { FrameType, type Frame } from '../protocol/frames.js';
import { Connection } from './connection.js';

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
    this.held = [];
    this.heldBytes = 0;
    const release = (): void => {
      const held = this.held ?? [];
      this.held = undefined;
      this.heldBytes = 0;
      const now = Date.now();
      for (let i = 0; i < held.length; i++) {
        const { frame, at, cost } = held[i]!;
        if (this.closedInfo) {
          for (let j = i; j < held.length; j++) this.inbound.charge(-held[j]!.cost);
          return;
        }
        this.inbound.charge(-cost); // charged again by the call it starts, for as long as that runs
        if (frame.type === FrameType.REQUEST && frame.timeout !== undefined) frame.timeout = Math.max(1, frame.timeout - (now - at));
        this.dispatchSafely(frame, cost);
      }
    };
    until.then(release, release);
  }

  /**
   * @internal This side is shutting down: tells the peer (a connection-level ERROR with code
   * GOING_AWAY, `data` as its details), answers the peer's new REQUESTs with UNAVAILABLE, and
   * starts no new calls of its own. Calls under way go on; close() ends them.
   */
  goAway(message: string, data?: unknown): void {
    if (this.goingAway || this.closedInfo) return;
    this.goingAway = new WsMsgpackError(WsMsgpackErrorCode.UNAVAILABLE, `the connection is going away: ${message}`);
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
