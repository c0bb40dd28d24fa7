/**
 * `nestjs-ws-msgpack/redis`: replicas of a server acting as one over Redis (7 or later): broadcast,
 * topics, presence and calls to a peer on any replica. A subpath of its own, so the main entry never
 * loads `ioredis` (an optional peer dependency, needed only here).
 */
export { redisCluster } from './redis-cluster.js';
export type { RedisClusterOptions } from './options.js';
