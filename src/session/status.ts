/** Status values of {@link WsMsgpackServer.status} and {@link WsMsgpackClient.status}. */
export const WsMsgpackStatus = {
  /** Client: the first connection attempt is under way. */
  CONNECTING: 'connecting',
  /** Server: listening. Client: connected. */
  CONNECTED: 'connected',
  /** Client: the connection dropped (or the server went away); reconnecting with backoff. */
  RECONNECTING: 'reconnecting',
  /** Server: closed or failed to listen. Client: gave up (no reconnect, attempts ran out, or a refusal such as 401). */
  DISCONNECTED: 'disconnected',
  /** Client: `close()` was called (a later call or `connect()` opens it again). */
  CLOSED: 'closed',
} as const;

/** One of the {@link WsMsgpackStatus} values. */
export type WsMsgpackStatus = (typeof WsMsgpackStatus)[keyof typeof WsMsgpackStatus];
