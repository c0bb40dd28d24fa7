/** The WebSocket subprotocol that names protocol version 1. */
export const SUBPROTOCOL_V1 = 'wsmp.v1';

/** Subprotocols this implementation speaks, most preferred first. */
export const SUPPORTED_SUBPROTOCOLS: readonly string[] = [SUBPROTOCOL_V1];

/**
 * WebSocket close codes used by the protocol (see docs/PROTOCOL.md, "Close codes").
 * 1000–1011 are RFC 6455 codes; 4000–4099 are this protocol's own.
 */
export const CloseCode = {
  /** Normal close (client.close(), server close of an idle connection). */
  NORMAL: 1000,
  /** The server is shutting down (app.close()). */
  GOING_AWAY: 1001,
  /** The peer broke the protocol so badly that the connection cannot go on. */
  PROTOCOL_ERROR: 1002,
  /** A frame was larger than `maxPayload` (sent by `ws` itself). */
  MESSAGE_TOO_BIG: 1009,
  /** The peer did not offer a subprotocol this side speaks. */
  UNSUPPORTED_VERSION: 4000,
  /** Keep-alive: the peer did not answer pings in time. */
  KEEPALIVE_TIMEOUT: 4001,
  /** Too many protocol errors from one peer; it is disconnected to protect the server. */
  TOO_MANY_ERRORS: 4002,
} as const;

/** The value type of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
