// A consumer of the published types: compiled against dist/ (what npm users get) with
// skipLibCheck off, so an error in this package's .d.ts files (a type it does not export, a
// missing dependency's types) fails `npm run types:consumer`. Not run, only type-checked.
//
// This file is an ES module (the package is "type": "module"): it reads the "import" condition
// of every subpath (dist/esm). consumer.cts reads the "require" condition (dist/cjs), and again
// with Node10 resolution ("typesVersions"), as a CommonJS Nest 11 app does. Each file imports
// every name of every subpath: a name that goes away fails here.
import { firstValueFrom } from 'rxjs';
import {
  // The server, its options and module.
  WsMsgpackServer,
  type WsMsgpackServerEvents,
  type WsMsgpackServerOptions,
  type WsMsgpackAllowedOrigins,
  WsMsgpackServerModule,
  InjectWsMsgpackServer,
  type WsMsgpackServerModuleExtras,
  type WsMsgpackServerAsyncOptions,
  WsMsgpackUpgradeError,
  bearerToken,
  // The client, its options and module.
  WsMsgpackClient,
  type WsMsgpackClientEvents,
  WsMsgpackClientHandlers,
  type WsMsgpackClientHandlersEvents,
  type WsMsgpackExposeOptions,
  WsMsgpackClientModule,
  InjectWsMsgpackClient,
  type WsMsgpackClientRegistration,
  type WsMsgpackClientAsyncRegistration,
  type WsMsgpackClientModuleExtras,
  type WsMsgpackClientOptions,
  type WsMsgpackHeaders,
  type ReconnectOptions,
  type WsMsgpackIterateOptions,
  // Handlers.
  WsMsgpackContext,
  type WsMsgpackContextArgs,
  type WsMsgpackCallInfo,
  WsMsgpackRecord,
  WsMsgpackRecordBuilder,
  type WsMsgpackCallOptions,
  WsMessagePattern,
  WsEventPattern,
  WsHeaders,
  WsPeer,
  WsSignal,
  WsSocket,
  WsUpgradeHeaders,
  WsUser,
  type ParamPipe,
  WS_MSGPACK_TRANSPORT,
  WS_PEER_CONNECTED,
  WS_PEER_DISCONNECTED,
  type WsPeerConnected,
  type WsPeerDisconnected,
  type WsRequestStream,
  type OverflowStrategy,
  type WsMsgpackCallHeaders,
  // Peers and topics.
  type WsMsgpackPeer,
  type WsMsgpackHandshake,
  type WsMsgpackPeerDirectory,
  WsMsgpackTopics,
  // Errors, status, close codes.
  WsMsgpackError,
  WsMsgpackErrorCode,
  WsMsgpackStatus,
  CloseCode,
  type CloseInfo,
  // Custom types on the wire.
  ExtData,
  type WsMsgpackExtension,
  type ExtensionOptions,
  // Tracing.
  configureWsMsgpackTracing,
  WS_MSGPACK_TRACER_NAME,
  type WsMsgpackTracingOptions,
  type WsMsgpackTracerProvider,
  type WsMsgpackOtelApi,
} from 'nestjs-ws-msgpack';
import {
  SUBPROTOCOL_V1,
  PING_PATTERN,
  BEARER_PROTOCOL_PREFIX,
  NO_MESSAGE_HANDLER,
  bearerProtocol,
  OVERFLOW_STRATEGIES,
  DEFAULT_LIMITS,
  DEFAULT_RECONNECT,
  type DecoderLimits,
  type ConnectionLimits,
  type Connection,
  type ConnectionOptions,
  type WebSocketLike,
} from 'nestjs-ws-msgpack/protocol';
import { WsMsgpackHealthIndicator, type WsMsgpackHealthCheckOptions } from 'nestjs-ws-msgpack/terminus';
import { redisCluster, type RedisClusterOptions } from 'nestjs-ws-msgpack/redis';
import { Redis } from 'ioredis';
import {
  WsMsgpackWebClient,
  type WsMsgpackWebClientOptions,
  type WsMsgpackWebCallOptions,
  type WsMsgpackWebClientEvents,
  type WsMsgpackToken,
  type WsMsgpackWebHandler,
  type WsMsgpackWebCallContext,
  type WebSocketConstructor,
  WsMsgpackStatus as WebStatus,
  WsMsgpackError as WebError,
  WsMsgpackErrorCode as WebErrorCode,
  CloseCode as WebCloseCode,
  type CloseInfo as WebCloseInfo,
  type ReconnectOptions as WebReconnectOptions,
  type WsRequestStream as WebRequestStream,
  type OverflowStrategy as WebOverflowStrategy,
  type WsMsgpackCallHeaders as WebCallHeaders,
  ExtData as WebExtData,
  type WsMsgpackExtension as WebExtension,
  type ExtensionOptions as WebExtensionOptions,
} from 'nestjs-ws-msgpack/client';

// The wire-level names are in nestjs-ws-msgpack/protocol only.
// @ts-expect-error not in the root entry
import { SUBPROTOCOL_V1 as _rootSubprotocol } from 'nestjs-ws-msgpack';
// @ts-expect-error not in the browser entry
import { DEFAULT_LIMITS as _webLimits } from 'nestjs-ws-msgpack/client';

const overflow: OverflowStrategy = 'latest';
const serverOptions: WsMsgpackServerOptions = { port: 0, overflow, maxStreamBufferBytes: DEFAULT_LIMITS.maxStreamBufferBytes * 2 };
const limits: ConnectionLimits = serverOptions;
const decoderLimits: Partial<DecoderLimits> = { maxDepth: 32 };
const clientOptions: WsMsgpackClientOptions = {
  url: 'ws://127.0.0.1:1',
  window: 16,
  wsOptions: { rejectUnauthorized: true },
  reconnect: { ...DEFAULT_RECONNECT, maxAttempts: 3 },
  ...decoderLimits,
};
const callOptions: WsMsgpackCallOptions = new WsMsgpackRecordBuilder(1).setOverflow(overflow).build().options;
const connectionOptions: Pick<ConnectionOptions, 'role'> = { role: 'client' };
const protocols: string[] = [SUBPROTOCOL_V1, bearerProtocol('jwt')];
const wire: string[] = [PING_PATTERN, BEARER_PROTOCOL_PREFIX, NO_MESSAGE_HANDLER, ...OVERFLOW_STRATEGIES];

export async function use(): Promise<number> {
  const server = new WsMsgpackServer(serverOptions);
  const client = new WsMsgpackClient(clientOptions);
  const conn: Connection = await client.connect();
  const n: number = conn.bufferedBytes + conn.incomingCalls + server.bufferedBytes + server.connectionCount;
  const socket = client.unwrap();
  socket.ping();
  const raw: WebSocketLike | undefined = socket;
  const ctx = null as unknown as WsMsgpackContext;
  const code: string | undefined = ctx?.getSignal().reason instanceof WsMsgpackError ? 'x' : undefined;
  const failed = (err: unknown): boolean => err instanceof WsMsgpackError && err.code === WsMsgpackErrorCode.UNAVAILABLE;
  const headers: WsMsgpackCallHeaders | undefined = ctx?.getHeaders();
  void [code, failed, headers, raw, limits, callOptions, connectionOptions, protocols, wire];
  const handlers: WsMsgpackClientHandlers = client.exposeHandlers();
  const peers: WsMsgpackPeerDirectory = server.peers;
  const reached: number = server.broadcast('news', { a: 1 }, (p: WsMsgpackPeer) => p.state.has('x'));
  const peer: WsMsgpackPeer | undefined = peers.get('id') ?? ctx?.getPeer();
  const handshake: WsMsgpackHandshake | undefined = peer?.handshake;
  const topics = new WsMsgpackTopics<number>();
  const gone: WsPeerDisconnected = { peerId: peer?.id ?? '', code: CloseCode.GOING_AWAY, reason: '' };
  const closed: CloseInfo = { code: gone.code, reason: gone.reason };
  const stillUp: boolean = (await firstValueFrom(client.status)) === WsMsgpackStatus.CONNECTED;
  void [handlers, handshake, closed, stillUp, WS_PEER_CONNECTED, WS_PEER_DISCONNECTED, WS_MSGPACK_TRANSPORT];
  topics.publish('t', reached);
  return n + (await firstValueFrom(client.send<number>('sum', [1, 2])));
}

// Handler-side names, as a controller and the modules use them.
export const decorators = [WsMessagePattern('a'), WsEventPattern('b'), WsHeaders(), WsPeer(), WsSignal(), WsSocket(), WsUpgradeHeaders(), WsUser()];
export const modules = [
  WsMsgpackServerModule.forRoot({ port: 0, authenticate: async (req) => bearerToken(req) ?? undefined }),
  WsMsgpackClientModule.register({ name: 'HUB', url: 'ws://127.0.0.1:1' }),
  InjectWsMsgpackServer(),
  InjectWsMsgpackClient('HUB'),
];
export const rejected = new WsMsgpackUpgradeError(401, 'no token');
export const record: WsMsgpackRecord = new WsMsgpackRecordBuilder({ a: 1 }).setHeaders({ trace: 't' }).build();
export const money: WsMsgpackExtension<bigint> = {
  type: 1,
  encode: (v) => (typeof v === 'bigint' ? new TextEncoder().encode(v.toString()) : null),
  decode: (d) => BigInt(new TextDecoder().decode(d)),
};
export const ext = new ExtData(1, new Uint8Array([1]));
configureWsMsgpackTracing({ enabled: WS_MSGPACK_TRACER_NAME.length > 0 });

// Every type of the root entry, named.
export type RootTypes = [
  WsMsgpackServerEvents,
  WsMsgpackAllowedOrigins,
  WsMsgpackServerModuleExtras,
  WsMsgpackServerAsyncOptions,
  WsMsgpackClientEvents,
  WsMsgpackClientHandlersEvents,
  WsMsgpackExposeOptions,
  WsMsgpackClientRegistration,
  WsMsgpackClientAsyncRegistration,
  WsMsgpackClientModuleExtras,
  WsMsgpackHeaders,
  ReconnectOptions,
  WsMsgpackIterateOptions,
  WsMsgpackContextArgs,
  WsMsgpackCallInfo,
  ParamPipe,
  WsPeerConnected,
  WsRequestStream<number>,
  ExtensionOptions,
  WsMsgpackTracingOptions,
  WsMsgpackTracerProvider,
  WsMsgpackOtelApi,
];

// The terminus entry.
export type HealthTypes = [WsMsgpackHealthIndicator, WsMsgpackHealthCheckOptions];

// The Redis entry: an adapter is what the server's `cluster` option takes.
const redisOptions: RedisClusterOptions = { url: 'redis://127.0.0.1:6379', prefix: 'app', heartbeatInterval: 5000, replicaTimeout: 15_000 };
const redisClient = new Redis({ lazyConnect: true });
export const clustered: WsMsgpackServerOptions[] = [
  { port: 0, cluster: redisCluster(redisOptions) },
  { port: 0, cluster: redisCluster({ client: redisClient, subscriber: redisClient.duplicate() }) },
];

// The browser entry.
const webOptions: WsMsgpackWebClientOptions = { url: ['wss://a.example', 'wss://b.example'], token: async () => 'jwt', reconnect: { maxAttempts: 5 }, keepAliveInterval: 15_000 };
const web = new WsMsgpackWebClient(webOptions);
const confirm: WsMsgpackWebHandler<string, boolean> = async (question, { signal }) => !signal.aborted && question.length > 0;
const removeConfirm: () => void = web.handle('confirm', confirm);
web.on('disconnect', (info: WebCloseInfo) => void (info.code === WebCloseCode.KEEPALIVE_TIMEOUT));
export async function webUsage(): Promise<number> {
  const sum: number = await web.call<number>('sum', [1, 2], { timeout: 1000, signal: new AbortController().signal });
  for await (const row of web.iterate<{ id: number }>('rows', null)) if (row.id > sum) break;
  const state: WebStatus | 'idle' = web.state;
  const connected: boolean = state === WebStatus.CONNECTED;
  const unavailable = (err: unknown): boolean => err instanceof WebError && err.code === WebErrorCode.UNAVAILABLE;
  void [unavailable, new WebExtData(2, new Uint8Array())];
  removeConfirm();
  return connected ? sum : 0;
}
export type WebTypes = [
  WsMsgpackWebCallOptions,
  WsMsgpackWebClientEvents,
  WsMsgpackToken,
  WsMsgpackWebCallContext,
  WebSocketConstructor,
  WebReconnectOptions,
  WebRequestStream<number>,
  WebOverflowStrategy,
  WebCallHeaders,
  WebExtension<number>,
  WebExtensionOptions,
];
