/**
 * Regression tests from the review of the issue-17 refactor:
 * GOING_AWAY once it has closed. Before the refactor `isGoingAway` stayed true once either side
 * had announced GOING_AWAY ("True once either side announced it is going away"); with one phase,
 * 'closed' replaces 'going-away' and `isGoingAway` turns false again at the close.
 */
import { encode } from '@msgpack/msgpack';
import { WebSocket } from 'ws';
import { Connection } from '../../src/connection/connection.js';
import { RawServer } from '../support/raw-peer.js';
import { until, within } from '../support/helpers.js';

async function wsSupport(): Promise<unknown> {
  // The module moved in dacfd02 (connection/ -> node/): the test runs on both trees.
  const mod = (await import('../../src/node/ws-socket.js').catch(() => import('../../src/connection/ws-socket.js' as string))) as { WS_SOCKET_SUPPORT: unknown };
  return mod.WS_SOCKET_SUPPORT;
}

describe('Connection.isGoingAway after the close', () => {
  let server: RawServer;
  afterEach(async () => {
    await server?.close();
  });

  it('a peer that announced GOING_AWAY and then closed: isGoingAway stays true', async () => {
    server = await RawServer.start({
      answer: true,
      onConnection: (ws) => ws.send(encode([5, 0, 'GOING_AWAY', 'bye', { drainTimeout: 0 }])),
    });
    const socketSupport = await wsSupport();
    const ws = new WebSocket(server.url, ['wsmp.v1']);
    const conn = await within(
      new Promise<Connection>((resolve, reject) => {
        ws.once('open', () => resolve(new Connection(ws as never, { role: 'client', socketSupport } as never)));
        ws.once('error', reject);
      }),
    );
    const notices: unknown[] = [];
    conn.onGoingAway((n) => notices.push(n));
    conn.onError(() => {});
    await until(() => conn.isGoingAway, 3000, 'GOING_AWAY seen');
    const closed = new Promise<void>((resolve) => conn.onClose(() => resolve()));
    server.sockets[0]!.close(1001, 'server shutting down');
    await within(closed);
    expect(conn.isClosed).toBe(true);
    expect(conn.isGoingAway).toBe(true); // old: true; new: false (phase 'closed' replaced 'going-away')
  });
});
