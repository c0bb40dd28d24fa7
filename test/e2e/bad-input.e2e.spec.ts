import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import WebSocket from 'ws';
import { CloseCode, WsMsgpackErrorCode } from '../../src/index.js';
import { first, startService, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

const isError = (id: number) => (f: unknown[]) => f[0] === 5 && f[1] === id;

describe('bad input: the peer gets a precise error, the server keeps serving', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService(
      { controllers: [EchoController] },
      { maxPayload: 64 * 1024, maxStrLength: 1000, maxArrayLength: 100, maxMapLength: 100, maxBinLength: 2000, maxExtLength: 100 },
    );
  });
  afterAll(() => svc.close());

  /** After each bad frame the same connection still answers, and so does another one. */
  async function stillServes(peer: RawPeer, id: number): Promise<void> {
    peer.send([1, id, 'echo', 'alive']);
    expect(await peer.next((f) => f[1] === id)).toEqual([4, id, 'alive']);
    expect(await first(svc.client().send('echo', 'other connection'))).toBe('other connection');
  }

  it('answers a frame that is not msgpack with a connection-level PROTOCOL_ERROR (id 0)', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.sendBytes(Uint8Array.from([0xc1])); // 0xc1 is "never used" in msgpack
    const err = await peer.next(isError(0));
    expect(err[2]).toBe(WsMsgpackErrorCode.PROTOCOL_ERROR);
    expect(err[3]).toMatch(/not valid msgpack/);
    await stillServes(peer, 1);
    peer.close();
  });

  it('answers a text frame with PROTOCOL_ERROR naming the rule', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.ws.send('{"pattern":"echo"}');
    const err = await peer.next(isError(0));
    expect(err.slice(2)).toEqual([WsMsgpackErrorCode.PROTOCOL_ERROR, expect.stringMatching(/text frames/)]);
    await stillServes(peer, 1);
    peer.close();
  });

  it('fails the call of an unknown frame type with PROTOCOL_ERROR for that id', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([99, 7, 'x']);
    const err = await peer.next(isError(7));
    expect(err.slice(2)).toEqual([WsMsgpackErrorCode.PROTOCOL_ERROR, 'unknown frame type 99']);
    await stillServes(peer, 9);
    peer.close();
  });

  it('fails a REQUEST with missing fields', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 3, 'echo']);
    const err = await peer.next(isError(3));
    expect(err[2]).toBe(WsMsgpackErrorCode.PROTOCOL_ERROR);
    expect(err[3]).toMatch(/REQUEST: expected at least 4 elements, got 3/);
    await stillServes(peer, 5);
    peer.close();
  });

  it('fails a REQUEST whose fields have the wrong types', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 3, true, null]);
    expect((await peer.next(isError(3)))[3]).toMatch(/pattern must be a string, number or map/);
    peer.send([1, 5, 'echo', null, { t: -1 }]);
    expect((await peer.next(isError(5)))[3]).toMatch(/timeout/);
    peer.send([1, 7, 'echo', null, 'meta']);
    expect((await peer.next(isError(7)))[3]).toMatch(/meta must be a map/);
    await stillServes(peer, 9);
    peer.close();
  });

  it('refuses REQUEST ids from the server id space and reused ids', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 2, 'echo', 'x']);
    expect((await peer.next(isError(2)))[3]).toMatch(/id space/);
    peer.send([1, 11, 'echo', 'first']);
    expect(await peer.next((f) => f[1] === 11)).toEqual([4, 11, 'first']);
    peer.send([1, 11, 'echo', 'again']);
    expect((await peer.next(isError(11)))[3]).toMatch(/already used/);
    await stillServes(peer, 13);
    peer.close();
  });

  it('applies decoder limits and still names the call', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 21, 'echo', 'x'.repeat(1001)]);
    const err = await peer.next(isError(21));
    expect(err[2]).toBe(WsMsgpackErrorCode.PROTOCOL_ERROR);
    expect(err[3]).toMatch(/not valid msgpack.*max/i);
    peer.send([1, 23, 'echo', new Array(101).fill(0)]);
    expect((await peer.next(isError(23)))[3]).toMatch(/max/i);
    // a header that claims 2^32-1 elements must not allocate them
    peer.sendBytes(Uint8Array.from([0x94, 0x01, 0x19, 0xa4, 0x65, 0x63, 0x68, 0x6f, 0xdd, 0xff, 0xff, 0xff, 0xff]));
    expect((await peer.next(isError(25)))[3]).toMatch(/max/i);
    await stillServes(peer, 27);
    peer.close();
  });

  it('closes with 1009 on a frame over maxPayload, and other connections are unaffected', async () => {
    const peer = await RawPeer.open(svc.url);
    const other = svc.client();
    expect(await first(other.send('echo', 1))).toBe(1);
    peer.sendBytes(new Uint8Array(64 * 1024 + 1));
    const closed = await peer.whenClosed();
    expect(closed.code).toBe(CloseCode.MESSAGE_TOO_BIG);
    expect(await first(other.send('echo', 2))).toBe(2);
  });

  it('refuses a peer that offers another protocol version with close code 4000 and a reason', async () => {
    const peer = await RawPeer.open(svc.url, ['wsmp.v2']);
    const closed = await peer.whenClosed();
    expect(closed.code).toBe(CloseCode.UNSUPPORTED_VERSION);
    expect(closed.reason).toMatch(/wsmp\.v2.*wsmp\.v1/);
  });

  it('refuses a peer that offers no subprotocol with close code 4000', async () => {
    const peer = await RawPeer.open(svc.url, []);
    expect((await peer.whenClosed()).code).toBe(CloseCode.UNSUPPORTED_VERSION);
  });

  it('ignores CANCEL and CREDIT for unknown ids and late frames', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([6, 999]);
    peer.send([7, 999, 5]);
    peer.send([3, 999, 'late']);
    peer.send([4, 999]);
    await stillServes(peer, 1);
    expect(peer.frames).toEqual([]);
    peer.close();
  });

  it('answers a handler value that msgpack cannot encode with INTERNAL, not a hang', async () => {
    // 'echo' of a value the server cannot re-encode is impossible (it decoded it), so use a raw ws
    // to check the client side: a client payload that cannot be encoded fails locally.
    const c = svc.client();
    const err = await within(new Promise<unknown>((resolve) => c.send('echo', { f: Symbol('x') }).subscribe({ error: resolve, complete: () => resolve('completed') })));
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.INTERNAL });
    expect(await first(c.send('echo', 'fine'))).toBe('fine');
  });

  it('returns HTTP 426 to a plain HTTP request on the standalone port', async () => {
    const res = await fetch(svc.url.replace('ws:', 'http:'));
    expect(res.status).toBe(426);
  });

  it('does not crash on an abrupt disconnect mid-call', async () => {
    const peer = await RawPeer.open(svc.url);
    peer.send([1, 1, 'echo', 'x']);
    peer.ws.terminate();
    await within(new Promise((r) => peer.ws.once('close', r)));
    expect(await first(svc.client().send('echo', 'ok'))).toBe('ok');
  });

  it('keeps a WebSocket open when nothing is wrong', async () => {
    const peer = await RawPeer.open(svc.url);
    expect(peer.ws.readyState).toBe(WebSocket.OPEN);
    expect(peer.ws.protocol).toBe('wsmp.v1');
    peer.close();
  });
});
