/**
 * Transport id of {@link WsMsgpackServer}. `Symbol.for`, so two copies of this package in one
 * process (e.g. a hoisting accident) still agree on it.
 */
export const WS_MSGPACK_TRANSPORT: unique symbol = Symbol.for('nestjs-ws-msgpack.transport') as typeof WS_MSGPACK_TRANSPORT;

/** Status values of {@link WsMsgpackServer.status} and {@link WsMsgpackClient.status}. */
export const WsMsgpackStatus = {
  /** Client: a connection attempt is under way. */
  CONNECTING: 'connecting',
  /** Server: listening. Client: connected. */
  CONNECTED: 'connected',
  /** Server: closed or failed to listen. Client: not connected. */
  DISCONNECTED: 'disconnected',
} as const;

/** One of the {@link WsMsgpackStatus} values. */
export type WsMsgpackStatus = (typeof WsMsgpackStatus)[keyof typeof WsMsgpackStatus];
