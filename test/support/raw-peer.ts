import { decode, encode } from '@msgpack/msgpack';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { within } from './helpers.js';

/**
 * The one frame checker of the tests: the msgpack frames one end received on raw sockets, in
 * order, and a wait for the first one that matches. RawPeer (a hand-driven client) and RawServer
 * (a hand-driven server) both record into one.
 */
export class FrameInbox {
  readonly frames: unknown[][] = [];
  private waiters: (() => void)[] = [];

  /** Records one received message: binary ones decoded, text ones as `['TEXT', text]`. */
  record(data: Buffer, isBinary: boolean): unknown[] {
    const frame = isBinary ? (decode(data) as unknown[]) : ['TEXT', data.toString()];
    this.frames.push(frame);
    this.wake();
    return frame;
  }

  /** Whether a frame matching `match` has been received (and not yet taken by next()). */
  some(match: (f: unknown[]) => boolean): boolean {
    return this.frames.some(match);
  }

  /** The received frames matching `match`. */
  filter(match: (f: unknown[]) => boolean): unknown[][] {
    return this.frames.filter(match);
  }

  /** Waits for a received frame matching `match`, takes it out of `frames` and returns it. */
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

  /** Waits until `predicate` holds, checked at each received frame (and at `wake()`). */
  async until(predicate: () => boolean, what = 'condition'): Promise<void> {
    await within(
      new Promise<void>((resolve) => {
        if (predicate()) return resolve();
        const waiter = (): void => {
          if (!predicate()) return;
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve();
        };
        this.waiters.push(waiter);
      }),
      undefined,
      what,
    );
  }

  /** Re-checks the waiters (something other than a frame changed). */
  wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** A hand-driven protocol peer over a real `ws` socket, for feeding the server bad input. */
export class RawPeer {
  readonly inbox = new FrameInbox();
  closed: { code: number; reason: string } | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.inbox.record(data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => {
      this.closed = { code, reason: reason.toString() };
      this.inbox.wake();
    });
    ws.on('error', () => {});
  }

  /** The frames received so far (and not yet taken by next()). */
  get frames(): unknown[][] {
    return this.inbox.frames;
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
  next(match: (f: unknown[]) => boolean = () => true, what = 'frame'): Promise<unknown[]> {
    return this.inbox.next(match, what);
  }

  /** Waits for the socket to close. */
  async whenClosed(): Promise<{ code: number; reason: string }> {
    await this.inbox.until(() => this.closed !== undefined, 'close');
    return this.closed!;
  }

  close(): void {
    this.ws.terminate();
  }
}

export interface RawServerOptions {
  /**
   * Answers each REQUEST while `answering` is true: a keep-alive call (`wsmp:ping`) with `[4, id]`,
   * any other pattern but 'hold' with `[4, id, "ok"]`. Off by default.
   */
  answer?: boolean;
  /** Called with each accepted socket, its number (1 for the first) and its upgrade request. */
  onConnection?: (ws: WebSocket, n: number, req: IncomingMessage) => void;
}

/**
 * A bare `ws` server that accepts protocol v1 (wsmp.v1): a stand-in for a server of another
 * implementation, or one misbehaving on purpose. Records every frame its peers send into `inbox`.
 */
export class RawServer {
  readonly inbox = new FrameInbox();
  readonly sockets: WebSocket[] = [];
  answering: boolean;

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly http: ReturnType<typeof createServer>,
    readonly url: string,
    options: RawServerOptions,
  ) {
    this.answering = options.answer ?? false;
    wss.on('connection', (ws, req) => {
      this.sockets.push(ws);
      ws.on('error', () => {});
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        const f = this.inbox.record(data, isBinary);
        if (!this.answering || f[0] !== 1) return;
        if (f[2] === 'wsmp:ping') ws.send(encode([4, f[1]]));
        else if (f[2] !== 'hold') ws.send(encode([4, f[1], 'ok']));
      });
      options.onConnection?.(ws, this.sockets.length, req);
    });
  }

  static async start(options: RawServerOptions = {}): Promise<RawServer> {
    const http = createServer();
    const wss = new WebSocketServer({ server: http, handleProtocols: () => 'wsmp.v1' });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    return new RawServer(wss, http, `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, options);
  }

  /** How many connections it accepted. */
  get connections(): number {
    return this.sockets.length;
  }

  /** The REQUEST frames received. */
  requests(): unknown[][] {
    return this.inbox.filter((f) => f[0] === 1);
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
