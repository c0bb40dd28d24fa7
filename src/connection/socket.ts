/**
 * The part of a WebSocket the connection core uses. Both `ws`'s `WebSocket` (Node) and the
 * browser's `WebSocket` fit.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send` and not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Negotiated subprotocol. */
  readonly protocol: string;
  /** Set to 'nodebuffer' (ws) or 'arraybuffer' (browser) by the connection. */
  binaryType: string;
  /** Sends one binary message. */
  send(data: Uint8Array): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
}

/** The browser's listener registration. */
interface DomWebSocket {
  addEventListener(type: string, listener: (event: never) => void): void;
}

/** `ws`'s EventEmitter interface (faster than its DOM-style one), used when present. */
interface NodeWebSocket {
  on(event: 'message', cb: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): unknown;
  on(event: 'close', cb: (code: number, reason: Buffer) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
}

/** Callbacks the socket binding feeds. */
export interface SocketListener {
  /** A binary message (`isBinary` false: a text message, which the protocol does not allow). */
  onMessage(data: Uint8Array | string, isBinary: boolean): void;
  /** The socket closed. */
  onClose(code: number, reason: string): void;
  /** A socket error (a close follows). */
  onSocketError(error: Error): void;
}

/** Wires a WebSocket's events into `listener`. */
export function bindSocket(ws: WebSocketLike, listener: SocketListener): void {
  const node = ws as unknown as Partial<NodeWebSocket>;
  if (typeof node.on === 'function') {
    ws.binaryType = 'nodebuffer';
    const n = node as NodeWebSocket;
    n.on('message', (data, isBinary) => {
      // binaryType 'nodebuffer': ws delivers one Buffer per message.
      if (!isBinary) return listener.onMessage(String(data), false);
      listener.onMessage(data as Buffer, true);
    });
    n.on('close', (code, reason) => listener.onClose(code, reason.toString()));
    n.on('error', (err) => listener.onSocketError(err));
    return;
  }
  ws.binaryType = 'arraybuffer';
  const dom = ws as unknown as DomWebSocket;
  dom.addEventListener('message', ((ev: { data: unknown }) => {
    const d = ev.data;
    if (typeof d === 'string') listener.onMessage(d, false);
    else if (d instanceof ArrayBuffer) listener.onMessage(new Uint8Array(d), true);
    else if (ArrayBuffer.isView(d)) listener.onMessage(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), true);
  }) as (event: never) => void);
  dom.addEventListener('close', ((ev: { code: number; reason: string }) => listener.onClose(ev.code, ev.reason)) as (
    event: never,
  ) => void);
  dom.addEventListener('error', (() => listener.onSocketError(new Error('WebSocket error'))) as (event: never) => void);
}

/** The TCP socket under a Node `ws` WebSocket, for corking writes. */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** `ws`'s send with fragmentation options (Node only). */
export interface FragmentingSocket {
  send(data: Uint8Array, options: { binary: boolean; fin: boolean }): void;
}

/**
 * The TCP socket of a Node `ws` WebSocket (its `_socket`), when it can be corked; null for any
 * other socket (a browser's). The only place the core looks under the WebSocket.
 */
export function tcpSocketOf(ws: WebSocketLike): CorkableSocket | null {
  const raw = (ws as unknown as { _socket?: Partial<CorkableSocket> })._socket;
  return raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function' ? (raw as CorkableSocket) : null;
}

/** `ws` (Node) sends fragments; a browser WebSocket cannot. */
export function asFragmenting(ws: WebSocketLike): FragmentingSocket {
  return ws as unknown as FragmentingSocket;
}

/** The ping side of a Node `ws` WebSocket (keep-alive); undefined for a browser socket. */
export function pingableOf(ws: WebSocketLike): PingableSocket | undefined {
  const p = ws as unknown as Partial<PingableSocket>;
  return typeof p.ping === 'function' && typeof p.terminate === 'function' && typeof p.on === 'function' ? (p as PingableSocket) : undefined;
}

/** The part of a Node `ws` WebSocket that keep-alive uses. */
export interface PingableSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', cb: () => void): unknown;
}

/** Names of the WebSocket `readyState` values, for messages. */
export const READY_STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const;

/**
 * Resolves once `ws` has closed. After `ms` a Node `ws` socket is terminated (no closing
 * handshake) and a browser socket, which cannot be, is given up on: either way the promise
 * resolves, so `close()` never hangs on a peer that does not answer.
 */
export function whenSocketClosed(ws: WebSocketLike, ms: number): Promise<void> {
  if (ws.readyState === 3) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const node = ws as unknown as Partial<{ once(event: 'close', cb: () => void): unknown; terminate(): void }>;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      resolve();
    };
    if (typeof node.once === 'function') {
      node.once('close', done);
      timer = setTimeout(() => (typeof node.terminate === 'function' ? node.terminate() : done()), ms);
    } else {
      (ws as unknown as DomWebSocket).addEventListener('close', done as (event: never) => void);
      timer = setTimeout(done, ms);
    }
  });
}
