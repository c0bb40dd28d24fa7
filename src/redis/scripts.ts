/**
 * The presence records in Redis, and the Lua scripts that change and read them, each atomic.
 *
 * Keys (`{p}` is `{prefix}`: a hash tag, so all of one cluster's keys share one slot):
 *
 * | key                   | type | holds                                                       |
 * |-----------------------|------|-------------------------------------------------------------|
 * | `{p}:replicas`        | ZSET | replica id -> its last heartbeat (ms, Redis's own clock)     |
 * | `{p}:replica:<r>`     | SET  | the ids of replica r's peers                                 |
 * | `{p}:peer:<id>`       | HASH | `r`: its replica, `u`: its user id (absent when none)       |
 * | `{p}:rooms:<id>`      | SET  | the rooms peer id is in                                      |
 * | `{p}:room:<room>`     | SET  | the ids of the peers in room                                 |
 * | `{p}:user:<user>`     | SET  | the ids of the peers of user                                 |
 *
 * A replica is alive while its heartbeat is at most `replicaTimeout` old (Redis's clock, so the
 * replicas' clocks do not matter). Queries skip the peers of dead replicas; the heartbeat of any
 * live replica deletes a dead one's records (the first one to run does it, in one script).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

const COMMON = `
local base = ARGV[1]
local replicas = KEYS[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function remove_peer(id, owner)
  local key = base .. 'peer:' .. id
  local f = redis.call('HMGET', key, 'r', 'u')
  if not f[1] or (owner and f[1] ~= owner) then return end
  redis.call('SREM', base .. 'replica:' .. f[1], id)
  if f[2] then redis.call('SREM', base .. 'user:' .. f[2], id) end
  local rooms = base .. 'rooms:' .. id
  for _, room in ipairs(redis.call('SMEMBERS', rooms)) do redis.call('SREM', base .. 'room:' .. room, id) end
  redis.call('DEL', key, rooms)
end
local function drop_replica(r)
  local set = base .. 'replica:' .. r
  for _, id in ipairs(redis.call('SMEMBERS', set)) do remove_peer(id, r) end
  redis.call('DEL', set)
  redis.call('ZREM', replicas, r)
end
-- ARGV from i on: per peer: id, '1' or '0' (has a user), user, n, then its n rooms
local function add_peers(i, replica)
  while i <= #ARGV do
    local id, user, n = ARGV[i], ARGV[i + 1] == '1' and ARGV[i + 2], tonumber(ARGV[i + 3])
    remove_peer(id)
    local key = base .. 'peer:' .. id
    redis.call('HSET', key, 'r', replica)
    redis.call('SADD', base .. 'replica:' .. replica, id)
    if user then
      redis.call('HSET', key, 'u', user)
      redis.call('SADD', base .. 'user:' .. user, id)
    end
    for k = 1, n do
      local room = ARGV[i + 3 + k]
      redis.call('SADD', base .. 'room:' .. room, id)
      redis.call('SADD', base .. 'rooms:' .. id, room)
    end
    i = i + 4 + n
  end
end
`;

/** The scripts; ARGV[1] is always the key base (`{prefix}:`), KEYS[1] the replica registry. */
const SOURCES = {
  /** ARGV: base, replica, replicaTimeout. Refreshes this replica, drops the dead ones; returns [added (1 when this replica was not registered), ...live replicas]. */
  heartbeat: `
local now, me = now_ms(), ARGV[2]
local added = redis.call('ZADD', replicas, now, me)
for _, r in ipairs(redis.call('ZRANGEBYSCORE', replicas, '-inf', '(' .. (now - tonumber(ARGV[3])))) do drop_replica(r) end
local out = { added }
for _, r in ipairs(redis.call('ZRANGE', replicas, 0, -1)) do out[#out + 1] = r end
return out`,
  /** ARGV: base, replica, peers... Replaces every record of this replica with these peers, and refreshes its heartbeat. */
  sync: `
drop_replica(ARGV[2])
redis.call('ZADD', replicas, now_ms(), ARGV[2])
add_peers(3, ARGV[2])
return 1`,
  /** ARGV: base, replica, one peer. Registers (or updates) one peer. */
  peer: `
add_peers(3, ARGV[2])
return 1`,
  /** ARGV: base, replica, id. Forgets one peer of this replica. */
  unpeer: `
remove_peer(ARGV[3], ARGV[2])
return 1`,
  /** ARGV: base, replica. Forgets this replica and its peers. */
  leave: `
drop_replica(ARGV[2])
return 1`,
  /** ARGV: base, id, replicaTimeout. The peer as [replica, hasUser, user, rooms] when its replica is alive, else nil. */
  lookup: `
local id = ARGV[2]
local f = redis.call('HMGET', base .. 'peer:' .. id, 'r', 'u')
if not f[1] then return false end
local seen = redis.call('ZSCORE', replicas, f[1])
if not seen or tonumber(seen) < now_ms() - tonumber(ARGV[3]) then return false end
return { f[1], f[2] and 1 or 0, f[2] or '', redis.call('SMEMBERS', base .. 'rooms:' .. id) }`,
  /**
   * ARGV: base, replicaTimeout, 'count' or 'list', then three lists (n, items...): to, users,
   * except (WsMsgpackSelection). The selected peers of live replicas: their number, or
   * [id, replica, hasUser, user, rooms] each.
   */
  select: `
local now = now_ms()
local live, names = {}, {}
for _, r in ipairs(redis.call('ZRANGEBYSCORE', replicas, now - tonumber(ARGV[2]), '+inf')) do
  live[r] = true
  names[#names + 1] = r
end
local i = 4
local function list()
  local n, out = tonumber(ARGV[i]), {}
  for k = 1, n do out[k] = ARGV[i + k] end
  i = i + n + 1
  return out
end
local to, users, except, mode = list(), list(), list(), ARGV[3]
if #to == 0 and #users == 0 and #except == 0 and mode == 'count' then
  local total = 0
  for _, r in ipairs(names) do total = total + redis.call('SCARD', base .. 'replica:' .. r) end
  return total
end
local function members(kind, keys)
  local set = {}
  for _, k in ipairs(keys) do
    for _, id in ipairs(redis.call('SMEMBERS', base .. kind .. k)) do set[id] = true end
  end
  return set
end
local candidates
if #to > 0 then candidates = members('room:', to) end
if #users > 0 then
  local of = members('user:', users)
  if candidates then
    for id in pairs(candidates) do if not of[id] then candidates[id] = nil end end
  else
    candidates = of
  end
end
if not candidates then candidates = members('replica:', names) end
local excluded = members('room:', except)
for _, x in ipairs(except) do excluded[x] = true end
local out, count = {}, 0
for id in pairs(candidates) do
  if not excluded[id] then
    local f = redis.call('HMGET', base .. 'peer:' .. id, 'r', 'u')
    if f[1] and live[f[1]] then
      count = count + 1
      if mode == 'list' then out[count] = { id, f[1], f[2] and 1 or 0, f[2] or '', redis.call('SMEMBERS', base .. 'rooms:' .. id) } end
    end
  end
end
if mode == 'count' then return count end
return out`,
} as const;

/** The name of one of the scripts. */
export type ScriptName = keyof typeof SOURCES;

/** A peer's record as the scripts take it. */
export interface PeerRecord {
  readonly id: string;
  readonly user: string | undefined;
  readonly rooms: Iterable<string>;
}

/** A peer's record as {@link SOURCES}' `add_peers` reads it from ARGV. */
export function peerArgs(peer: PeerRecord, out: string[] = []): string[] {
  const rooms = [...peer.rooms];
  out.push(peer.id, peer.user === undefined ? '0' : '1', peer.user ?? '', String(rooms.length), ...rooms);
  return out;
}

/**
 * Runs the scripts on one connection: EVALSHA, and EVAL when Redis does not know the script
 * (the first run, or a Redis that restarted empty).
 */
export class Scripts {
  private readonly code = new Map<ScriptName, { source: string; sha: string }>();

  constructor(
    /** `{prefix}:`: the start of every key. */
    readonly base: string,
  ) {
    for (const [name, body] of Object.entries(SOURCES) as [ScriptName, string][]) {
      const source = COMMON + body;
      this.code.set(name, { source, sha: createHash('sha1').update(source).digest('hex') });
    }
  }

  /** The replica registry's key (KEYS[1] of every script). */
  get registry(): string {
    return `${this.base}replicas`;
  }

  /**
   * Loads every script (SCRIPT LOAD). Sent before anything else on a connection that just became
   * ready, so that the EVALSHAs after it do not fall back to EVAL one by one, which could run
   * them out of the order they were sent in.
   */
  async load(redis: Redis): Promise<void> {
    await Promise.all([...this.code.values()].map(({ source }) => redis.script('LOAD', source)));
  }

  async run(redis: Redis, name: ScriptName, args: readonly (string | number)[]): Promise<unknown> {
    const { source, sha } = this.code.get(name)!;
    try {
      return await redis.evalsha(sha, 1, this.registry, this.base, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return await redis.eval(source, 1, this.registry, this.base, ...args);
    }
  }
}
