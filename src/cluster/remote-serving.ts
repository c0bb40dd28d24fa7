import { asError } from '../connection/frame-writer.js';
import type { WsMsgpackCallOptions } from '../connection/options.js';
import { WsMsgpackError, WsMsgpackErrorCode, unavailable } from '../protocol/errors.js';
import { WsMsgpackRecord } from '../peer/record.js';
import type { ClusterLocalPeer } from './adapter.js';
import { OwedMessages } from './owed-messages.js';
import { ServedCall, errorAnswer, wire, type ServedCallOwner } from './served-call.js';
import {
  badMessage,
  notSent,
  sendOn,
  type ClusterLink,
  type RemoteAnswerMessage,
  type RemoteCallMessage,
  type RemoteEmitMessage,
  type RemoteRequestMessage,
} from './remote-messages.js';

/** The most items a call served for another replica asks of the client at a time (its credit window on the client's connection). */
export const SERVED_WINDOW = 16;

/**
 * The holder side of remote calls: serves other replicas' calls and emits on this replica's
 * local peers. A call's items are pulled from the peer (`iterate`) only while the caller has
 * granted credit for them, and sent only while the bytes sent to that caller and not yet heard
 * read stay under `budget` (each call then holds the one item it pulled), so nothing here
 * buffers for a slow caller, and the engine carries at most about a budget per pair of replicas.
 */
export class ServedCalls implements ServedCallOwner {
  /** The calls served, by caller replica and call id. */
  private readonly calls = new Map<string, Map<number, ServedCall>>();
  /** Answers that could not be sent while the link was down: sent once it is back ({@link linkBack}). */
  private readonly owed = new OwedMessages();
  /** Bytes of answers sent to each replica that it has not said it read (`read` messages). */
  private readonly unread = new Map<string, number>();
  /** The calls holding an item for each replica until its unread bytes fall under the budget, in the order they began to wait. */
  private readonly waiting = new Map<string, Set<ServedCall>>();

  constructor(
    /** This replica's id. */
    readonly replica: string,
    private readonly link: ClusterLink,
    private readonly localPeer: (id: string) => ClusterLocalPeer | undefined,
    /** @internal Reports what no caller can be told. */
    readonly report: (error: Error) => void,
    /** Bytes of answers one caller replica may have unread before the calls served for it wait (Infinity: no bound). */
    private readonly budget = Infinity,
  ) {}

  /** A request from replica `from`. */
  handle(from: string, message: RemoteRequestMessage): void {
    switch (message.t) {
      case 'call':
        return this.start(from, message);
      case 'credit':
        return this.calls.get(from)?.get(message.i)?.grant(message.n);
      case 'cancel':
        return this.calls.get(from)?.get(message.i)?.cancel();
      case 'read':
        return this.read(from, message.b);
      case 'reset':
        return this.read(from, Infinity);
      case 'emit':
        return this.emit(from, message);
      case 'close':
        return this.onPeer(from, message.p, message.t, (peer) => peer.close(message.c, message.r));
      default: // join, leave
        return this.onPeer(from, message.p, message.t, (peer) => (message.t === 'join' ? peer.join(...message.r) : peer.leave(...message.r)));
    }
  }

  /** Cancels the calls served for `replica` (it is gone): nobody is told, nothing is owed to it. */
  cancelFrom(replica: string): void {
    this.owed.forget(replica);
    for (const call of [...(this.calls.get(replica)?.values() ?? [])]) call.cancel();
    this.unread.delete(replica);
    this.waiting.delete(replica);
  }

  /** Cancels every call served, telling nobody (this replica closes). */
  cancelAll(): void {
    for (const replica of [...this.calls.keys()]) this.cancelFrom(replica);
  }

  /**
   * This replica's link dropped: items may have been lost, so every call served is stopped and
   * its caller told UNAVAILABLE (now if the link can still send, else once it is back): a caller
   * never waits for a call nobody serves.
   */
  linkLost(): void {
    for (const calls of [...this.calls.values()])
      for (const call of [...calls.values()]) call.abandon(`replica ${this.replica}, which served it, lost its link to the cluster engine`);
    this.unread.clear(); // what was in flight is lost or read: the callers start counting again
    this.waiting.clear();
  }

  /** The link is back: the answers it could not send go out. */
  linkBack(): void {
    this.owed.flush((to, message) => void sendOn(this.link, to, message).catch((e: WsMsgpackError) => this.report(notSent(`the ${message.t} owed to replica ${to}`, e))));
  }

  /**
   * Sends an answer to `to`; `failed` (which stops the call) runs if it cannot be sent. One that
   * cannot be sent because the link is down is owed until the link is back: an `error` or `ack`
   * as it is; instead of a `done` or a `next`, UNAVAILABLE (a stream missing an item must not look
   * complete). One the link refuses though it is up (too large, not encodable) is replaced now by
   * a small error saying so (`replacing`: this is that replacement; if it fails too, it is reported).
   */
  answer(to: string, message: RemoteAnswerMessage, failed?: () => void, replacing = false): void {
    let counted = 0;
    const count = (bytes: number) => {
      counted = bytes;
      this.unread.set(to, (this.unread.get(to) ?? 0) + bytes);
    };
    sendOn(this.link, to, message, count).catch((e: WsMsgpackError) => {
      if (counted > 0) this.read(to, counted); // not delivered: not in flight
      failed?.();
      const what = message.t === 'ack' ? `the ack of event ${message.i}` : `the ${message.t} of call ${message.i}`;
      if (e.code !== WsMsgpackErrorCode.UNAVAILABLE) {
        if (replacing || message.t === 'ack') return this.report(notSent(what, e));
        return this.answer(to, { t: 'error', i: message.i, ...wire(notSent(what, e)) }, undefined, true);
      }
      this.owe(to, message.t === 'error' || message.t === 'ack' ? message : { t: 'error', i: message.i, ...wire(notSent(what, e)) });
    });
  }

  /** True while `to` may be sent more items (its unread bytes are under the budget). */
  hasRoom(to: string): boolean {
    return (this.unread.get(to) ?? 0) < this.budget;
  }

  /** @internal `call` holds an item for `to` until {@link hasRoom}. */
  wait(to: string, call: ServedCall): void {
    let set = this.waiting.get(to);
    if (!set) this.waiting.set(to, (set = new Set()));
    set.add(call);
  }

  /**
   * `from` read `bytes` more of what was sent to it (Infinity: it counts from zero again), or
   * they were not sent after all: the calls waiting for room send, in order, while there is room.
   */
  private read(from: string, bytes: number): void {
    const left = (this.unread.get(from) ?? 0) - bytes;
    if (left > 0) this.unread.set(from, left);
    else this.unread.delete(from);
    const set = this.waiting.get(from);
    if (!set) return;
    for (const call of set) {
      if (!this.hasRoom(from)) return;
      set.delete(call);
      call.flush(); // sends its item (the unread bytes grow), then pulls the next one
    }
    if (set.size === 0) this.waiting.delete(from);
  }

  /** Keeps `message` for `to` until the link is back. */
  owe(to: string, message: RemoteAnswerMessage): void {
    this.owed.owe(to, message);
  }

  /** @internal Forgets a call that ended. */
  forget(from: string, id: number): void {
    const calls = this.calls.get(from);
    const call = calls?.get(id);
    calls?.delete(id);
    if (calls?.size === 0) this.calls.delete(from);
    if (call) this.waiting.get(from)?.delete(call);
  }

  private start(from: string, m: RemoteCallMessage): void {
    let calls = this.calls.get(from);
    if (calls?.has(m.i)) return this.report(badMessage(from, `call ${m.i} is already running`));
    const peer = this.connected(m.p);
    if (!peer) return this.answer(from, this.notHere(m.i, m.p));
    // The client is asked for a few items at a time, not the caller's window: what this replica
    // holds for a call stays small however large the items (the caller's credit still paces it).
    const options: WsMsgpackCallOptions = { window: Math.min(m.n ?? SERVED_WINDOW, SERVED_WINDOW) };
    if (m.h !== undefined) options.headers = m.h;
    if (m.ms !== undefined) options.timeout = m.ms;
    if (m.o !== undefined) options.overflow = m.o;
    let iterator: AsyncIterator<unknown>;
    try {
      iterator = peer.iterate(m.k, m.d, options);
    } catch (e) {
      return this.answer(from, errorAnswer(m.i, e, peer));
    }
    if (!calls) this.calls.set(from, (calls = new Map()));
    const call = new ServedCall(this, from, m.i, peer, iterator, m.n ?? Infinity);
    calls.set(m.i, call);
    call.pump();
  }

  private emit(from: string, m: RemoteEmitMessage): void {
    const peer = this.connected(m.p);
    if (!peer) return this.answer(from, this.notHere(m.i, m.p));
    try {
      peer.emit(m.k, m.h === undefined ? m.d : new WsMsgpackRecord(m.d, { headers: m.h })).subscribe({
        complete: () => this.answer(from, { t: 'ack', i: m.i }),
        error: (e: unknown) => this.answer(from, errorAnswer(m.i, e, peer)),
      });
    } catch (e) {
      this.answer(from, errorAnswer(m.i, e, peer));
    }
  }

  private onPeer(from: string, id: string, what: string, act: (peer: ClusterLocalPeer) => void): void {
    const peer = this.localPeer(id);
    if (!peer) return; // gone meanwhile: nothing to do
    try {
      act(peer);
    } catch (e) {
      this.report(new Error(`cluster: ${what} of peer ${id} asked by replica ${from} failed: ${asError(e).message}`));
    }
  }

  private connected(id: string): ClusterLocalPeer | undefined {
    const peer = this.localPeer(id);
    return peer?.isConnected ? peer : undefined;
  }

  private notHere(i: number, peer: string): RemoteAnswerMessage {
    return { t: 'error', i, ...wire(unavailable(`peer ${peer} is not connected to replica ${this.replica}`, { peer, replica: this.replica })), g: true };
  }
}
