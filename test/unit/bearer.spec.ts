import fc from 'fast-check';
import { bearerToken } from '../../src/index.js';
import { BEARER_PROTOCOL_PREFIX, bearerProtocol } from '../../src/protocol.js';
import { tokenOfBearerProtocol } from '../../src/protocol/constants.js';

/** RFC 7230 token characters: what a Sec-WebSocket-Protocol entry may hold. */
const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

describe('bearer token subprotocol entry (docs/PROTOCOL.md 2.1)', () => {
  it('encodes as the document example says', () => {
    expect(bearerProtocol('token-admin')).toBe('wsmp.bearer.dG9rZW4tYWRtaW4');
    expect(tokenOfBearerProtocol('wsmp.bearer.dG9rZW4tYWRtaW4')).toBe('token-admin');
  });

  it('round-trips any string and is always a valid subprotocol token', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }), (token) => {
        const entry = bearerProtocol(token);
        expect(entry.startsWith(BEARER_PROTOCOL_PREFIX)).toBe(true);
        expect(entry).toMatch(HTTP_TOKEN);
        expect(tokenOfBearerProtocol(entry)).toBe(token);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['another subprotocol', 'wsmp.v1'],
    ['a character outside base64url', 'wsmp.bearer.ab+c'],
    ['padding', 'wsmp.bearer.dG9rZW4tYWRtaW4='],
    ['an impossible length', 'wsmp.bearer.abcde'],
    ['bytes that are not UTF-8', `wsmp.bearer.${btoa(String.fromCharCode(0xff, 0xfe)).replace(/=+$/, '')}`],
  ])('refuses %s', (_what, entry) => {
    expect(tokenOfBearerProtocol(entry)).toBeUndefined();
  });
});

describe('bearerToken(request)', () => {
  const req = (headers: Record<string, string>): { headers: Record<string, string> } => ({ headers });

  it('reads Authorization: Bearer first, then the subprotocol entry', () => {
    expect(bearerToken(req({ authorization: 'Bearer abc.def' }))).toBe('abc.def');
    expect(bearerToken(req({ authorization: 'bearer  xyz ' }))).toBe('xyz');
    expect(bearerToken(req({ 'sec-websocket-protocol': `wsmp.v1, ${bearerProtocol('from browser')}` }))).toBe('from browser');
    expect(bearerToken(req({ authorization: 'Bearer header', 'sec-websocket-protocol': `wsmp.v1, ${bearerProtocol('entry')}` }))).toBe('header');
  });

  it('is undefined without either (Basic auth is not a bearer token)', () => {
    expect(bearerToken(req({}))).toBeUndefined();
    expect(bearerToken(req({ authorization: 'Basic dXNlcjpwYXNz' }))).toBeUndefined();
    expect(bearerToken(req({ 'sec-websocket-protocol': 'wsmp.v1' }))).toBeUndefined();
  });
});
