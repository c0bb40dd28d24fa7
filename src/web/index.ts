/**
 * `nestjs-ws-msgpack/client`: the client for browsers and any runtime with a standard
 * WebSocket. No `@nestjs/*`, no Node built-ins; `rxjs` is a peer dependency. The same rule as the
 * root entry: what a user writes against (the client, its options, errors, status, close codes);
 * wire-level names are in `nestjs-ws-msgpack/protocol`, which loads in a browser too.
 */
export { WsMsgpackWebClient, type WsMsgpackWebClientOptions, type WsMsgpackWebCallOptions, type WsMsgpackWebClientEvents, type WsMsgpackToken } from './web-client.js';
export type { WsMsgpackWebHandler, WsMsgpackWebCallContext } from './handlers.js';
export type { WebSocketConstructor } from './dial.js';
export { WsMsgpackStatus } from '../session/status.js';
export { WsMsgpackError, WsMsgpackErrorCode } from '../protocol/errors.js';
export { CloseCode } from '../protocol/constants.js';
export type { CloseInfo } from '../connection/connection.js';
export type { ReconnectOptions } from '../session/session.js';
export type { WsRequestStream } from '../connection/inbound-stream.js';
export type { OverflowStrategy, WsMsgpackCallHeaders } from '../protocol/frames.js';
export { ExtData, type WsMsgpackExtension, type ExtensionOptions } from '../protocol/extensions.js';
