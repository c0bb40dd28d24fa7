/**
 * Regression tests from the review of the issue-17 refactor:
 * errors and its `closing` flag after a listen() that failed at once.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { WsMsgpackServer } from '../../src/index.js';
import { within } from '../support/helpers.js';

function listen(server: WsMsgpackServer): Promise<unknown> {
  return within(new Promise((resolve) => server.listen((error?: unknown) => resolve(error))), 3000, 'listen');
}

describe('server options are checked at construction, in a fixed order, each error naming its option', () => {
  it('httpServer without path: refused, naming the option', () => {
    expect(() => new WsMsgpackServer({ httpServer: createServer() })).toThrow(/^nestjs-ws-msgpack: option `path` is required with `httpServer`/);
  });

  it('two bad options: drainTimeout was checked before maxServerInboundBytes', () => {
    expect(() => new WsMsgpackServer({ drainTimeout: -1, maxServerInboundBytes: -1 })).toThrow(/drainTimeout/);
  });

  it('an option value with no JSON form (a bigint inside, or a cycle): the error still names the option', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => new WsMsgpackServer({ drainTimeout: { n: 1n } as never })).toThrow(/option drainTimeout must be/);
    expect(() => new WsMsgpackServer({ closeTimeout: cyclic as never })).toThrow(/option closeTimeout must be/);
    expect(() => new WsMsgpackServer({ window: { n: 1n } as never })).toThrow(/option window must be/);
  });

  it('a bad upgrade option was reported before a bad maxServerInboundBytes', () => {
    expect(() => new WsMsgpackServer({ handshakeTimeout: -5 as never, maxServerInboundBytes: -1 })).toThrow(/handshakeTimeout/);
  });
});

describe('closing ends with a new listen(), even one that fails at once', () => {
  it('close(), then a listen() whose httpServer function gives nothing: closing is false again', async () => {
    let current: HttpServer | undefined = createServer();
    await new Promise<void>((r) => current!.listen(0, '127.0.0.1', r));
    const shared = current;
    const server = new WsMsgpackServer({ httpServer: () => current as HttpServer, path: '/rpc' });
    try {
      expect(await listen(server)).toBeUndefined();
      await within(server.close());
      expect(server.closing).toBe(true);
      current = undefined;
      const error = await listen(server);
      expect(error).toBeInstanceOf(TypeError);
      // Documented: closing is true "from close() ... until a later listen()".
      expect(server.closing).toBe(false); // old: false (listen() reset closingDone first); new: true
    } finally {
      await server.close();
      await new Promise<void>((r) => shared!.close(() => r()));
    }
  });
});
