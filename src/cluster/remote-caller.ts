import { AsyncSubject, Observable, type Subscriber } from 'rxjs';
import { errorFromFrame } from '../connection/errors.js';
import { optionError } from '../connection/options.js';
import { isStreamSource } from '../connection/outgoing.js';
import { startTimer, type Timer } from '../connection/timers.js';
import { WsMsgpackError, deadlineExceeded, unavailable, unimplemented } from '../protocol/errors.js';
import { FrameType } from '../protocol/frames.js';
import { unpackCall } from '../peer/record.js';
import type { RemotePeer } from './remote-peer.js';
import { OwedMessages } from './owed-messages.js';
import {
  READ_STEP,
  notSent,
  protocolError,
  sendOn,
  type ClusterLink,
  type RemoteAnswerMessage,
  type RemoteCloseMessage,
  type RemoteErrorMessage,
  type RemoteMessage,
  type RemoteRoomsMessage,
} from './remote-messages.js';

/** The caller side's settings (resolved `RemoteCallsOptions`). */
export interface CallerSettings {
  /** Deadline of a call whose data sets none, in ms. */
  readonly defaultTimeout: number | undefined;
  /** Credit window of a call whose data sets none (0: unlimited). */
  readonly window: number;
  /** How long past its deadline a call waits for the holder's answer before failing by itself. */
  readonly deadlineGrace: number;
  /** How long an emit waits for the holder's ack. */
  readonly ackTimeout: number;
}

/** The most replicas remembered as declared down (the oldest is forgotten past it). */
const MAX_DOWNS = 10_000;

/** A call or emit under way, waiting for the holder's answers. */
interface Op {
  readonly replica: string;
  answer(message: RemoteAnswerMessage): void;
  /** Ends it with `error`; `cancel`: tell the holder to stop. */
  fail(error: WsMsgpackError, cancel?: boolean): void;
}

/**
 * The caller side of remote calls: starts calls and emits on peers of other replicas, routes
 * their answers, and fails them when their replica goes down or this side closes.
 */
export class RemoteCaller {
  /** `open`, or `closed` for good (every call fails UNAVAILABLE at once). */
  private phase: 'open' | 'closed' = 'open';
  private lastId = 0;
  private readonly ops = new Map<number, Op>();
  /** How many times each replica was declared down: a peer taken before the last time is gone. */
  private readonly downs = new Map<string, number>();
  /** Cancels that could not be sent while the link was down: sent once it is back ({@link linkUp}). */
  readonly owed = new OwedMessages();
  /** Bytes of answers received from each replica and not yet told it (`read`). */
  private readonly unread = new Map<string, number>();
  /**
   * The replicas called (or emitted to) since the link last dropped: the only ones whose answers
   * are counted (a made-up sender costs nothing), and the ones told `reset` when it drops.
   */
  private readonly holders = new Set<string>();

  constructor(
    /** This replica's id. */
    readonly replica: string,
    private readonly link: ClusterLink,
    private readonly settings: CallerSettings,
    private readonly report: (error: Error) => void,
  ) {}

  /** Which "life" of `replica` this is (bumped by {@link replicaDown}). */
  epoch(replica: string): number {
    return this.downs.get(replica) ?? 0;
  }

  /** True until {@link close}. */
  get isOpen(): boolean {
    return this.phase === 'open';
  }

  /** Calls a handler of `peer` (see `WsMsgpackPeer.send`): one call per subscription. */
  call<TResult>(peer: RemotePeer, pattern: unknown, data: unknown): Observable<TResult> {
    return new Observable<TResult>((subscriber) => {
      const refused = this.refusal(peer);
      if (refused) return subscriber.error(refused);
      const { payload, options } = unpackCall(data, this.settings.defaultTimeout);
      if (isStreamSource(payload)) {
        return subscriber.error(
          unimplemented(
            `a request stream cannot be sent to a peer on another replica (peer ${peer.id} is on replica ${peer.replica}): send one value, or make the call on that replica`,
          ),
        );
      }
      const window = options.window ?? this.settings.window;
      if (!(Number.isSafeInteger(window) && window >= 0)) return subscriber.error(optionError('window', 'a non-negative integer', window));
      const ms = options.timeout !== undefined && options.timeout > 0 && Number.isFinite(options.timeout) ? Math.ceil(options.timeout) : undefined;
      const id = ++this.lastId;
      const call = new OutgoingCall(this, id, peer, subscriber as Subscriber<unknown>, window);
      this.ops.set(id, call);
      this.holders.add(peer.replica);
      this.post(peer.replica, {
        t: 'call',
        i: id,
        p: peer.id,
        k: pattern,
        d: payload,
        ...(options.headers === undefined ? {} : { h: options.headers }),
        ...(ms === undefined ? {} : { ms }),
        ...(window === 0 ? {} : { n: window }),
        ...(options.overflow === undefined ? {} : { o: options.overflow }),
      }).catch((e: WsMsgpackError) => call.fail(e));
      if (ms !== undefined) call.guard(ms, this.settings.deadlineGrace);
      return () => call.unsubscribe();
    });
  }

  /** Emits an event to `peer` now; the Observable completes once the holder acked it. */
  emit(peer: RemotePeer, pattern: unknown, data: unknown): Observable<undefined> {
    const result = new AsyncSubject<undefined>();
    const refused = this.refusal(peer);
    if (refused) {
      result.error(refused);
      return result.asObservable();
    }
    const { payload, options } = unpackCall(data);
    const id = ++this.lastId;
    const emit = new OutgoingEmit(this, id, peer, result);
    this.ops.set(id, emit);
    this.holders.add(peer.replica);
    emit.guard(this.settings.ackTimeout);
    this.post(peer.replica, { t: 'emit', i: id, p: peer.id, k: pattern, d: payload, ...(options.headers === undefined ? {} : { h: options.headers }) }).catch((e: WsMsgpackError) =>
      emit.fail(e),
    );
    return result.asObservable();
  }

  /** Sends a message that has no answer (close, join, leave); a failure is reported. */
  tell(peer: RemotePeer, message: RemoteCloseMessage | RemoteRoomsMessage): void {
    if (this.refusal(peer)) return;
    this.post(peer.replica, message).catch((e: WsMsgpackError) => this.report(notSent(`${message.t} of peer ${peer.id}`, e)));
  }

  /**
   * An answer from `from` to one of our calls or emits, `bytes` long on the engine. Every answer
   * counts (also a late one): `from` is told what was read each time {@link READ_STEP} is reached.
   */
  answer(from: string, message: RemoteAnswerMessage, bytes = 0): void {
    if (bytes > 0 && this.holders.has(from)) this.read(from, bytes);
    const op = this.ops.get(message.i);
    // Late answers of calls that ended here (cancelled, past the deadline) are dropped, as on a connection.
    if (op?.replica === from) op.answer(message);
  }

  /** `replica` is gone: its peers are no longer connected, every call and emit to it fails at once. */
  replicaDown(replica: string): void {
    const epoch = this.epoch(replica) + 1;
    this.downs.delete(replica);
    this.downs.set(replica, epoch); // most recent last
    // Replica ids are random per process: without a bound this would grow with every restart.
    if (this.downs.size > MAX_DOWNS) this.downs.delete(this.downs.keys().next().value as string);
    this.owed.forget(replica);
    this.unread.delete(replica);
    this.holders.delete(replica);
    this.failWhere((op) => op.replica === replica, unavailable(`cluster: replica ${replica} is gone (it closed, or its heartbeat expired)`, { replica }));
  }

  /**
   * This replica's link dropped: every call and emit under way fails with `error`, and each
   * holder is told to stop serving (now if the link can still send, else once it is back).
   */
  failAll(error: WsMsgpackError): void {
    this.failWhere(() => true, error, true);
    // Answers may have been lost on the way (Redis cut the connection), and what was read was not
    // all told: each holder is told to count from zero again (now, or once the link is back),
    // else its count of unread bytes would only grow, until its budget held every call for ever.
    this.unread.clear();
    for (const replica of this.holders) this.post(replica, { t: 'reset' }).catch(() => this.owed.owe(replica, { t: 'reset' }));
    this.holders.clear();
  }

  /** The link is back: the cancels it could not send go out. */
  linkUp(): void {
    this.owed.flush((to, message) => void this.post(to, message).catch((e: WsMsgpackError) => this.report(notSent(`the ${message.t} owed to replica ${to}`, e))));
  }

  /** This side closes: every call and emit fails UNAVAILABLE (the holders are told to stop the calls), and new ones fail at once. */
  close(): void {
    this.phase = 'closed';
    this.failWhere(() => true, unavailable(`cluster: replica ${this.replica} is closed`), true);
  }

  /** @internal Forgets op `id` (it ended). */
  forget(id: number): void {
    this.ops.delete(id);
  }

  /** @internal Sends `message` to `replica`. */
  post(replica: string, message: RemoteMessage): Promise<void> {
    return sendOn(this.link, replica, message);
  }

  /** Counts `bytes` read from `from`; sends `read` once they reach {@link READ_STEP} (a lost one: the link dropped, and both sides start again). */
  private read(from: string, bytes: number): void {
    const unread = (this.unread.get(from) ?? 0) + bytes;
    if (unread < READ_STEP) {
      this.unread.set(from, unread);
      return;
    }
    this.unread.delete(from);
    this.post(from, { t: 'read', b: unread }).catch(() => {});
  }

  /** Why a call or emit to `peer` fails at once, if it does. */
  private refusal(peer: RemotePeer): WsMsgpackError | undefined {
    if (this.phase === 'closed') return unavailable(`cluster: replica ${this.replica} is closed`);
    if (peer.isConnected) return undefined;
    return unavailable(`cluster: peer ${peer.id} is no longer connected (it was on replica ${peer.replica})`, { peer: peer.id, replica: peer.replica });
  }

  private failWhere(which: (op: Op) => boolean, error: WsMsgpackError, cancel = false): void {
    for (const op of [...this.ops.values()]) if (which(op)) op.fail(error, cancel);
  }
}

/** The error an `error` answer stands for: APPLICATION_ERROR data as-is, else a WsMsgpackError (as a connection surfaces it). */
function errorOf(message: RemoteErrorMessage): unknown {
  return errorFromFrame({ type: FrameType.ERROR, id: message.i, code: message.c, message: message.m, ...(message.d === undefined ? {} : { data: message.d }) });
}

/**
 * One call to a peer of another replica, for one subscriber. Credit as on a connection
 * (docs/PROTOCOL.md section 8): the holder may send `window` items, and is granted more as the
 * subscriber takes them (a top-up once half the window was taken), so it never runs more than
 * a window ahead of the subscriber. Items are handed to the subscriber as they arrive: nothing
 * waits here, so an item beyond credit (a holder breaking the rule) costs nothing and is not
 * checked (it could not be told apart: the top-ups go out as the items are taken).
 */
class OutgoingCall implements Op {
  /** `running` until an answer ends it, it fails, or the subscriber leaves. */
  private phase: 'running' | 'ended' = 'running';
  private granted: number;
  private taken = 0;
  private timer: Timer | undefined;
  readonly replica: string;

  constructor(
    private readonly caller: RemoteCaller,
    private readonly id: number,
    private readonly peer: RemotePeer,
    private readonly subscriber: Subscriber<unknown>,
    /** 0: unlimited. */
    private readonly window: number,
  ) {
    this.replica = peer.replica;
    this.granted = window;
  }

  /** Fails the call DEADLINE_EXCEEDED if the holder has not ended it `grace` ms past its deadline. */
  guard(ms: number, grace: number): void {
    if (this.phase !== 'running') return;
    this.timer = startTimer(ms + grace, () =>
      this.fail(deadlineExceeded(`deadline of ${ms} ms exceeded (replica ${this.replica} did not answer within ${grace} ms more)`), 'DEADLINE_EXCEEDED'),
    );
  }

  answer(message: RemoteAnswerMessage): void {
    if (this.phase !== 'running') return;
    switch (message.t) {
      case 'next':
        if (!message.e) return this.take(message.v);
        this.end(); // the last item: the response completed with it
        this.subscriber.next(message.v);
        return this.subscriber.complete();
      case 'done':
        this.end();
        return this.subscriber.complete();
      case 'error':
        this.end();
        if (message.g) this.peer.gone();
        return this.subscriber.error(errorOf(message));
      default:
        return this.fail(protocolError(`cluster: replica ${this.replica} answered call ${this.id} with "${message.t}"`), true);
    }
  }

  /** Ends the call with `error`; `cancel` tells the holder to stop (with a reason for a deadline). */
  fail(error: WsMsgpackError, cancel: boolean | 'DEADLINE_EXCEEDED' = false): void {
    if (this.phase !== 'running') return;
    this.end();
    if (cancel) this.cancel(cancel === true ? undefined : cancel);
    this.subscriber.error(error);
  }

  /** The subscriber left (or the call ended, then nothing happens). */
  unsubscribe(): void {
    if (this.phase !== 'running') return;
    this.end();
    this.cancel();
  }

  private take(value: unknown): void {
    this.taken++;
    this.subscriber.next(value);
    if (this.phase !== 'running' || this.window === 0) return; // the subscriber may have left in next()
    const left = this.granted - this.taken;
    if (left > this.window / 2) return;
    const n = this.window - left;
    this.granted += n;
    this.caller.post(this.replica, { t: 'credit', i: this.id, n }).catch((e: WsMsgpackError) => this.fail(e, true));
  }

  private cancel(reason?: 'DEADLINE_EXCEEDED'): void {
    const message: RemoteMessage = reason ? { t: 'cancel', i: this.id, r: reason } : { t: 'cancel', i: this.id };
    // Not sent (the link is down): it goes out once the link is back, so the holder stops serving.
    this.caller.post(this.replica, message).catch(() => this.caller.owed.owe(this.replica, message));
  }

  private end(): void {
    this.phase = 'ended';
    this.timer?.cancel();
    this.caller.forget(this.id);
  }
}

/** One emit to a peer of another replica, waiting for the holder's ack. */
class OutgoingEmit implements Op {
  /** `waiting` for the ack, then `ended`. */
  private phase: 'waiting' | 'ended' = 'waiting';
  private timer: Timer | undefined;
  readonly replica: string;

  constructor(
    private readonly caller: RemoteCaller,
    private readonly id: number,
    private readonly peer: RemotePeer,
    private readonly result: AsyncSubject<undefined>,
  ) {
    this.replica = peer.replica;
  }

  /** Fails the emit UNAVAILABLE if no ack came within `ms`. */
  guard(ms: number): void {
    this.timer = startTimer(ms, () => this.fail(unavailable(`cluster: replica ${this.replica} did not acknowledge the event within ${ms} ms`, { replica: this.replica })));
  }

  answer(message: RemoteAnswerMessage): void {
    if (this.phase !== 'waiting') return;
    if (message.t === 'ack') {
      this.end();
      this.result.next(undefined);
      return this.result.complete();
    }
    if (message.t === 'error') {
      this.end();
      if (message.g) this.peer.gone();
      return this.result.error(errorOf(message));
    }
    this.fail(protocolError(`cluster: replica ${this.replica} answered event ${this.id} with "${message.t}"`));
  }

  fail(error: WsMsgpackError): void {
    if (this.phase !== 'waiting') return;
    this.end();
    this.result.error(error);
  }

  private end(): void {
    this.phase = 'ended';
    this.timer?.cancel();
    this.caller.forget(this.id);
  }
}
