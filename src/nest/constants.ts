/**
 * Transport id of {@link WsMsgpackServer}. `Symbol.for`, so two copies of this package in one
 * process (e.g. a hoisting accident) still agree on it.
 */
export const WS_MSGPACK_TRANSPORT: unique symbol = Symbol.for('nestjs-ws-msgpack.transport') as typeof WS_MSGPACK_TRANSPORT;

/**
 * Event pattern of the hook that runs when a peer connects, before any call from it is dispatched:
 * `@WsEventPattern(WS_PEER_CONNECTED) onJoin(@WsPeer() peer: WsMsgpackPeer) { ... }`. The payload
 * is a {@link WsPeerConnected}. On a client that exposes handlers, the peer is the server.
 */
export const WS_PEER_CONNECTED = 'wsmp:peer-connected';

/**
 * Event pattern of the hook that runs when a peer's connection has ended, after every handler it
 * started was torn down. The payload is a {@link WsPeerDisconnected}; the peer's `state` is still
 * there, and is cleared once the hook returns.
 */
export const WS_PEER_DISCONNECTED = 'wsmp:peer-disconnected';

/** Payload of the {@link WS_PEER_CONNECTED} hook. */
export interface WsPeerConnected {
  /** The peer's id (`peer.id`). */
  peerId: string;
}

/** Payload of the {@link WS_PEER_DISCONNECTED} hook. */
export interface WsPeerDisconnected {
  /** The peer's id (`peer.id`). */
  peerId: string;
  /** WebSocket close code (1006: the connection dropped without a close frame). */
  code: number;
  /** Close reason. */
  reason: string;
}
