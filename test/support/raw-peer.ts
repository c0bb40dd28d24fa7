import { decode, encode } from '@msgpack/msgpack';
import WebSocket from 'ws';
import { within } from './helpers.js';

/** A hand-driven protocol peer over a real `ws` socket, for feeding the server bad input. */
export class RawPeer {
  readonly frames: unknown[][] = [];
  closed: { code: number; reason: string } | undefined;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      this.frames.push(isBinary ? (decode(data) as unknown[]) : ['TEXT', data.toString()]);
      this.wake();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    ws.on('error', () => {});
  }

  /** Opens a raw connection offering `protocols` (default the real one). */
  static async open(url: string, protocols: string[] = ['wsmp.v1'], options: WebSocket.ClientOptions = {}): Promise<RawPeer> {
    const ws = new WebSocket(url, protocols, options);
    const peer = new RawPeer(ws);
    await within(
      new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      }),
      undefined,
      'raw connect',
    );
    return peer;
  }

  /** Sends raw bytes as one binary frame. */
  sendBytes(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Sends a value msgpack-encoded. */
  send(value: unknown): void {
    this.sendBytes(encode(value));
  }

  /** Waits for a received frame matching `match` and returns it. */
  async next(match: (f: unknown[]) => boolean = () => true, what = 'frame'): Promise<unknown[]> {
    return within(
      new Promise<unknown[]>((resolve) => {
        const check = (): boolean => {
          const i = this.frames.findIndex(match);
          if (i === -1) return false;
          resolve(this.frames.splice(i, 1)[0]!);
          return true;
        };
        if (check()) return;
        const waiter = (): void => {
          if (check()) this.waiters = this.waiters.filter((w) => w !== waiter);
        };
        this.waiters.push(waiter);
      }),
      undefined,
      what,
    );
  }

  /** Waits for the socket to close. */
  async whenClosed(): Promise<{ code: number; reason: string }> {
    await within(
      new Promise<void>((resolve) => {
        if (this.closed) return resolve();
        this.waiters.push(() => {
          if (this.closed) resolve();
        });
      }),
      undefined,
      'close',
    );
    return this.closed!;
  }

  close(): void {
    this.ws.terminate();
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
