/**
 * `redisCluster(...)`: the `cluster` option of a server on Redis (7 or later). Presence (who is
 * connected where, in which rooms, as whom) lives in Redis records kept by each replica's
 * heartbeat (scripts.ts); broadcasts, topics and remote-call messages travel on pub/sub (bus.ts);
 * the two connections and what "down" means are in link.ts.
 */
import { randomUUID } from 'node:crypto';
import type { ClusterHost, ClusterLocalPeer, WsMsgpackClusterAdapter } from '../cluster/adapter.js';
import { userIdOf, type WsMsgpackClusterStatus, type WsMsgpackPeerInfo, type WsMsgpackSelection } from '../cluster/types.js';
import type { WsMsgpackPeer } from '../peer/peer.js';
import { unavailable } from '../protocol/errors.js';
import { asError, RedisBus } from './bus.js';
import { RedisLink } from './link.js';
import { resolveRedisClusterOptions, type RedisClusterOptions, type ResolvedRedisClusterOptions } from './options.js';
import { checkSelection, Presence } from './presence.js';
import { remoteCalls, type RemoteCallsFactory, type RemoteCallsPort } from './remote.js';
import type { PeerRecord } from './scripts.js';

/** A peer's presence record. */
function recordOf(peer: ClusterLocalPeer): PeerRecord {
  return { id: peer.id, user: userIdOf(peer.user), rooms: peer.rooms };
}

export class RedisClusterAdapter implements WsMsgpackClusterAdapter {
  readonly replica: string = randomUUID();
  private readonly link: RedisLink;
  private readonly presence: Presence;
  private readonly bus: RedisBus;
  private host: ClusterHost | undefined;
  private remote: RemoteCallsPort | undefined;
  private phase: 'idle' | 'started' | 'closed' = 'idle';
  /** Presence written since the command connection last became ready. */
  private synced = false;
  /** Channels subscribed since the pub/sub connection last became ready. */
  private subscribed = false;
  /** A presence write failed: the next heartbeat writes every record again. */
  private dirty = false;
  /** The status the last {@link update} saw. */
  private seen: WsMsgpackClusterStatus = 'connecting';
  private everReady = false;
  /** The other replicas alive at the last heartbeat (and those met since): one that goes is told to the remote calls. */
  private known = new Set<string>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private beating = false;
  private syncing: Promise<void> = Promise.resolve();
  private subscribing: Promise<void> = Promise.resolve();
  /** Presence writes in full, and subscribing, under way. */
  private syncs = 0;
  private subscribes = 0;

  constructor(
    private readonly options: ResolvedRedisClusterOptions,
    /** Replaceable by tests only. */
    private readonly createRemote: RemoteCallsFactory = remoteCalls,
  ) {
    this.link = new RedisLink(options, {
      clientReady: () => this.resync(true),
      subscriberReady: () => this.resubscribe(),
      down: (e) => this.wentDown(e),
    });
    this.presence = new Presence(options.prefix, this.link.client, this.replica, options.replicaTimeout, (command) => this.link.timed(command));
    this.bus = new RedisBus(
      options.prefix,
      this.replica,
      this.link.subscriber,
      {
        broadcast: (_from, pattern, data, selection) =>
          this.guard('a broadcast from another replica', () => {
            checkSelection(selection); // a malformed one (written to Redis by someone else) is reported and dropped, not sent to every peer
            this.host?.broadcastLocal(pattern, data, selection);
          }),
        left: (from) => void this.confirmLeft(from),
        remote: (from, message, bytes) =>
          this.guard('a remote-call message', () => {
            // A request's sender is watched from now on: if its heartbeat stops, what it asked of this replica is cancelled.
            if (this.remote?.receive(from, message, bytes)) this.known.add(from);
          }),
      },
      options,
    );
  }

  get status(): WsMsgpackClusterStatus {
    if (this.phase === 'closed') return 'closed';
    if (this.link.up && this.synced && this.subscribed) return 'ready';
    return this.everReady ? 'down' : 'connecting';
  }

  async start(host: ClusterHost): Promise<void> {
    if (this.phase !== 'idle') throw new Error(`nestjs-ws-msgpack: this redisCluster adapter was ${this.phase === 'closed' ? 'closed' : 'started already'} (one per server)`);
    this.phase = 'started';
    this.host = host;
    this.bus.host = host;
    this.remote = this.createRemote(host, { send: (replica, message, sized) => this.send(replica, message, sized) }, this.replica, this.options.maxBytesInFlight);
    this.timer = setInterval(() => void this.tick(), this.options.heartbeatInterval);
    this.timer.unref?.();
    // The ready events start the first write of presence and the subscriptions; connections
    // passed in ready already have no such event to come.
    if (this.link.client.status === 'ready') this.resync(true);
    if (this.link.subscriber.status === 'ready') this.resubscribe();
    await this.link.start();
    await Promise.all([this.syncing, this.subscribing]);
    if (this.status !== 'ready') throw this.link.unavailable();
  }

  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    const started = this.phase === 'started';
    this.phase = 'closed';
    clearInterval(this.timer);
    this.remote?.close();
    if (started && this.link.clientUp) {
      // Forgotten at once by the others (else by their heartbeats, within replicaTimeout + heartbeatInterval).
      // "left" once unregistered (the others check the registry before acting on it).
      await this.link.timed(this.presence.leave().then(() => this.bus.publishLeft(this.link.client))).catch(() => {});
    }
    await this.link.timed(this.bus.unsubscribeAll(this.link.subscriberUp)).catch(() => {});
    await this.link.close();
  }

  peerConnected(peer: ClusterLocalPeer): void {
    this.write(() => this.presence.register(recordOf(peer)));
  }

  peerDisconnected(peer: ClusterLocalPeer): void {
    this.write(() => this.presence.unregister(peer.id));
  }

  peerRoomsChanged(peer: ClusterLocalPeer, joined: readonly string[], left: readonly string[]): void {
    this.write(() => this.presence.rooms(peer.id, joined, left)); // only the change: joining N rooms one by one costs Redis O(N)
  }

  async peer(id: string): Promise<WsMsgpackPeer | undefined> {
    const local = this.host?.localPeer(id);
    if (local) return local;
    const info = await this.command(() => this.presence.lookup(id));
    if (!info || info.replica === this.replica || !this.remote) return undefined; // ours but gone: a record not yet removed
    this.known.add(info.replica); // alive now; watched from now on: if its heartbeat stops, the calls to it fail
    return this.remote.peer(info);
  }

  async broadcast(pattern: unknown, data: unknown, selection?: WsMsgpackSelection): Promise<{ local: number; replicas: number }> {
    checkSelection(selection);
    this.check();
    // Published first: when Redis cannot take it, nobody got it (a retry then delivers nothing twice).
    const received = await this.command(() => this.bus.publishBroadcast(this.link.client, pattern, data, selection));
    const local = this.host!.broadcastLocal(pattern, data, selection);
    return { local, replicas: Math.max(0, received - 1) }; // this replica is subscribed too
  }

  async fetchPeers(selection?: WsMsgpackSelection): Promise<WsMsgpackPeerInfo[]> {
    checkSelection(selection);
    return this.command(() => this.presence.list(selection));
  }

  async count(selection?: WsMsgpackSelection): Promise<number> {
    checkSelection(selection);
    return this.command(() => this.presence.count(selection));
  }

  async publishTopic(channel: string, value: unknown): Promise<void> {
    await this.command(() => this.bus.publishTopic(this.link.client, channel, value));
  }

  subscribeTopic(channel: string, deliver: (value: unknown) => void): () => void {
    return this.bus.listen(channel, deliver);
  }

  /**
   * Sends a remote-call message; rejects with UNAVAILABLE when the engine or that replica cannot be
   * reached, RESOURCE_EXHAUSTED past the bus's limits (a call or emit while the queue is full).
   */
  private async send(replica: string, message: unknown, sized?: (bytes: number) => void): Promise<void> {
    const t = (message as { t?: unknown } | null)?.t;
    const received = await this.command(() => this.bus.sendRemote(this.link.client, replica, message, t === 'call' || t === 'emit', sized));
    if (received === 0) throw unavailable(`cluster: replica ${replica} is not reachable (it left, or its link to Redis is down)`);
  }

  /** Throws UNAVAILABLE unless the cluster is ready (the first write of presence included). */
  private check(): void {
    if (this.status !== 'ready')
      throw this.phase === 'idle' ? unavailable('the cluster engine (Redis) is unreachable: the server has not started the cluster adapter') : this.link.unavailable();
  }

  /** Runs a Redis operation when ready; its connection's failures (and no answer within commandTimeout) become UNAVAILABLE. */
  private async command<T>(run: () => Promise<T>): Promise<T> {
    this.check();
    try {
      return await this.link.timed(run());
    } catch (e) {
      throw this.link.failure(e);
    }
  }

  /** A presence write: sent now when the command connection is ready, else (or when it fails) redone in full by the next sync. */
  private write(run: () => Promise<void>): void {
    if (this.phase !== 'started' || !this.link.clientUp) {
      this.dirty = true;
      return;
    }
    run().catch((e: unknown) => {
      const first = !this.dirty; // one report until the next full write (a drop fails every write under way)
      this.dirty = true;
      if (first && this.link.clientUp) this.host?.report(asError(e, 'cluster: a presence record could not be written (written again at the next heartbeat)'));
    });
  }

  /**
   * Writes this replica's presence in full: `ready` when the command connection has just become
   * ready (the cluster is not ready until it is written), else a write failed or Redis forgot this
   * replica (the cluster stays ready meanwhile).
   */
  private resync(ready: boolean): void {
    if (ready) {
      this.synced = false;
      this.update();
    }
    const host = this.host;
    if (this.phase !== 'started' || !host || !this.link.clientUp) return;
    this.dirty = false;
    this.syncs++;
    const written = this.presence.sync(() => [...host.localPeers()].map(recordOf)); // each command timed
    this.syncing = written
      .then(
        () => {
          if (!this.link.clientUp) return;
          this.synced = true;
          this.update();
        },
        (e: unknown) => {
          this.dirty = true;
          if (this.link.clientUp) this.host?.report(asError(e, 'cluster: presence could not be written (written again at the next heartbeat)'));
        },
      )
      .finally(() => {
        this.syncs--;
        if (ready && this.synced) void this.tick(); // learn the live replicas now, not a heartbeat later
      });
  }

  /** Subscribes this replica's channels (the pub/sub connection became ready, or subscribing failed). */
  private resubscribe(): void {
    this.subscribed = false;
    this.update();
    if (this.phase !== 'started' || !this.link.subscriberUp) return;
    this.subscribes++;
    this.subscribing = this.link
      .timed(this.bus.subscribeAll())
      .then(
        () => {
          if (!this.link.subscriberUp) return;
          this.subscribed = true;
          this.update();
        },
        (e: unknown) => {
          if (this.link.subscriberUp) this.host?.report(asError(e, 'cluster: cannot subscribe the channels (tried again at the next heartbeat)'));
        },
      )
      .finally(() => this.subscribes--);
  }

  private wentDown(_error: Error): void {
    if (!this.link.clientUp) this.synced = false;
    if (!this.link.subscriberUp) this.subscribed = false;
    this.update();
  }

  /** Acts on a change of {@link status}: a drop is reported once and fails the remote calls; `ready` again is silent. */
  private update(): void {
    const now = this.status;
    const before = this.seen;
    this.seen = now;
    const recovered = before !== 'ready' && now === 'ready' && this.everReady; // ready again after a drop (not the first time)
    if (now === 'ready') this.everReady = true;
    if (before === 'ready' && now !== 'ready' && this.phase === 'started') {
      this.known.clear();
      const error = this.link.unavailable();
      this.guard('the link going down', () => this.remote?.linkDown(error));
      this.host?.report(error);
    }
    // Back: the cancels and answers the drop left unsent go out (no call waits on a lost message).
    if (recovered && this.phase === 'started') this.guard('the link coming back', () => this.remote?.linkUp());
  }

  /** The heartbeat: refreshes this replica, removes the dead ones, learns which replicas are alive. */
  private async tick(): Promise<void> {
    if (this.phase !== 'started') return;
    if (this.link.stalled) return this.link.probe(); // Redis did not answer: nothing else until it does
    if (!this.subscribed && this.subscribes === 0) this.resubscribe();
    if (this.beating || this.syncs > 0 || !this.link.clientUp) return;
    if (this.dirty || !this.synced) {
      this.resync(false);
      return;
    }
    this.beating = true;
    try {
      const beat = await this.link.timed(this.presence.heartbeat());
      if (beat.forgotten) {
        // Redis lost this replica (restarted empty, or the others took it for dead and cancelled,
        // without an answer, what they served for it): as after a drop, its own calls fail and
        // what it serves stops, both sides told.
        this.guard('the replica being forgotten', () => {
          this.remote?.linkDown(new Error('the other replicas took this one for dead (no heartbeat within replicaTimeout)'));
          this.remote?.linkUp();
        });
        this.resync(false);
      }
      const live = new Set(beat.live.filter((r) => r !== this.replica));
      for (const replica of this.known) if (!live.has(replica)) this.replicaGone(replica);
      this.known = live;
    } catch (e) {
      if (this.link.clientUp && this.phase === 'started') this.host?.report(asError(e, 'cluster: heartbeat failed'));
    } finally {
      this.beating = false;
    }
  }

  /**
   * A "left" message: acted on once the registry confirms it (a replica unregisters before it says
   * so, on the same connection). One for a replica still registered was not sent by it (written to
   * Redis by someone else): reported and ignored, so that replica's calls are not cut off silently.
   */
  private async confirmLeft(replica: string): Promise<void> {
    let still: boolean;
    try {
      still = await this.link.timed(this.presence.registered(replica));
    } catch {
      return; // Redis unreachable: the heartbeat decides
    }
    if (!still) return this.replicaGone(replica);
    this.host?.report(new Error(`cluster: ignored a "left" message for replica ${replica}, which is still registered (not sent by that replica)`));
  }

  private replicaGone(replica: string): void {
    this.known.delete(replica);
    this.guard(`replica ${replica} going down`, () => this.remote?.replicaDown(replica));
  }

  /** Runs `work`; what it throws is reported (a bad message must not break the bus). */
  private guard(what: string, work: () => void): void {
    try {
      work();
    } catch (e) {
      this.host?.report(asError(e, `cluster: handling ${what} failed`));
    }
  }
}

/**
 * The `cluster` option of a `WsMsgpackServer` on Redis: every replica given one (with the same
 * `prefix`) acts as one server for broadcast, topics, presence and calls to peers.
 *
 * ```ts
 * import { redisCluster } from 'nestjs-ws-msgpack/redis';
 * const server = new WsMsgpackServer({ port: 3001, cluster: redisCluster({ url: process.env.REDIS_URL }) });
 * ```
 *
 * Throws a `TypeError` naming the first option that cannot work.
 */
export function redisCluster(options: RedisClusterOptions = {}): WsMsgpackClusterAdapter {
  return new RedisClusterAdapter(resolveRedisClusterOptions(options));
}
