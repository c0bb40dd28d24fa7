/**
 * Revision 1.2 of docs/PROTOCOL.md on the wire, from bare `ws` sockets with hand-built bytes (not
 * the library's client): the keep-alive call `wsmp:ping` (section 16) answered by both ends, also
 * while the connected hook holds calls, and the bearer-token subprotocol entry (section 2.1).
 */
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { bearerToken, WS_PEER_CONNECTED, WsEventPattern, WsMsgpackClient, WsUser } from '../../src/index.js';
import { startService, until, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import { gate } from '../support/streams.js';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');
/** `[1, 1, "wsmp:ping", nil]`, as docs/vectors.json has it. */
const PING_ID_1 = '940101a977736d703a70696e67c0';

const hookGate = gate();
let holdHook = false;

@Controller()
class ConformanceController {
  @WsEventPattern(WS_PEER_CONNECTED)
  async connected(): Promise<void> {
    if (holdHook) await hookGate.promise;
  }

  @MessagePattern('whoami')
  whoami(@WsUser('name') name: string): string {
    return name;
  }
}

let svc: TestService;
beforeAll(async () => {
  svc = await startService(
    { controllers: [ConformanceController] },
    { authenticate: (req) => (bearerToken(req) === 'token-admin' ? { name: 'ada' } : bearerToken(req) === undefined ? { name: 'anonymous' } : undefined) },
  );
});
afterAll(async () => {
  hookGate.open();
  await svc.close();
});

/** The raw binary messages a `ws` socket receives, as hex. */
function recordBytes(ws: WebSocket): string[] {
  const got: string[] = [];
  ws.on('message', (data: Buffer) => got.push(data.toString('hex')));
  return got;
}

describe('keep-alive call (section 16)', () => {
  it('the server answers [1, 1, "wsmp:ping", nil] with exactly [4, 1] (920401)', async () => {
    const peer = await RawPeer.open(svc.url);
    const bytes = recordBytes(peer.ws);
    try {
      peer.sendBytes(hex(PING_ID_1));
      expect(await peer.next()).toEqual([4, 1]);
      expect(bytes).toEqual(['920401']);
    } finally {
      peer.close();
    }
  });

  it('keep-alive calls use the call-id space: an id not above the last one is a protocol error', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 5, 'wsmp:ping', null]);
      expect(await peer.next()).toEqual([4, 5]);
      peer.send([1, 3, 'wsmp:ping', null]);
      const err = await peer.next((f) => f[0] === 5);
      expect(err.slice(0, 3)).toEqual([5, 3, 'PROTOCOL_ERROR']);
      expect(String(err[3])).toMatch(/REQUEST id 3 was already used/);
    } finally {
      peer.close();
    }
  });

  it("is answered while the connected hook holds the peer's calls (an ordinary call waits for the hook)", async () => {
    holdHook = true;
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([1, 1, 'whoami', null]);
      peer.sendBytes(hex('940103a977736d703a70696e67c0')); // wsmp:ping, id 3
      expect(await peer.next()).toEqual([4, 3]);
      hookGate.open();
      expect(await peer.next((f) => f[1] === 1)).toEqual([4, 1, 'anonymous']);
    } finally {
      holdHook = false;
      peer.close();
    }
  });

  it('the Nest client answers a server\'s keep-alive call too ([1, 2, "wsmp:ping", nil] -> [4, 2])', async () => {
    const http = createServer();
    const wss = new WebSocketServer({ server: http, handleProtocols: () => 'wsmp.v1' });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const answered = new Promise<string>((resolve) =>
      wss.on('connection', (ws) => {
        ws.on('message', (data: Buffer) => resolve(data.toString('hex')));
        ws.send(hex('940102a977736d703a70696e67c0'));
      }),
    );
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, reconnect: false });
    try {
      await client.connect();
      expect(await within(answered)).toBe('920402');
    } finally {
      await client.close();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});

describe('bearer token subprotocol entry (section 2.1)', () => {
  it('offered after wsmp.v1: the server selects wsmp.v1 and authenticate sees the token', async () => {
    const peer = await RawPeer.open(svc.url, ['wsmp.v1', 'wsmp.bearer.dG9rZW4tYWRtaW4']);
    try {
      expect(peer.ws.protocol).toBe('wsmp.v1');
      peer.send([1, 1, 'whoami', null]);
      expect(await peer.next()).toEqual([4, 1, 'ada']);
    } finally {
      peer.close();
    }
  });

  it('a token authenticate refuses is an HTTP 401 at the upgrade', async () => {
    const status = await within(
      new Promise<number | undefined>((resolve) => {
        const ws = new WebSocket(svc.url, ['wsmp.v1', 'wsmp.bearer.Zm9yZ2Vk']);
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode);
          ws.terminate();
        });
        ws.on('open', () => resolve(undefined));
        ws.on('error', () => {});
      }),
    );
    expect(status).toBe(401);
  });

  it('offered alone (no wsmp.v1): the server selects no subprotocol (never the bearer entry), so the client fails the handshake', async () => {
    const ws = new WebSocket(svc.url, ['wsmp.bearer.dG9rZW4tYWRtaW4']);
    const failed = await within(new Promise<Error>((resolve) => ws.on('error', resolve)));
    expect(failed.message).toBe('Server sent no subprotocol');
    await until(() => ws.readyState === ws.CLOSED);
  });
});
