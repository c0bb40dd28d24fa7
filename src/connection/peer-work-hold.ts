import { FrameType, type Frame } from '../protocol/frames.js';
import type { BufferBudget } from './frame-queue.js';
import { Queue } from './queue.js';

/** Most frames a hold keeps before it gives up on the peer. */
const MAX_HELD_FRAMES = 10_000;
/** Most time held frames are dispatched for in one turn of the event loop, in ms. */
const RELEASE_SLICE_MS = 2;

const now: () => number = typeof performance !== 'undefined' ? () => performance.now() : () => Date.now();

const schedule: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/**
 * What a {@link Connection} lets a gate see and do: narrow on purpose, so that a gate is a
 * collaborator and not a subclass reaching into the connection's internals.
 */
export interface GateHost {
  /** Whether the frame belongs to the peer's work (its REQUEST, its call's frames, an EVENT). */
  isPeerWork(frame: Frame): boolean;
  /** Dispatches a frame as if it had just arrived. */
  dispatch(frame: Frame, cost: number): void;
  /** What the peer's frames hold here (`maxInboundBytes`): a held frame is charged to it. */
  readonly inbound: BufferBudget;
  /** Most bytes of held frames (`maxConnectionBufferBytes`). */
  readonly maxHeldBytes: number;
  /** Whether the connection has ended. */
  closed(): boolean;
  /** Closes the connection (a hold that overflows). */
  close(code: number, reason: string): void;
  /** The gate is done: frames go straight to dispatch again. */
  ungate(): void;
}

/** Stands between a connection's decoded frames and their dispatch (see {@link Connection.gate}). */
export interface FrameGate {
  /** Takes `frame` (true: held, dispatched later) or lets it through now (false). */
  offer(frame: Frame, bytes: number, cost: number): boolean;
  /** The connection ended: drops what is held, releasing its charge. */
  drop(): void;
}

/** A frame of the peer held back, with when it came, its size and cost. */
interface HeldFrame {
  readonly frame: Frame;
  /** When it arrived (a held REQUEST's deadline counts from then). */
  readonly at: number;
  /** Its size on the wire, and its charge to `inbound`. */
  readonly bytes: number;
  readonly cost: number;
}

/**
 * Holds back the peer's REQUESTs and EVENTs (and the frames of those calls) until `until`
 * settles; frames of this side's own calls flow meanwhile, so work behind `until` may call the
 * peer and wait for the answer (a connected hook). More than 10,000 held frames, or more than
 * `maxConnectionBufferBytes` of them, close the connection (1008). A held REQUEST's deadline
 * counts from when it arrived. Once `until` settles, the held frames are dispatched in order, a
 * slice of time per turn of the event loop (thousands at once would stop it), with frames that
 * arrive meanwhile held behind them.
 */
export class PeerWorkHold implements FrameGate {
  private readonly held = new Queue<HeldFrame>();
  private heldBytes = 0;

  constructor(
    private readonly host: GateHost,
    until: Promise<unknown>,
  ) {
    const release = (): void => this.release();
    until.then(release, release);
  }

  offer(frame: Frame, bytes: number, cost: number): boolean {
    if (!this.host.isPeerWork(frame)) return false;
    this.heldBytes += bytes;
    this.host.inbound.charge(cost);
    this.held.push({ frame, at: Date.now(), bytes, cost });
    if (this.held.length > MAX_HELD_FRAMES || this.heldBytes > this.host.maxHeldBytes) {
      this.host.close(1008, 'too many frames while the connected hook ran');
    }
    return true;
  }

  drop(): void {
    for (let h = this.held.shift(); h; h = this.held.shift()) this.host.inbound.charge(-h.cost);
  }

  private release(): void {
    const start = now();
    while (this.held.length > 0 && !this.host.closed()) {
      if (now() - start >= RELEASE_SLICE_MS) {
        schedule(() => this.release());
        return;
      }
      const { frame, at, bytes, cost } = this.held.shift()!;
      this.heldBytes -= bytes;
      this.host.inbound.charge(-cost); // charged again by the call it starts, for as long as that runs
      if (frame.type === FrameType.REQUEST && frame.timeout !== undefined) frame.timeout = Math.max(1, frame.timeout - (Date.now() - at));
      this.host.dispatch(frame, cost);
    }
    if (!this.host.closed()) this.host.ungate();
  }
}
