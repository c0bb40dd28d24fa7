// A consumer of the published types: compiled against dist/ (what npm users get) with
// skipLibCheck off, so an error in this package's .d.ts files (a type it does not export, a
// missing dependency's types) fails `npm run types:consumer`. Not run, only type-checked.
import { firstValueFrom } from 'rxjs';
import {
  type Connection,
  type ConnectionOptions,
  type OverflowStrategy,
  type WsMsgpackCallOptions,
  type WsMsgpackClientOptions,
  type WsMsgpackServerOptions,
  WsMsgpackClient,
  WsMsgpackContext,
  WsMsgpackError,
  WsMsgpackRecordBuilder,
  WsMsgpackServer,
  WsMsgpackTopics,
  WS_PEER_CONNECTED,
  type WsMsgpackClientHandlers,
  type WsMsgpackPeer,
  type WsMsgpackPeerDirectory,
  type WsPeerDisconnected,
  DEFAULT_LIMITS,
} from 'nestjs-ws-msgpack';

const overflow: OverflowStrategy = 'latest';
const serverOptions: WsMsgpackServerOptions = { port: 0, overflow, maxStreamBufferBytes: DEFAULT_LIMITS.maxStreamBufferBytes };
const clientOptions: WsMsgpackClientOptions = { url: 'ws://127.0.0.1:1', window: 16, wsOptions: { rejectUnauthorized: true } };
const callOptions: WsMsgpackCallOptions = new WsMsgpackRecordBuilder(1).setOverflow(overflow).build().options;
const connectionOptions: Pick<ConnectionOptions, 'role'> = { role: 'client' };

export async function use(): Promise<number> {
  const server = new WsMsgpackServer(serverOptions);
  const client = new WsMsgpackClient(clientOptions);
  const conn: Connection = await client.connect();
  const n: number = conn.bufferedBytes + conn.incomingCalls + server.bufferedBytes + server.connectionCount;
  const socket = client.unwrap();
  socket.ping();
  const ctx = null as unknown as WsMsgpackContext;
  const code: string | undefined = ctx?.getSignal().reason instanceof WsMsgpackError ? 'x' : undefined;
  void code;
  void callOptions;
  void connectionOptions;
  const handlers: WsMsgpackClientHandlers = client.exposeHandlers();
  const peers: WsMsgpackPeerDirectory = server.peers;
  const reached: number = server.broadcast('news', { a: 1 }, (p: WsMsgpackPeer) => p.state.has('x'));
  const peer: WsMsgpackPeer | undefined = peers.get('id') ?? ctx?.getPeer();
  const topics = new WsMsgpackTopics<number>();
  const gone: WsPeerDisconnected = { peerId: peer?.id ?? '', code: 1000, reason: '' };
  void handlers;
  void gone;
  void WS_PEER_CONNECTED;
  topics.publish('t', reached);
  return n + (await firstValueFrom(client.send<number>('sum', [1, 2])));
}

// The browser entry's published types.
import { WsMsgpackWebClient, WsMsgpackStatus as WebStatus, type WsMsgpackWebClientOptions, type WsMsgpackWebHandler } from 'nestjs-ws-msgpack/client';

const webOptions: WsMsgpackWebClientOptions = { url: ['wss://a.example', 'wss://b.example'], token: async () => 'jwt', reconnect: { maxAttempts: 5 }, keepAliveInterval: 15_000 };
const web = new WsMsgpackWebClient(webOptions);
const confirm: WsMsgpackWebHandler<string, boolean> = async (question, { signal }) => !signal.aborted && question.length > 0;
const removeConfirm: () => void = web.handle('confirm', confirm);
export async function webUsage(): Promise<number> {
  const sum: number = await web.call<number>('sum', [1, 2], { timeout: 1000, signal: new AbortController().signal });
  for await (const row of web.iterate<{ id: number }>('rows', null)) if (row.id > sum) break;
  const state: WebStatus | 'idle' = web.state;
  const connected: boolean = state === WebStatus.CONNECTED;
  removeConfirm();
  return connected ? sum : 0;
}
