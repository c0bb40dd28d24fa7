import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { encode } from '@msgpack/msgpack';
import { connect, type Socket } from 'node:net';
import { WsMessagePattern } from '../../src/index.js';
import { first, startService, until, within, type TestService } from '../support/helpers.js';
import { holds } from '../support/streams.js';

const big = { produced: 0, finalized: 0 };

@Controller()
class BigController {
  @WsMessagePattern('big')
  async *big(@Payload() size: number): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        big.produced++;
        yield Buffer.alloc(size, 7);
      }
    } finally {
      big.finalized++;
    }
  }

  @WsMessagePattern('ping')
  ping(): string {
    return 'pong';
  }
}

/**
 * A peer that completes the WebSocket handshake over a bare TCP socket and then stops reading, as a
 * stuck or hostile client would. (`ws` resumes its own socket, so it cannot play this part.)
 */
async function stuckPeer(url: string): Promise<{ socket: Socket; send(value: unknown): void }> {
  const { port } = new URL(url);
  const socket = connect(Number(port), '127.0.0.1');
  await within(
    new Promise<void>((resolve, reject) => {
      let head = '';
      socket.once('error', reject);
      socket.once('connect', () =>
        socket.write(
          'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wsmp.v1\r\n\r\n',
        ),
      );
      const onData = (chunk: Buffer): void => {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        socket.off('data', onData);
        socket.pause(); // from here on, nothing reads this socket
        if (head.startsWith('HTTP/1.1 101')) resolve();
        else reject(new Error(`handshake refused: ${head.split('\r\n')[0]}`));
      };
      socket.on('data', onData);
    }),
    undefined,
    'raw handshake',
  );
  return {
    socket,
    send(value: unknown): void {
      const payload = encode(value);
      if (payload.length >= 126) throw new Error('test frames stay small');
      // FIN + binary opcode; MASK bit with an all-zero key (client frames must be masked).
      socket.write(Buffer.concat([Buffer.from([0x82, 0x80 | payload.length, 0, 0, 0, 0]), payload]));
    },
  };
}

describe("the socket's bufferedAmount bounds what one slow connection holds on the server", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [BigController] }, { maxBufferedBytes: 256 * 1024 });
  });
  afterAll(() => svc.close());

  it('a peer that grants unlimited credit but stops reading stops the producer', async () => {
    const peer = await stuckPeer(svc.url);
    peer.send([1, 1, 'big', 64 * 1024]); // no meta: unlimited credit, only the socket can stop it
    await until(() => big.produced > 4, undefined, 'producer started');
    // The producer must come to rest while the peer reads nothing (kernel buffers fill first).
    let settled = false;
    for (let attempt = 0; attempt < 100 && !settled && big.produced < 2048; attempt++) {
      const seen = big.produced;
      try {
        await holds(() => big.produced === seen, 'producer paused', 25);
        settled = true;
      } catch {
        /* still filling the kernel buffers: look again */
      }
    }
    expect(settled).toBe(true);
    // Loopback kernel buffers plus 256 KiB in ws: far below what an unchecked producer makes.
    expect(big.produced * 64 * 1024).toBeLessThan(64 * 1024 * 1024);
    // Other connections are served meanwhile.
    expect(await first(svc.client().send('ping', {}))).toBe('pong');
    // Cut off, the stuck connection's handler is torn down.
    peer.socket.destroy();
    await until(() => big.finalized === 1, undefined, 'generator finally');
  });
});
