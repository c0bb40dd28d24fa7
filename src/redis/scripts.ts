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
 * live replica deletes a dead one's records (the first one to run does it).
 *
 * Deletions are budgeted: one script call removes at most {@link REMOVAL_BUDGET} room memberships
 * and peers, and says whether more remain (the caller then calls again; a heartbeat goes on at the
 * next one), so that a peer in hundreds of thousands of rooms never blocks Redis for long.
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
-- Removes peer id's records when its replica is owner (any replica when owner is nil), at most
-- budget room memberships at a time: the budget left (the peer counts one), or -1 when rooms
-- remain (its record stays until the last call). A peer that is not owner's costs nothing.
local function remove_peer(id, owner, budget)
  local key = base .. 'peer:' .. id
  local f = redis.call('HMGET', key, 'r', 'u')
  if not f[1] or (owner and f[1] ~= owner) then return budget end
  local rooms = base .. 'rooms:' .. id
  local n = redis.call('SCARD', rooms)
  if n >= budget then
    for _, room in ipairs(redis.call('SPOP', rooms, budget)) do redis.call('SREM', base .. 'room:' .. room, id) end
    return -1
  end
  for _, room in ipairs(redis.call('SMEMBERS', rooms)) do redis.call('SREM', base .. 'room:' .. room, id) end
  redis.call('SREM', base .. 'replica:' .. f[1], id)
  if f[2] then redis.call('SREM', base .. 'user:' .. f[2], id) end
  redis.call('DEL', key, rooms)
  return budget - n - 1
end
-- Removes replica r's peers within budget: the budget left once none remains (its set is deleted,
-- and its registration unless keep), or -1 (call again).
local function drop_replica(r, budget, keep)
  local set = base .. 'replica:' .. r
  while true do
    local batch = redis.call('SRANDMEMBER', set, math.min(math.max(budget, 1), 1000))
    if #batch == 0 then break end
    for _, id in ipairs(batch) do
      local owner = redis.call('HGET', base .. 'peer:' .. id, 'r')
      if owner ~= r then
        redis.call('SREM', set, id) -- not r's any more: only its place in r's set is stale
        budget = budget - 1
      else
        budget = remove_peer(id, r, budget)
      end
      if budget <= 0 then return -1 end
    end
  end
  redis.call('DEL', set)
  if not keep then redis.call('ZREM', replicas, r) end
  return budget
end
local function add_room(id, room)
  redis.call('SADD', base .. 'room:' .. room, id)
  redis.call('SADD', base .. 'rooms:' .. id, room)
end
local function remove_room(id, room)
  redis.call('SREM', base .. 'room:' .. room, id)
  redis.call('SREM', base .. 'rooms:' .. id, room)
end
-- ARGV from i on: pieces of peers (PEER_PIECE_HEAD + n arguments each): id, then '1' (a new
-- record: any record of id is removed first, then r and u are set) or '0' (more rooms of a record
-- written by an earlier piece of this same sync or register: added only while that record is
-- still this replica's), then '1' or '0' (has a user; read only when new), user, n, its n rooms
local function add_peers(i, replica)
  while i <= #ARGV do
    local id, is_new, n = ARGV[i], ARGV[i + 1] == '1', tonumber(ARGV[i + 4])
    local key = base .. 'peer:' .. id
    local ours = true
    if is_new then
      remove_peer(id, nil, math.huge)
      redis.call('HSET', key, 'r', replica)
      redis.call('SADD', base .. 'replica:' .. replica, id)
      if ARGV[i + 2] == '1' then
        redis.call('HSET', key, 'u', ARGV[i + 3])
        redis.call('SADD', base .. 'user:' .. ARGV[i + 3], id)
      end
    else
      ours = redis.call('HGET', key, 'r') == replica
    end
    if ours then
      for k = i + 5, i + 4 + n do add_room(id, ARGV[k]) end
    end
    i = i + 5 + n
  end
end
`;

/** The scripts; ARGV[1] is always the key base (`{prefix}:`), KEYS[1] the replica registry. */
const SOURCES = {
  /**
   * ARGV: base, replica, replicaTimeout, budget. Refreshes this replica, deletes the records of
   * dead ones (within budget: the rest at the next heartbeat); returns [added (1 when this replica
   * was not registered), ...live replicas].
   */
  heartbeat: `
local now, me = now_ms(), ARGV[2]
local added = redis.call('ZADD', replicas, now, me)
local budget = tonumber(ARGV[4])
for _, r in ipairs(redis.call('ZRANGEBYSCORE', replicas, '-inf', '(' .. (now - tonumber(ARGV[3])))) do
  budget = drop_replica(r, budget, false)
  if budget < 0 then break end
end
local out = { added }
for _, r in ipairs(redis.call('ZRANGEBYSCORE', replicas, now - tonumber(ARGV[3]), '+inf')) do out[#out + 1] = r end
return out`,
  /**
   * ARGV: base, replica, budget. Refreshes this replica's heartbeat and deletes its records
   * within budget: 1 when none remains, else 0 (call again).
   */
  clear: `
redis.call('ZADD', replicas, now_ms(), ARGV[2])
return drop_replica(ARGV[2], tonumber(ARGV[3]), true) < 0 and 0 or 1`,
  /**
   * ARGV: base, replica, then pieces of peers (`add_peers`, {@link peerChunks}). Refreshes this
   * replica's heartbeat and writes these peers (after `clear`: this replica's records, anew).
   */
  sync: `
redis.call('ZADD', replicas, now_ms(), ARGV[2])
add_peers(3, ARGV[2])
return 1`,
  /**
   * ARGV: base, replica, then pieces of peers (`add_peers`, {@link peerChunks}). Registers peers
   * (a piece flagged new replaces that peer's record), or adds rooms to the records of earlier
   * pieces (the later chunks of a sync or register).
   */
  peer: `
add_peers(3, ARGV[2])
return 1`,
  /**
   * ARGV: base, replica, id, n, the n rooms it joined, then the rooms it left (every argument
   * after those; {@link roomChunks}). Adds and removes rooms of one peer, only while its record is
   * this replica's (else the peer is gone, or not ours: nothing changes); 1 when changed, else 0.
   */
  rooms: `
local me, id = ARGV[2], ARGV[3]
if redis.call('HGET', base .. 'peer:' .. id, 'r') ~= me then return 0 end
local n = tonumber(ARGV[4])
for k = 5, 4 + n do add_room(id, ARGV[k]) end
for k = 5 + n, #ARGV do remove_room(id, ARGV[k]) end
return 1`,
  /** ARGV: base, replica, id, budget. Forgets one peer of this replica (within budget): 1 when done, else 0 (call again). */
  unpeer: `
return remove_peer(ARGV[3], ARGV[2], tonumber(ARGV[4])) < 0 and 0 or 1`,
  /** ARGV: base, replica, budget. Forgets this replica and its peers (within budget): 1 when done, else 0 (call again). */
  leave: `
return drop_replica(ARGV[2], tonumber(ARGV[3]), false) < 0 and 0 or 1`,
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

/** How many room memberships and peers one script call deletes at most. */
export const REMOVAL_BUDGET = 10_000;

/** The name of one of the scripts. */
export type ScriptName = keyof typeof SOURCES;

/** A peer's record as the scripts take it. */
export interface PeerRecord {
  readonly id: string;
  readonly user: string | undefined;
  readonly rooms: Iterable<string>;
}

/** The arguments of a piece of a peer before its rooms (`add_peers`): id, new, has a user, user, n. */
export const PEER_PIECE_HEAD = 5;

/**
 * Peers as `add_peers` reads them, in lists of at most `most` arguments each (one list per script
 * call, `most` > {@link PEER_PIECE_HEAD}). A peer with more rooms than fit is split: its first
 * piece (flag '1') writes its record and first rooms, the next pieces (flag '0'), in this list or
 * the following ones, add the rest. No peer or room is lost or repeated; the order is kept.
 */
export function peerChunks(peers: Iterable<PeerRecord>, most: number): string[][] {
  if (!(most > PEER_PIECE_HEAD)) throw new RangeError(`nestjs-ws-msgpack: a chunk must hold more than ${PEER_PIECE_HEAD} arguments, got ${most}`);
  const chunks: string[][] = [];
  let chunk: string[] = [];
  for (const peer of peers) {
    const rooms = [...peer.rooms];
    let next = 0;
    let piece: 'new' | 'more' = 'new';
    do {
      // This list has space for the head and one room at least (or a peer with none), else the next one.
      if (most - chunk.length <= PEER_PIECE_HEAD && chunk.length > 0) {
        chunks.push(chunk);
        chunk = [];
      }
      const take = Math.min(rooms.length - next, most - chunk.length - PEER_PIECE_HEAD);
      chunk.push(peer.id, piece === 'new' ? '1' : '0', peer.user === undefined ? '0' : '1', peer.user ?? '', String(take));
      for (let k = next; k < next + take; k++) chunk.push(rooms[k]!);
      next += take;
      piece = 'more';
    } while (next < rooms.length);
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * A change of one peer's rooms as the `rooms` script reads it after its id: n, n rooms joined,
 * then rooms left; in lists of at most `most` arguments each (`most` > 1), joined rooms first,
 * in order. None when nothing changes.
 */
export function roomChunks(joined: readonly string[], left: readonly string[], most: number): string[][] {
  if (!(most > 1)) throw new RangeError(`nestjs-ws-msgpack: a chunk must hold more than 1 argument, got ${most}`);
  const chunks: string[][] = [];
  let j = 0;
  let l = 0;
  while (j < joined.length || l < left.length) {
    const adds = Math.min(joined.length - j, most - 1);
    const removes = Math.min(left.length - l, most - 1 - adds);
    const chunk = [String(adds)];
    for (let k = j; k < j + adds; k++) chunk.push(joined[k]!);
    for (let k = l; k < l + removes; k++) chunk.push(left[k]!);
    j += adds;
    l += removes;
    chunks.push(chunk);
  }
  return chunks;
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
