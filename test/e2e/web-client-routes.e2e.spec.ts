/**
 * Regression tests from the review of the issue-17 refactor:
 * JSON form. patternKey() let JSON.stringify throw (handle() refused the pattern; a call with
 * such a pattern failed); routeKey() falls back to String(), so every such object pattern is the
 * one route "[object Object]": handlers overwrite each other and calls reach the wrong one.
 */
import { encode } from '@msgpack/msgpack';
import { WebSocket as UndiciWebSocket } from 'undici';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';
import { RawServer } from '../support/raw-peer.js';
import { within } from '../support/helpers.js';

const StandardWebSocket = UndiciWebSocket as unknown as WebSocketConstructor;
const enc = (v: unknown): Uint8Array => encode(v, { useBigInt64: true });

describe('browser client routes: a pattern without a JSON form (a bigint in it) is no route', () => {
  let server: RawServer | undefined;
  const clients: WsMsgpackWebClient[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await server?.close();
  });

  it('handle() refuses a pattern that has no JSON form', () => {
    const c = new WsMsgpackWebClient({ url: 'ws://127.0.0.1:1', WebSocket: StandardWebSocket, reconnect: false });
    clients.push(c);
    c.on('error', () => {});
    expect(() => c.handle({ cmd: 'a', v: 1n }, () => 'a')).toThrow(TypeError);
  });

  it('a server call with pattern {cmd:"b", v:2n} does not run the handler of {cmd:"a", v:1n}', async () => {
    server = await RawServer.start({ answer: true });
    const c = new WsMsgpackWebClient({ url: server.url, WebSocket: StandardWebSocket, reconnect: false });
    clients.push(c);
    c.on('error', () => {});
    try {
      c.handle({ cmd: 'a', v: 1n }, () => 'handler a ran');
    } catch {
      /* the old code refuses the pattern here */
    }
    await within(c.connect());
    server.sockets[0]!.send(enc([1, 2, { cmd: 'b', v: 2n }, null]));
    const answer = await server.inbox.next((f) => f[1] === 2 && (f[0] === 4 || f[0] === 5), 'the answer to call 2');
    expect(answer).not.toEqual([4, 2, 'handler a ran']);
  });
});
