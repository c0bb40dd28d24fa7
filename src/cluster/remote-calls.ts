/**
 * Remote calls: replica A calls a handler exposed by a client connected to replica B, through a
 * message bus that carries plain messages between replicas ({@link ClusterLink}). Transport
 * agnostic: the cluster adapter (Redis) provides the link and feeds what arrives to
 * {@link RemoteCalls.receive}. The messages are listed in `remote-messages.ts` ({@link RemoteMessage}).
 *
 * - Caller side ({@link RemotePeer}, made by {@link RemoteCalls.peer}): each subscription to
 *   `send()` is a `call`; items come as `next` under the credit the caller grants (`credit`, as a
 *   connection's CREDIT frames), the end as `done` or `error`; unsubscribing sends `cancel`. A
 *   deadline travels to the holder, whose connection enforces it, and a local guard timer
 *   (deadline + `deadlineGrace`) fails the call if the holder never answers.
 * - Holder side: `localPeer(id).iterate()` pulled one item at a time, only while the caller has
 *   credit; `cancel` (or the caller replica going down) `return()`s it, which cancels the call on
 *   the client's connection.
 */
import { asError } from '../connection/frame-writer.js';
import { optionError } from '../connection/options.js';
import { unavailable } from '../protocol/errors.js';
import type { WsMsgpackPeer } from '../peer/peer.js';
import type { ClusterLocalPeer } from './adapter.js';
import { RemoteCaller, type CallerSettings } from './remote-caller.js';
import { READ_STEP, badMessage, parseMessage, type ClusterLink } from './remote-messages.js';
import { RemotePeer } from './remote-peer.js';
import { ServedCalls } from './remote-serving.js';
import type { WsMsgpackPeerInfo } from './types.js';

export type { ClusterLink, RemoteMessage } from './remote-messages.js';
export { RemotePeer } from './remote-peer.js';

/** Options of {@link RemoteCalls}. */
export interface RemoteCallsOptions {
  /** Deadline (ms) of a call whose data sets none, as the server's `defaultTimeout`. Default: none. */
  defaultTimeout?: number;
  /** Credit window of a call's response stream when its record sets none, in items (0 = unlimited). Default 256. */
  window?: number;
  /**
   * How long past its deadline a call waits for the holder's answer (normally its
   * DEADLINE_EXCEEDED) before failing by itself with DEADLINE_EXCEEDED. Default 1,000 ms.
   */
  deadlineGrace?: number;
  /** How long an `emit()` waits for the holder's acknowledgement before failing UNAVAILABLE. Default 10,000 ms. */
  ackTimeout?: number;
  /**
   * Bytes of answers this replica may have sent one other replica before hearing that it read
   * them (`read` messages, every 64 KiB): past it, the response streams it serves for that replica
   * wait (each holding one item). More than 64 KiB; 0 = no bound. Default 0 (the Redis adapter
   * sets its `maxBytesInFlight`). Works only with a link that reports sizes (`ClusterLink.send`'s `sized`).
   */
  maxBytesInFlight?: number;
  /** Told of what no caller can be: messages dropped as malformed, answers that could not be sent. Never throws back. */
  onError?: (error: Error) => void;
}

/**
 * The remote-call multiplexer of one replica: makes peers of other replicas callable
 * ({@link peer}) and serves the calls other replicas make on this replica's peers.
 */
export class RemoteCalls {
  /** The caller side (it holds the phase: open, or closed for good). */
  private readonly caller: RemoteCaller;
  private readonly served: ServedCalls;
  private readonly onError: ((error: Error) => void) | undefined;

  /**
   * @param replica this replica's id (what the others address it by)
   * @param link how messages reach the other replicas
   * @param localPeer this replica's connected peer with an id, if any (the holder side serves calls on it)
   */
  constructor(
    readonly replica: string,
    link: ClusterLink,
    localPeer: (id: string) => ClusterLocalPeer | undefined,
    options: RemoteCallsOptions = {},
  ) {
    this.onError = options.onError;
    const report = (e: Error): void => this.report(e);
    this.caller = new RemoteCaller(replica, link, resolveSettings(options), report);
    const budget = resolveBudget(options.maxBytesInFlight);
    this.served = new ServedCalls(replica, link, localPeer, report, budget);
  }

  /**
   * A peer held by another replica, whose `send()` / `emit()` are routed there (see
   * {@link RemotePeer} for what differs from a local peer).
   */
  peer(info: WsMsgpackPeerInfo): WsMsgpackPeer {
    return new RemotePeer(info, this.caller);
  }

  /**
   * A message from replica `from`, `bytes` long on the engine (what the link measured; counted
   * for the holder's `maxBytesInFlight`): a request to serve, or an answer to one of this
   * replica's calls. A malformed one is dropped and reported (`onError`); this never throws.
   * Returns true when it was a request (`from` then has calls or peers served here: watch it).
   */
  receive(from: string, message: unknown, bytes = 0): boolean {
    if (!this.caller.isOpen) return false;
    try {
      if (typeof from !== 'string') {
        this.report(badMessage(String(from), 'the sender is not a replica id'));
        return false;
      }
      const m = parseMessage(message);
      if (typeof m === 'string') {
        this.report(badMessage(from, m));
        return false;
      }
      if (m.t === 'next' || m.t === 'done' || m.t === 'error' || m.t === 'ack') {
        this.caller.answer(from, m, bytes);
        return false;
      }
      this.served.handle(from, m);
      return true;
    } catch (e) {
      this.report(asError(e)); // a bug here must not reach the link's event loop
      return false;
    }
  }

  /**
   * `replica` is gone (its heartbeat expired, or it unregistered): the calls and emits to it fail
   * UNAVAILABLE at once, the peers obtained for it are no longer connected, and the calls served
   * for it are cancelled. A replica that comes back under the same id is reachable again through
   * peers obtained afterwards.
   */
  replicaDown(replica: string): void {
    if (!this.caller.isOpen) return;
    this.caller.replicaDown(replica);
    this.served.cancelFrom(replica);
  }

  /**
   * This replica's link to the engine dropped (or the others took it for dead), so messages to
   * and from it may have been lost: every call and emit under way fails UNAVAILABLE, every call
   * served is stopped (a stream missing an item must not look complete), and the other side of
   * each is told, now or at {@link linkUp}. New calls work again as soon as the link does.
   */
  linkDown(reason?: Error): void {
    if (!this.caller.isOpen) return;
    this.caller.failAll(unavailable(`cluster: replica ${this.replica} lost its link to the cluster engine${reason ? `: ${reason.message}` : ''}`));
    this.served.linkLost();
  }

  /**
   * The link is back (after {@link linkDown}): the messages it could not send go out, so that the
   * other replicas stop serving the calls this one gave up on, and fail the calls this one stopped
   * serving, instead of waiting for them.
   */
  linkUp(): void {
    if (!this.caller.isOpen) return;
    this.caller.linkUp();
    this.served.linkBack();
  }

  /** This replica closes: its calls fail UNAVAILABLE (new ones at once), the calls it serves are cancelled. */
  close(): void {
    if (!this.caller.isOpen) return;
    this.caller.close();
    this.served.cancelAll();
  }

  private report(error: Error): void {
    if (!this.caller.isOpen) return;
    try {
      this.onError?.(error);
    } catch {
      /* a throwing listener must not break the bus */
    }
  }
}

/** `maxBytesInFlight` checked: Infinity for 0 (no bound). */
function resolveBudget(value: number | undefined): number {
  if (value === undefined || value === 0) return Infinity;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= READ_STEP)
    throw optionError('maxBytesInFlight', `0, or a whole number of bytes over ${READ_STEP}`, value);
  return value;
}

function resolveSettings(options: RemoteCallsOptions): CallerSettings {
  const check = (name: keyof RemoteCallsOptions, value: number | undefined, fallback: number | undefined, integer = false): number | undefined => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (integer && !Number.isSafeInteger(value))) {
      throw optionError(name, integer ? 'a non-negative integer' : 'a non-negative number of ms', value);
    }
    return value;
  };
  return {
    defaultTimeout: check('defaultTimeout', options.defaultTimeout, undefined),
    window: check('window', options.window, 256, true) ?? 256,
    deadlineGrace: check('deadlineGrace', options.deadlineGrace, 1000) ?? 1000,
    ackTimeout: check('ackTimeout', options.ackTimeout, 10_000) ?? 10_000,
  };
}
