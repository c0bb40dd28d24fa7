import type { IncomingMessage } from 'node:http';
import { tokenOfBearerProtocol } from '../protocol/constants.js';

/**
 * The bearer token of an upgrade request, for `authenticate`: from `Authorization: Bearer <token>`
 * (Node clients: the `headers` option), else from a `wsmp.bearer.<base64url>` subprotocol entry
 * (browsers, which cannot set upgrade headers: `WsMsgpackWebClient`'s `token` option). Undefined
 * when the request carries neither.
 *
 * ```ts
 * authenticate: async (req) => (await verifyJwt(bearerToken(req))) ?? undefined,  // undefined -> 401
 * ```
 */
export function bearerToken(request: Pick<IncomingMessage, 'headers'>): string | undefined {
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(auth);
    if (m) return m[1];
  }
  const offered = request.headers['sec-websocket-protocol'];
  if (typeof offered === 'string') {
    for (const entry of offered.split(',')) {
      const token = tokenOfBearerProtocol(entry.trim());
      if (token !== undefined) return token;
    }
  }
  return undefined;
}
