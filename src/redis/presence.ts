/**
 * Presence in Redis: this replica's heartbeat and peers, and the queries over every replica's
 * (the records and scripts are in scripts.ts). Each method is one script run, atomic in Redis,
 * or, for many arguments, a few sent in order at once (Redis runs them in that order).
 */
import type { Redis } from 'ioredis';
import { listOf, type WsMsgpackPeerInfo, type WsMsgpackSelection } from '../cluster/types.js';
import { peerChunks, REMOVAL_BUDGET, roomChunks, Scripts, type PeerRecord, type ScriptName } from './scripts.js';

/** About how many arguments one presence script call carries at most (a peer with more rooms is split across calls). */
export const SYNC_ARGS = 10_000;

/** What a heartbeat learnt. */
export interface Heartbeat {
  /** True when this replica was not registered (Redis restarted empty, or the others took it for dead): its peers must be written again. */
  readonly forgotten: boolean;
  /** The live replicas, this one included. */
  readonly live: readonly string[];
}

export class Presence {
  private readonly scripts: Scripts;

  constructor(
    prefix: string,
    private readonly redis: Redis,
    /** This replica's id. */
    private readonly replica: string,
    private readonly replicaTimeout: number,
    /**
     * Bounds the wait for one command's answer (the link's `commandTimeout`). The writes of
     * several commands give each its own bound from the previous answer on, so a long write that
     * goes on progressing is not taken for a frozen Redis.
     */
    private readonly timed: <T>(command: Promise<T>) => Promise<T> = (command) => command,
  ) {
    this.scripts = new Scripts(`{${prefix}}:`);
    this.registry = `{${prefix}}:replicas`;
  }

  /** The replica registry's key (a sorted set: replica -> last heartbeat). */
  private readonly registry: string;

  /** True while `replica` is in the registry (it has not left, and has not been dropped as dead). */
  async registered(replica: string): Promise<boolean> {
    return (await this.redis.zscore(this.registry, replica)) !== null;
  }

  /** Refreshes this replica's heartbeat and deletes the records of dead replicas. */
  async heartbeat(): Promise<Heartbeat> {
    const [added, ...live] = (await this.scripts.run(this.redis, 'heartbeat', [this.replica, this.replicaTimeout, REMOVAL_BUDGET])) as [number, ...string[]];
    return { forgotten: added === 1, live };
  }

  /**
   * Loads the scripts, deletes this replica's records (a budget per call, until none remains),
   * then writes `peers()` (taken then, so that they are what is connected when they are sent)
   * and refreshes its heartbeat. The writes are all sent together: what is sent after runs after.
   */
  async sync(peers: () => Iterable<PeerRecord>): Promise<void> {
    await this.timed(this.scripts.load(this.redis));
    await this.untilDone('clear', []);
    // In chunks of about SYNC_ARGS arguments (one script call with every peer of a replica of
    // ~32,000 peers, or every room of a peer in ~130,000 rooms, overflowed the call stack): a
    // peer split across chunks included.
    const chunks = peerChunks(peers(), SYNC_ARGS);
    if (chunks.length === 0) chunks.push([]);
    await this.inOrder(chunks.map((args, i) => this.scripts.run(this.redis, i === 0 ? 'sync' : 'peer', [this.replica, ...args])));
  }

  /** Runs a deleting script (its last argument the budget) until it says none remains (1), each run timed. */
  private async untilDone(name: ScriptName, args: readonly string[]): Promise<void> {
    while ((await this.timed(this.scripts.run(this.redis, name, [this.replica, ...args, REMOVAL_BUDGET]))) !== 1);
  }

  /**
   * Registers a peer of this replica (replacing any record of it), in chunks of about SYNC_ARGS
   * arguments, all sent before this returns.
   */
  async register(peer: PeerRecord): Promise<void> {
    await this.runAll('peer', peerChunks([peer], SYNC_ARGS), []);
  }

  /**
   * Adds `joined` to and removes `left` from the rooms of a peer of this replica, while its record
   * is this replica's (else nothing changes: the peer is gone, or not ours). In chunks of about
   * SYNC_ARGS arguments, all sent before this returns (joined rooms first).
   */
  async rooms(id: string, joined: readonly string[], left: readonly string[]): Promise<void> {
    await this.runAll('rooms', roomChunks(joined, left, SYNC_ARGS), [id]);
  }

  /** Sends one script call per chunk, in order, without waiting between them; resolves when all ran. */
  private async runAll(name: 'peer' | 'rooms', chunks: readonly string[][], head: readonly string[]): Promise<void> {
    await this.inOrder(chunks.map((args) => this.scripts.run(this.redis, name, [this.replica, ...head, ...args])));
  }

  /**
   * Waits for commands already sent, one after the other, each within {@link timed} from the
   * previous answer; the first failure rejects (the later ones' failures are then not reported twice).
   */
  private async inOrder(sent: Promise<unknown>[]): Promise<void> {
    for (const command of sent) command.catch(() => {});
    for (const command of sent) await this.timed(command);
  }

  /** Forgets a peer of this replica (its rooms a budget at a time). */
  async unregister(id: string): Promise<void> {
    await this.untilDone('unpeer', [id]);
  }

  /** Forgets this replica and all its peers (a budget at a time). */
  async leave(): Promise<void> {
    await this.untilDone('leave', []);
  }

  /** The peer with this id, when a live replica holds it. */
  async lookup(id: string): Promise<WsMsgpackPeerInfo | undefined> {
    const found = (await this.scripts.run(this.redis, 'lookup', [id, this.replicaTimeout])) as [string, number, string, string[]] | null;
    return found ? { id, replica: found[0], user: found[1] === 1 ? found[2] : undefined, rooms: found[3].sort() } : undefined;
  }

  /** The selected peers of the live replicas. */
  async list(selection: WsMsgpackSelection | undefined): Promise<WsMsgpackPeerInfo[]> {
    const rows = (await this.scripts.run(this.redis, 'select', [this.replicaTimeout, 'list', ...selectionArgs(selection)])) as [string, string, number, string, string[]][];
    return rows.map(([id, replica, hasUser, user, rooms]) => ({ id, replica, user: hasUser === 1 ? user : undefined, rooms: rooms.sort() }));
  }

  /** How many peers {@link list} would give. */
  async count(selection: WsMsgpackSelection | undefined): Promise<number> {
    return (await this.scripts.run(this.redis, 'select', [this.replicaTimeout, 'count', ...selectionArgs(selection)])) as number;
  }
}

/** A selection as the `select` script reads it: three lists, each its length then its items. */
function selectionArgs(selection: WsMsgpackSelection | undefined): string[] {
  const out: string[] = [];
  for (const list of [selection?.to, selection?.users, selection?.except]) {
    const items = listOf(list).map(String);
    out.push(String(items.length), ...items);
  }
  return out;
}

/** Throws a TypeError unless `selection` is a selection (each field: a string or a list of strings). */
export function checkSelection(selection: WsMsgpackSelection | undefined): void {
  if (selection === undefined) return;
  if (typeof selection !== 'object' || selection === null)
    throw new TypeError(`nestjs-ws-msgpack: a selection must be an object ({ to, users, except }), got ${String(selection)}`);
  for (const key of ['to', 'users', 'except'] as const) {
    const v: unknown = selection[key];
    if (v !== undefined && typeof v !== 'string' && !(Array.isArray(v) && v.every((x) => typeof x === 'string'))) {
      throw new TypeError(`nestjs-ws-msgpack: a selection's ${key} must be a string or a list of strings, got ${JSON.stringify(v) ?? String(v)}`);
    }
  }
}
