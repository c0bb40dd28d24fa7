/**
 * The messages between replicas, over Redis pub/sub. Every message is msgpack (the server's bus
 * codec, with its custom types), an array whose first items say what it is and who sent it:
 *
 * | channel                    | how                       | message                                    |
 * |----------------------------|---------------------------|--------------------------------------------|
 * | `<p>:broadcast`            | PUBLISH / SUBSCRIBE       | `[0, sender, pattern, data, selection]`: a broadcast; `[1, sender]`: the sender left |
 * | `<p>:topic:<channel>`      | PUBLISH / SUBSCRIBE       | `[sender, value]`: a `WsMsgpackTopics` value (subscribed only while someone here listens) |
 * | `<p>:replica:<replica>`    | SPUBLISH / SSUBSCRIBE     | `[sender, message]`: a remote-call message for that replica |
 *
 * A replica ignores what it sent itself. Redis delivers the messages of one connection in the
 * order they were sent, at most once (pub/sub keeps nothing for a subscriber that is away).
 *
 * Bytes: a message over `maxMessageBytes` is refused (RESOURCE_EXHAUSTED) before it is sent;
 * one that would take the bytes published and not yet answered by Redis past `maxQueuedBytes`
 * is refused too when it is a broadcast, a topic value, or a remote call or emit (the heartbeat shares the
 * connection: it must not wait behind a flood), while answers and control messages always go.
 */
import { Buffer } from 'node:buffer';
import type { Redis } from 'ioredis';
import type { ClusterHost } from '../cluster/adapter.js';
import type { WsMsgpackSelection } from '../cluster/types.js';
import { internalError, resourceExhausted } from '../protocol/errors.js';

/** What the bus hands the adapter. */
export interface BusReceiver {
  broadcast(from: string, pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined): void;
  left(from: string): void;
  /** A remote-call message, `bytes` long on the bus. */
  remote(from: string, message: unknown, bytes: number): void;
}

/** The bus's byte limits (`redisCluster` options). */
export interface BusLimits {
  readonly maxMessageBytes: number;
  readonly maxQueuedBytes: number;
}

const BROADCAST = 0;
const LEFT = 1;

export class RedisBus {
  private readonly broadcastChannel: string;
  private readonly ownChannel: string;
  private readonly topicPrefix: string;
  /** The topic channels (by their Redis name) and who listens to each here. */
  private readonly topics = new Map<string, Set<(value: unknown) => void>>();
  private readonly detach: () => void;
  /** The server's codec and error sink, from `start()` on (nothing arrives before: no channel is subscribed). */
  host: ClusterHost | undefined;
  /** Bytes published whose command Redis has not answered yet. */
  private queued = 0;
  /** The part of {@link queued} that is broadcasts, topic values, calls and emits (what `maxQueuedBytes` bounds). */
  private queuedRefusable = 0;

  constructor(
    private readonly prefix: string,
    private readonly replica: string,
    private readonly subscriber: Redis,
    private readonly receiver: BusReceiver,
    private readonly limits: BusLimits = { maxMessageBytes: Infinity, maxQueuedBytes: Infinity },
  ) {
    this.broadcastChannel = `${prefix}:broadcast`;
    this.ownChannel = this.replicaChannel(replica);
    this.topicPrefix = `${prefix}:topic:`;
    const onMessage = (channel: Buffer, message: Buffer) => this.received(channel.toString(), message);
    const onShardMessage = (channel: Buffer, message: Buffer) => {
      if (channel.toString() === this.ownChannel) this.receivedRemote(message);
    };
    subscriber.on('messageBuffer', onMessage);
    subscriber.on('smessageBuffer', onShardMessage);
    this.detach = () => {
      subscriber.off('messageBuffer', onMessage);
      subscriber.off('smessageBuffer', onShardMessage);
    };
  }

  /** The sharded channel of a replica (remote-call messages to it). */
  replicaChannel(replica: string): string {
    return `${this.prefix}:replica:${replica}`;
  }

  /** Subscribes every channel this replica needs (at start, and after the pub/sub connection reconnected). */
  async subscribeAll(): Promise<void> {
    // In batches: one SUBSCRIBE with every topic channel as an argument overflows the call stack past ~100,000.
    await Promise.all([
      ...batches([this.broadcastChannel, ...this.topics.keys()]).map((names) => this.subscriber.subscribe(...names)),
      this.subscriber.ssubscribe(this.ownChannel),
    ]);
  }

  /**
   * Stops listening and unsubscribes every channel of this replica (the connection may be the
   * user's); `send: false` (Redis does not answer) only stops listening.
   */
  async unsubscribeAll(send = true): Promise<void> {
    this.detach();
    if (!send || this.subscriber.status !== 'ready') return;
    await Promise.all([
      ...batches([this.broadcastChannel, ...this.topics.keys()]).map((names) => this.subscriber.unsubscribe(...names)),
      this.subscriber.sunsubscribe(this.ownChannel),
    ]);
  }

  /** Bytes published and not yet answered by Redis. */
  get queuedBytes(): number {
    return this.queued;
  }

  /** Publishes a broadcast; resolves with how many subscribers (replicas, this one included) received it. */
  async publishBroadcast(client: Redis, pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined): Promise<number> {
    return this.publish(client, this.broadcastChannel, [BROADCAST, this.replica, pattern, data, selection ?? null], { refusable: true });
  }

  /** Tells the other replicas this one left (they fail the calls to its peers at once). */
  async publishLeft(client: Redis): Promise<void> {
    await this.publish(client, this.broadcastChannel, [LEFT, this.replica], {});
  }

  /** Publishes a topic value. */
  async publishTopic(client: Redis, channel: string, value: unknown): Promise<void> {
    await this.publish(client, this.topicPrefix + channel, [this.replica, value], { refusable: true });
  }

  /**
   * Sends a remote-call message to a replica; resolves with how many subscribers got it (0: no
   * such replica listens). `refusable`: refused while the queue is full (calls, emits); `sized`
   * is told the message's size before this returns.
   */
  sendRemote(client: Redis, replica: string, message: unknown, refusable: boolean, sized?: (bytes: number) => void): Promise<number> {
    return this.publish(client, this.replicaChannel(replica), [this.replica, message], { refusable, sharded: true, sized });
  }

  /**
   * Encodes and publishes `value` (synchronously up to the command being queued, so `sized`
   * is called before this returns); rejects RESOURCE_EXHAUSTED past the limits.
   */
  private publish(client: Redis, channel: string, value: unknown, how: { refusable?: boolean; sharded?: boolean; sized?: (bytes: number) => void }): Promise<number> {
    try {
      const bytes = this.encode(value);
      if (bytes.length > this.limits.maxMessageBytes) {
        throw resourceExhausted(`cluster: a message of ${bytes.length} bytes is over maxMessageBytes (${this.limits.maxMessageBytes}) and was not sent`, {
          bytes: bytes.length,
          maxMessageBytes: this.limits.maxMessageBytes,
        });
      }
      // With it, the queue would pass its limit (one message alone always goes, so the largest can).
      if (how.refusable && this.queuedRefusable > 0 && this.queuedRefusable + bytes.length > this.limits.maxQueuedBytes) {
        throw resourceExhausted(
          `cluster: ${this.queuedRefusable} bytes are already waiting to reach Redis, and ${bytes.length} more would pass maxQueuedBytes (${this.limits.maxQueuedBytes}): try again once they have gone`,
          { queuedBytes: this.queuedRefusable, bytes: bytes.length, maxQueuedBytes: this.limits.maxQueuedBytes },
        );
      }
      how.sized?.(bytes.length);
      const size = bytes.length;
      const refusable = how.refusable ? size : 0;
      const sent = how.sharded ? client.spublish(channel, bytes) : client.publish(channel, bytes);
      // Counted once the command is queued (a synchronous throw queued nothing).
      this.queued += size;
      this.queuedRefusable += refusable;
      const done = () => {
        this.queued -= size;
        this.queuedRefusable -= refusable;
      };
      return sent.then(
        (n) => {
          done();
          return Number(n);
        },
        (e: unknown) => {
          done();
          throw e;
        },
      );
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /**
   * Delivers the topic's values from other replicas to `deliver` until the returned function is
   * called; the channel is subscribed while it has a listener here. `subscribe(channel)` runs the
   * Redis command when it is the first listener (`unsubscribe` when the last one goes), now if
   * the connection is up (else {@link subscribeAll} does it on reconnect).
   */
  listen(channel: string, deliver: (value: unknown) => void): () => void {
    const name = this.topicPrefix + channel;
    let listeners = this.topics.get(name);
    if (!listeners) {
      listeners = new Set();
      this.topics.set(name, listeners);
      this.command(() => this.subscriber.subscribe(name));
    }
    const mine = (value: unknown) => deliver(value); // its own identity: the same function may listen twice
    listeners.add(mine);
    return () => {
      const set = this.topics.get(name);
      if (!set?.delete(mine) || set.size > 0) return;
      this.topics.delete(name);
      this.command(() => this.subscriber.unsubscribe(name));
    };
  }

  private command(run: () => Promise<unknown>): void {
    if (this.subscriber.status !== 'ready') return; // subscribeAll() brings the channels back in line on reconnect
    run().catch((e: unknown) => {
      if (this.subscriber.status === 'ready') this.host?.report(asError(e, 'cluster: a pub/sub command failed'));
    });
  }

  private received(channel: string, bytes: Buffer): void {
    // A subscriber the app shares carries its own channels too: only the cluster's are decoded.
    if (channel !== this.broadcastChannel && !this.topics.has(channel)) return;
    const message = this.decode(bytes, channel);
    if (message === undefined) return; // reported
    if (!Array.isArray(message)) return this.dropped(channel, 'not a list');
    if (channel === this.broadcastChannel) {
      const [kind, from] = message as [unknown, unknown];
      if (typeof from !== 'string') return this.dropped(channel, 'the sender is not a replica id');
      if (from === this.replica) return;
      if (kind === BROADCAST) {
        const [, , pattern, data, selection] = message as [unknown, unknown, unknown, unknown, WsMsgpackSelection | null];
        this.receiver.broadcast(from, pattern, data, selection ?? undefined);
      } else if (kind === LEFT) {
        this.receiver.left(from);
      } else {
        this.dropped(channel, `unknown kind ${JSON.stringify(kind)}`);
      }
      return;
    }
    const listeners = this.topics.get(channel);
    const [from, value] = message as [unknown, unknown];
    if (typeof from !== 'string') return this.dropped(channel, 'the sender is not a replica id');
    if (!listeners || from === this.replica) return;
    for (const deliver of [...listeners]) {
      try {
        deliver(value);
      } catch (e) {
        this.host?.report(asError(e, 'cluster: a topic listener threw'));
      }
    }
  }

  private receivedRemote(bytes: Buffer): void {
    const message = this.decode(bytes, this.ownChannel);
    if (message === undefined) return; // reported
    if (!Array.isArray(message) || typeof message[0] !== 'string') return this.dropped(this.ownChannel, 'not [sender, message]');
    if (message[0] === this.replica) return;
    this.receiver.remote(message[0], message[1], bytes.length);
  }

  /** Reports a message that is not one of the bus's (written to Redis by someone else). */
  private dropped(channel: string, why: string): void {
    this.host?.report(new Error(`cluster: dropped a message on ${channel}: ${why}`));
  }

  /** The bus bytes of `value`; a value that cannot be encoded (a function, a symbol) is INTERNAL, as on a connection, not a link failure. */
  private encode(value: unknown): Buffer {
    if (!this.host) throw new Error('cluster: the adapter has not started');
    let bytes: Uint8Array;
    try {
      bytes = this.host.encode(value);
    } catch (e) {
      throw internalError(`cluster: the message could not be encoded: ${e instanceof Error ? e.message : String(e)}`);
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private decode(bytes: Buffer, channel: string): unknown {
    if (!this.host) return undefined;
    try {
      return this.host.decode(bytes);
    } catch (e) {
      this.host.report(asError(e, `cluster: dropped a message on ${channel} that cannot be decoded`));
      return undefined;
    }
  }
}

/** `e` with what was going on in front of its message. */
export function asError(e: unknown, what: string): Error {
  return new Error(`${what}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** How many channels one SUBSCRIBE / UNSUBSCRIBE names at most. */
export const CHANNEL_BATCH = 1000;

/** `names` in lists of at most {@link CHANNEL_BATCH}. */
export function batches(names: readonly string[]): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < names.length; i += CHANNEL_BATCH) out.push(names.slice(i, i + CHANNEL_BATCH));
  return out;
}
