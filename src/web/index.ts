/**
 * `nestjs-ws-msgpack/client`: the client for browsers and any runtime with a standard
 * WebSocket. No `@nestjs/*`, no Node built-ins; `rxjs` is a peer dependency.
 */
export { WsMsgpackWebClient, type WsMsgpackWebClientOptions, type WsMsgpackWebCallOptions, type WsMsgpackWebClientEvents, type WsMsgpackToken } from './web-client.js';
export type { WsMsgpackWebHandler, WsMsgpackWebCallContext } from './handlers.js';
export type { WebSocketConstructor } from './dial.js';
export { WsMsgpackStatus } from '../session/status.js';
export { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
export { SUBPROTOCOL_V1, CloseCode } from '../protocol/constants.js';
export { DEFAULT_RECONNECT, type ReconnectOptions } from '../session/session.js';
export { DEFAULT_LIMITS, type ConnectionLimits, type OverflowStrategy } from '../connection/options.js';
export type { CloseInfo } from '../connection/connection.js';
export type { WsRequestStream } from '../connection/inbound-stream.js';
export type { WebSocketLike } from '../connection/socket.js';
export type { WsMsgpackCallHeaders } from '../protocol/frames.js';
export { ExtData, type WsMsgpackExtension, type ExtensionOptions } from '../protocol/extensions.js';
