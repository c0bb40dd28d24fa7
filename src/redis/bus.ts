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
 */
import { Buffer } from 'node:buffer';
import type { Redis } from 'ioredis';
import type { ClusterHost } from '../cluster/adapter.js';
import type { WsMsgpackSelection } from '../cluster/types.js';
import { internalError } from '../protocol/errors.js';

/** What the bus hands the adapter. */
export interface BusReceiver {
  broadcast(from: string, pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined): void;
  left(from: string): void;
  remote(from: string, message: unknown): void;
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

  constructor(
    private readonly prefix: string,
    private readonly replica: string,
    private readonly subscriber: Redis,
    private readonly receiver: BusReceiver,
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

  /** Publishes a broadcast; resolves with how many subscribers (replicas, this one included) received it. */
  async publishBroadcast(client: Redis, pattern: unknown, data: unknown, selection: WsMsgpackSelection | undefined): Promise<number> {
    return client.publish(this.broadcastChannel, this.encode([BROADCAST, this.replica, pattern, data, selection ?? null]));
  }

  /** Tells the other replicas this one left (they fail the calls to its peers at once). */
  async publishLeft(client: Redis): Promise<void> {
    await client.publish(this.broadcastChannel, this.encode([LEFT, this.replica]));
  }

  /** Publishes a topic value. */
  async publishTopic(client: Redis, channel: string, value: unknown): Promise<void> {
    await client.publish(this.topicPrefix + channel, this.encode([this.replica, value]));
  }

  /** Sends a remote-call message to a replica; resolves with how many subscribers got it (0: no such replica listens). */
  async sendRemote(client: Redis, replica: string, message: unknown): Promise<number> {
    return Number(await client.spublish(this.replicaChannel(replica), this.encode([this.replica, message])));
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
    if (!Array.isArray(message)) return;
    if (channel === this.broadcastChannel) {
      const [kind, from] = message as [unknown, unknown];
      if (typeof from !== 'string' || from === this.replica) return;
      if (kind === BROADCAST) {
        const [, , pattern, data, selection] = message as [unknown, unknown, unknown, unknown, WsMsgpackSelection | null];
        this.receiver.broadcast(from, pattern, data, selection ?? undefined);
      } else if (kind === LEFT) {
        this.receiver.left(from);
      }
      return;
    }
    const listeners = this.topics.get(channel);
    const [from, value] = message as [unknown, unknown];
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
    if (!Array.isArray(message) || typeof message[0] !== 'string' || message[0] === this.replica) return;
    this.receiver.remote(message[0], message[1]);
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
