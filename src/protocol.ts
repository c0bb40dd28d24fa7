/**
 * `nestjs-ws-msgpack/protocol`: the wire-level names, for code that speaks the protocol itself (a
 * raw WebSocket client, a proxy, a conformance test, a cluster engine adapter) or tunes the limits by their defaults.
 * A Nest app needs none of them: the root entry has what it writes against. No `@nestjs/*`, no
 * Node built-ins, no `ws`: it loads in a browser too.
 *
 * It sits beside `src/index.ts`, not in `src/protocol/`, because it gathers names from three
 * layers (protocol, connection, session, peer, cluster; docs/DESIGN.md, "Layers").
 */
export { SUBPROTOCOL_V1, PING_PATTERN, BEARER_PROTOCOL_PREFIX, NO_MESSAGE_HANDLER, bearerProtocol } from './protocol/constants.js';
export { OVERFLOW_STRATEGIES } from './protocol/frames.js';
export type { DecoderLimits } from './protocol/codec.js';
export { DEFAULT_LIMITS, type ConnectionLimits } from './connection/options.js';
export type { Connection, ConnectionOptions } from './connection/connection.js';
export type { WebSocketLike } from './connection/socket.js';
export { DEFAULT_RECONNECT } from './session/session.js';
// What a cluster engine adapter implements against (redisCluster is one).
export type { ClusterHost, ClusterLocalPeer } from './cluster/adapter.js';
export type { WsMsgpackTopicBus } from './peer/topics.js';
