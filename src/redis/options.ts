import type { Redis } from 'ioredis';
import { optionError } from '../connection/options.js';
import { MAX_TIMER_MS } from '../connection/timers.js';

/**
 * Options of {@link redisCluster}: where Redis is (a URL, or `ioredis` connections you already
 * have), how keys and channels are named, and how fast a dead replica is forgotten.
 *
 * A replica that stops heartbeating (killed, frozen, cut off from Redis) drops out of presence
 * (`fetchPeers`, `count`, `peer`) once `replicaTimeout` has passed since its last heartbeat, and
 * its records are deleted by the next live replica's heartbeat: within `replicaTimeout +
 * heartbeatInterval` (plus one Redis round trip). A replica that closes unregisters at once.
 */
export interface RedisClusterOptions {
  /**
   * The Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS). Two connections
   * are opened: one for commands, one for pub/sub. Defaults to `redis://127.0.0.1:6379` when no
   * `client` is given either.
   */
  url?: string;
  /**
   * An `ioredis` connection you already have, for commands (Redis 7 or later: sharded pub/sub).
   * It is not closed by the server. Give it `enableOfflineQueue: false` if you want commands
   * to fail at once while Redis is down, as the adapter's own connections do (it checks the
   * connection's status before each operation either way). Defaults to a connection to `url`.
   */
  client?: Redis;
  /**
   * An `ioredis` connection for pub/sub only (a subscribed connection can do nothing else). It
   * is not closed by the server (its channels are unsubscribed). Defaults to `client.duplicate()`
   * when `client` is given, else a second connection to `url`.
   */
  subscriber?: Redis;
  /**
   * What every key and channel name starts with, so several apps (or environments) can share one
   * Redis: replicas with the same prefix form one cluster. Letters, digits and `_ - . :` only.
   * Defaults to `'wsmp'`.
   */
  prefix?: string;
  /** How often a replica tells Redis it is alive (and removes replicas that stopped). Defaults to 5,000 ms. */
  heartbeatInterval?: number;
  /**
   * How long since its last heartbeat a replica is taken for dead: its peers leave presence, and
   * calls to them fail with UNAVAILABLE. Greater than `heartbeatInterval` (twice it at least is
   * wise: one late heartbeat should not kill a replica). Defaults to 15,000 ms, or twice
   * `heartbeatInterval` when that is more.
   */
  replicaTimeout?: number;
  /**
   * How long a command may wait for Redis's answer before the link counts as down: the operation
   * fails with UNAVAILABLE, `status` becomes `'down'` (cross-replica calls under way fail
   * UNAVAILABLE, as in an outage), and the link is probed with PING until Redis answers again,
   * when it is `'ready'` again by itself. This is what notices a Redis that is frozen (stopped,
   * paused, a network path that drops packets without closing the connection), which TCP would
   * take minutes to. It applies to the connections passed in (`client`, `subscriber`) too. An
   * idle replica notices within `heartbeatInterval + commandTimeout`. Defaults to 2,000 ms.
   */
  commandTimeout?: number;
  /**
   * The largest message one replica sends the others, encoded: a broadcast, a topic value, a
   * call's or an event's payload to a peer on another replica, one item or the error of a
   * response (with a few bytes of envelope). A larger one is not sent: `broadcast()` and topic
   * publishes reject, the call or emit fails, and a response item or error fails its call, each
   * with RESOURCE_EXHAUSTED. Redis's `client-output-buffer-limit pubsub` (32 MiB hard by default)
   * must take several of them (see the replicas guide for the sum). Defaults to 4 MiB (4,194,304).
   */
  maxMessageBytes?: number;
  /**
   * Bytes of response items (and other answers) a replica may have sent another replica before
   * that replica says it read them (it does every 64 KiB): past it, the response streams served
   * for that replica wait, each holding the one item it pulled, until it does. This bounds what
   * Redis buffers for a replica's pub/sub connection (about this much per other replica, plus
   * one message), as item credit alone cannot with large items. More than 65,536. Defaults to
   * 2 MiB (2,097,152).
   */
  maxBytesInFlight?: number;
  /**
   * Bytes of broadcasts, topic values, and calls and emits to peers on other replicas that a
   * replica may have published and Redis not yet taken (its command connection's queue). One that
   * would pass it is refused at once with RESOURCE_EXHAUSTED (try again later; one alone always
   * goes); answers to other replicas' calls are bounded by `maxBytesInFlight` instead and always
   * go. The heartbeat shares that connection: without this, a flood of publishes would delay it
   * past `commandTimeout`, and Redis would hold it all for every subscriber. Defaults to 4 MiB
   * (4,194,304).
   */
  maxQueuedBytes?: number;
}

/** The defaults of {@link RedisClusterOptions}. */
export const REDIS_CLUSTER_DEFAULTS = Object.freeze({
  url: 'redis://127.0.0.1:6379',
  prefix: 'wsmp',
  heartbeatInterval: 5000,
  replicaTimeout: 15_000,
  commandTimeout: 2000,
  maxMessageBytes: 4 * 1024 * 1024,
  maxBytesInFlight: 2 * 1024 * 1024,
  maxQueuedBytes: 4 * 1024 * 1024,
});

/** {@link RedisClusterOptions} checked, with the defaults filled in. */
export interface ResolvedRedisClusterOptions {
  readonly url: string;
  readonly client: Redis | undefined;
  readonly subscriber: Redis | undefined;
  readonly prefix: string;
  readonly heartbeatInterval: number;
  readonly replicaTimeout: number;
  readonly commandTimeout: number;
  readonly maxMessageBytes: number;
  readonly maxBytesInFlight: number;
  readonly maxQueuedBytes: number;
}

const PREFIX = /^[A-Za-z0-9_\-.:]{1,64}$/;

function isRedis(value: unknown): value is Redis {
  const r = value as { status?: unknown; duplicate?: unknown; publish?: unknown } | null;
  return typeof r === 'object' && r !== null && typeof r.status === 'string' && typeof r.duplicate === 'function' && typeof r.publish === 'function';
}

function checkBytes(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) throw optionError(name, `a whole number of bytes from ${min}`, value);
  return value;
}

function checkMs(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMER_MS) {
    throw optionError(name, `a whole number of ms from 1 to ${MAX_TIMER_MS}`, value);
  }
  return value;
}

/** Checks the options; throws a `TypeError` naming the first one that cannot work. */
export function resolveRedisClusterOptions(options: RedisClusterOptions = {}): ResolvedRedisClusterOptions {
  if (typeof options !== 'object' || options === null) throw optionError('(redisCluster options)', 'an object', options);
  const known = ['url', 'client', 'subscriber', 'prefix', 'heartbeatInterval', 'replicaTimeout', 'commandTimeout', 'maxMessageBytes', 'maxBytesInFlight', 'maxQueuedBytes'];
  for (const key of Object.keys(options))
    if (!known.includes(key)) throw optionError(key, `one of ${known.join(', ')} (not a redisCluster option)`, options[key as keyof RedisClusterOptions]);
  const { url, client, subscriber, prefix = REDIS_CLUSTER_DEFAULTS.prefix } = options;
  if (url !== undefined && (typeof url !== 'string' || !/^rediss?:\/\//.test(url))) throw optionError('url', 'a redis:// or rediss:// URL', url);
  if (url !== undefined && client !== undefined) throw optionError('url', 'left out when `client` is given (the client says where Redis is)', url);
  for (const [name, value] of [
    ['client', client],
    ['subscriber', subscriber],
  ] as const) {
    if (value !== undefined && !isRedis(value)) throw optionError(name, 'an ioredis Redis instance', typeof value === 'object' && value !== null ? 'another object' : value);
  }
  if (subscriber !== undefined && subscriber === client)
    throw optionError('subscriber', 'a connection of its own, not `client` (a subscribed connection can run no other command)', 'the client');
  if (typeof prefix !== 'string' || !PREFIX.test(prefix)) throw optionError('prefix', '1 to 64 letters, digits, _ - . or :', prefix);
  const heartbeatInterval = checkMs('heartbeatInterval', options.heartbeatInterval, REDIS_CLUSTER_DEFAULTS.heartbeatInterval);
  const replicaTimeout = checkMs('replicaTimeout', options.replicaTimeout, Math.max(REDIS_CLUSTER_DEFAULTS.replicaTimeout, 2 * heartbeatInterval));
  if (replicaTimeout <= heartbeatInterval) throw optionError('replicaTimeout', `greater than heartbeatInterval (${heartbeatInterval} ms)`, replicaTimeout);
  const commandTimeout = checkMs('commandTimeout', options.commandTimeout, REDIS_CLUSTER_DEFAULTS.commandTimeout);
  const maxMessageBytes = checkBytes('maxMessageBytes', options.maxMessageBytes, REDIS_CLUSTER_DEFAULTS.maxMessageBytes, 1024);
  const maxBytesInFlight = checkBytes('maxBytesInFlight', options.maxBytesInFlight, REDIS_CLUSTER_DEFAULTS.maxBytesInFlight, 65_537);
  const maxQueuedBytes = checkBytes('maxQueuedBytes', options.maxQueuedBytes, REDIS_CLUSTER_DEFAULTS.maxQueuedBytes, 1024);
  return {
    url: url ?? REDIS_CLUSTER_DEFAULTS.url,
    client,
    subscriber,
    prefix,
    heartbeatInterval,
    replicaTimeout,
    commandTimeout,
    maxMessageBytes,
    maxBytesInFlight,
    maxQueuedBytes,
  };
}
