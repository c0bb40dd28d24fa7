/**
 * `nestjs-ws-msgpack`: what a Nest app writes against. The wire-level names (subprotocol,
 * keep-alive pattern, default limits, the connection core's types) are in
 * `nestjs-ws-msgpack/protocol` (src/protocol.ts); the browser client is `nestjs-ws-msgpack/client`,
 * the terminus health indicator `nestjs-ws-msgpack/terminus`.
 */
// The server, its options and module.
export { WsMsgpackServer, type WsMsgpackServerEvents } from './server/ws-msgpack.server.js';
export type { WsMsgpackServerOptions, WsMsgpackAllowedOrigins } from './server/options.js';
export { WsMsgpackServerModule, InjectWsMsgpackServer, type WsMsgpackServerModuleExtras, type WsMsgpackServerAsyncOptions } from './server/server.module.js';
export { WsMsgpackUpgradeError } from './node/upgrade-gate.js';
export { bearerToken } from './node/bearer.js';
// The client, its options and module.
export { WsMsgpackClient, type WsMsgpackClientEvents } from './client/ws-msgpack.client.js';
export { WsMsgpackClientHandlers, type WsMsgpackClientHandlersEvents, type WsMsgpackExposeOptions } from './client/client-handlers.js';
export {
  WsMsgpackClientModule,
  InjectWsMsgpackClient,
  type WsMsgpackClientRegistration,
  type WsMsgpackClientAsyncRegistration,
  type WsMsgpackClientModuleExtras,
} from './client/client.module.js';
export type { WsMsgpackClientOptions, WsMsgpackHeaders, ReconnectOptions, WsMsgpackIterateOptions } from './client/options.js';
// Handlers: context, record builder, decorators, the Nest transport id and peer events.
export { WsMsgpackContext, type WsMsgpackContextArgs, type WsMsgpackCallInfo } from './nest/ws-msgpack.context.js';
export { WsMsgpackRecord, WsMsgpackRecordBuilder, type WsMsgpackCallOptions } from './peer/record.js';
export { WsMessagePattern, WsEventPattern } from './decorators/patterns.js';
export { WsHeaders, WsPeer, WsSignal, WsSocket, WsUpgradeHeaders, WsUser, type ParamPipe } from './decorators/params.js';
export { WS_MSGPACK_TRANSPORT, WS_PEER_CONNECTED, WS_PEER_DISCONNECTED, type WsPeerConnected, type WsPeerDisconnected } from './nest/constants.js';
export type { WsRequestStream } from './connection/inbound-stream.js';
export { wsConcatMap, wsMergeMap } from './connection/pull-map.js';
export type { OverflowStrategy, WsMsgpackCallHeaders } from './protocol/frames.js';
// Peers and topics.
export type { WsMsgpackPeer, WsMsgpackHandshake } from './peer/peer.js';
export type { WsMsgpackPeerDirectory, WsMsgpackBroadcastTarget } from './peer/directory.js';
export type { WsMsgpackSelection } from './peer/selection.js';
// Replicas (the cluster option; the Redis adapter is nestjs-ws-msgpack/redis).
export type { WsMsgpackCluster, WsMsgpackClusterStatus, WsMsgpackPeerInfo } from './cluster/types.js';
export type { WsMsgpackClusterAdapter } from './cluster/adapter.js';
export { WsMsgpackTopics, type WsMsgpackTopicsOptions } from './peer/topics.js';
// Errors, status, close codes.
export { WsMsgpackError, WsMsgpackErrorCode } from './protocol/errors.js';
export { WsMsgpackStatus } from './session/status.js';
export { CloseCode } from './protocol/constants.js';
export type { CloseInfo } from './connection/connection.js';
// Custom types on the wire.
export { ExtData, type WsMsgpackExtension, type ExtensionOptions } from './protocol/extensions.js';
// Tracing.
export { configureWsMsgpackTracing, WS_MSGPACK_TRACER_NAME } from './tracing/configure.js';
export type { WsMsgpackTracingOptions, WsMsgpackTracerProvider, WsMsgpackOtelApi } from './tracing/options.js';
