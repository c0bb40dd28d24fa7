import type { WsMsgpackPeer } from './peer.js';

/**
 * Which peers a broadcast or a presence query selects. Plain data, so it crosses the bus to the
 * other replicas (a filter function cannot). Every field narrows the selection; none selects all.
 */
export interface WsMsgpackSelection {
  /** Only peers in at least one of these rooms ({@link WsMsgpackPeer.join}). */
  readonly to?: string | readonly string[];
  /** Only peers whose user id ({@link userIdOf}) is one of these. */
  readonly users?: string | readonly string[];
  /** Not the peers in any of these rooms, nor the peers with these ids. */
  readonly except?: string | readonly string[];
}

/**
 * The user id of an authenticated identity, as selections and presence use it: a string or number
 * user as it is, else its `id` or `sub` field (a JWT's subject) when that is a string or a number.
 */
export function userIdOf(user: unknown): string | undefined {
  if (typeof user === 'string') return user;
  if (typeof user === 'number') return String(user);
  if (typeof user === 'object' && user !== null) {
    const { id, sub } = user as { id?: unknown; sub?: unknown };
    for (const v of [id, sub]) if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  return undefined;
}

/** `value` as a list (a selection field may be one string or several). */
export function listOf(value: string | readonly string[] | undefined): readonly string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

/** True when a peer with this id, user and rooms is selected. */
export function selects(selection: WsMsgpackSelection | undefined, peer: { id: string; user: string | undefined; rooms: ReadonlySet<string> }): boolean {
  if (!selection) return true;
  const to = listOf(selection.to);
  if (to.length > 0 && !to.some((room) => peer.rooms.has(room))) return false;
  const users = listOf(selection.users);
  if (users.length > 0 && (peer.user === undefined || !users.includes(peer.user))) return false;
  const except = listOf(selection.except);
  return !except.some((x) => x === peer.id || peer.rooms.has(x));
}

/** True when `selection` selects this connected peer. */
export function selectsPeer(selection: WsMsgpackSelection | undefined, peer: WsMsgpackPeer): boolean {
  return selects(selection, { id: peer.id, user: userIdOf(peer.user), rooms: peer.rooms });
}
