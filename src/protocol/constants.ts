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
  /** Reserved: protocol errors are answered with ERROR frames and the connection stays up. */
  PROTOCOL_ERROR: 1002,
  /** A frame was larger than `maxPayload` (sent by `ws` itself). */
  MESSAGE_TOO_BIG: 1009,
  /** The peer did not offer a subprotocol this side speaks. */
  UNSUPPORTED_VERSION: 4000,
  /**
   * Reserved for keep-alive. A peer that misses a ping is cut off without a closing handshake
   * (`terminate()`), so the other side observes 1006.
   */
  KEEPALIVE_TIMEOUT: 4001,
} as const;

/** The value type of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
