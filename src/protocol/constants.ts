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
   * Keep-alive timeout: a peer that cannot ping (a browser) closes with it when its keep-alive
   * call (`wsmp:ping`) went unanswered. A `ws` peer that misses a pong is cut off without a closing
   * handshake (`terminate()`) instead, so the other side observes 1006.
   */
  KEEPALIVE_TIMEOUT: 4001,
} as const;

/** The value type of {@link CloseCode}. */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Pattern of the keep-alive call a peer that cannot send WebSocket pings (a browser) makes:
 * `[1, id, "wsmp:ping", nil]`. Every peer of this implementation answers it itself with
 * `[4, id]`, before any handler, the connected hook or a drain could hold it; any answer,
 * even an ERROR from an older peer, proves the connection alive (docs/PROTOCOL.md, "Keep-alive").
 */
export const PING_PATTERN = 'wsmp:ping';

/**
 * Prefix of the subprotocol entry that carries a bearer token from a client that cannot set
 * upgrade headers (a browser): `wsmp.bearer.<base64url of the token's UTF-8 bytes, no padding>`,
 * offered after `wsmp.v1`. The server never selects it (docs/PROTOCOL.md, "Authentication").
 */
export const BEARER_PROTOCOL_PREFIX = 'wsmp.bearer.';

/** The message of UNIMPLEMENTED when no handler matches (the same text as Nest's TCP transport). */
export const NO_MESSAGE_HANDLER = 'There is no matching message handler defined in the remote service.';

/** The subprotocol entry carrying `token` (see {@link BEARER_PROTOCOL_PREFIX}). */
export function bearerProtocol(token: string): string {
  const bytes = new TextEncoder().encode(token);
  let binary = '';
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]!);
  return BEARER_PROTOCOL_PREFIX + btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The token of a bearer subprotocol entry; undefined when `entry` is not one or does not decode. */
export function tokenOfBearerProtocol(entry: string): string | undefined {
  if (!entry.startsWith(BEARER_PROTOCOL_PREFIX)) return undefined;
  const b64 = entry.slice(BEARER_PROTOCOL_PREFIX.length);
  if (!/^[A-Za-z0-9_-]*$/.test(b64) || b64.length % 4 === 1) return undefined;
  try {
    const binary = atob(b64.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}
