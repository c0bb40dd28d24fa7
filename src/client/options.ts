import type { ClientOptions as WsClientOptions } from 'ws';
import type { ConnectionLimits } from '../connection/options.js';

/** Options of {@link WsMsgpackClient} (the `options` of a `ClientsModule` entry). */
export interface WsMsgpackClientOptions extends ConnectionLimits {
  /** Server URL, e.g. 'ws://127.0.0.1:3001' or 'wss://api.example.com/rpc'. */
  url: string;
  /** Extra HTTP headers on the upgrade request (e.g. `authorization`). */
  headers?: Record<string, string>;
  /** Default deadline for every `send()` in milliseconds (a record's `setTimeout` wins). Off by default. */
  timeout?: number;
  /** How long `connect()` may take. Default 10,000 ms. */
  connectTimeout?: number;
  /** Further options for the `ws` WebSocket (TLS settings, agent, ...). */
  wsOptions?: Omit<WsClientOptions, 'maxPayload' | 'headers' | 'handshakeTimeout'>;
}
