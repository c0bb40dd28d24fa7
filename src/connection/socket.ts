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

/** How a socket is read. */
export interface ReadOptions {
  /**
   * Share the event loop fairly with other connections: at most a slice of time per turn for this
   * socket's messages, the rest waiting for later turns (a server, with many peers).
   */
  readonly fair: boolean;
  /** Most ms a message may take from its first bytes to its last; 0 or Infinity: no limit. */
  readonly incompleteMessageTimeout: number;
}

/** Pausing the reading of a socket (a Node `ws` socket; a browser's cannot be paused). */
export interface ReadControl {
  /** Stops reading from the peer (its bytes wait in the kernel; TCP tells the peer to wait). */
  pause(): void;
  /** Reads again. */
  resume(): void;
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

/**
 * What a Node `ws` socket offers beyond the standard WebSocket: its EventEmitter events (faster
 * than its DOM-style ones), pings, corking of its TCP socket, fragmented sends, `terminate()`.
 * The server and the Nest client pass `WS_SOCKET_SUPPORT` (ws-socket.ts); the browser client
 * passes nothing, so none of it is in the browser bundle, and any socket then works through
 * the standard API alone (keep-alive calls instead of pings).
 */
export interface SocketSupport {
  /** Binds `ws`'s events when it is a `ws` socket, read as `options` say; undefined: not one (the standard API is used). */
  bind(ws: WebSocketLike, listener: SocketListener, options: ReadOptions): ReadControl | undefined;
  /** Drops the connection at once, without a closing handshake (a peer that does not read would never see one). */
  terminate(ws: WebSocketLike): void;
  /** Starts ping keep-alive when `ws` can ping; returns its stop function, or undefined when it cannot. */
  keepAlive(ws: WebSocketLike, intervalMs: number, timeoutMs: number): (() => void) | undefined;
  /** Write batching (corking) and zero-copy sends for `ws`, when its TCP socket allows them. */
  batching(ws: WebSocketLike): WriteBatching | undefined;
  /** Resolves once `ws` closed, terminating it after `ms`; undefined when `ws` is not a `ws` socket. */
  whenClosed(ws: WebSocketLike, ms: number): Promise<void> | undefined;
}

/** A socket that cannot pause (a browser's): reading goes on. */
const NO_READ_CONTROL: ReadControl = { pause() {}, resume() {} };

/**
 * Wires a WebSocket's events into `listener`: through `support` for a `ws` socket, else the
 * standard API. Returns how to pause its reading.
 */
export function bindSocket(ws: WebSocketLike, listener: SocketListener, options: ReadOptions, support?: SocketSupport): ReadControl {
  const bound = support?.bind(ws, listener, options);
  if (bound) return bound;
  ws.binaryType = 'arraybuffer';
  const dom = ws as unknown as DomWebSocket;
  dom.addEventListener('message', ((ev: { data: unknown }) => {
    const d = ev.data;
    if (typeof d === 'string') listener.onMessage(d, false);
    else if (d instanceof ArrayBuffer) listener.onMessage(new Uint8Array(d), true);
    else if (ArrayBuffer.isView(d)) listener.onMessage(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), true);
  }) as (event: never) => void);
  dom.addEventListener('close', ((ev: { code: number; reason: string }) => listener.onClose(ev.code, ev.reason)) as (event: never) => void);
  dom.addEventListener('error', (() => listener.onSocketError(new Error('WebSocket error'))) as (event: never) => void);
  return NO_READ_CONTROL;
}

/** What the frame writer does around its writes on a Node `ws` socket (see ws-socket.ts). */
export interface WriteBatching {
  /** Before a write: hold the TCP socket's writes until the end of the tick (one `writev`). */
  beforeWrite(): void;
  /** After a write: flush early once a batch is big enough. */
  afterWrite(): void;
  /** Writes what the batch holds now. */
  flush(): void;
  /**
   * Sends a stream item frame whose value is a large binary without copying the value into the
   * encoder: the frame up to the value (`encodeHead(frame)`: the frame's bytes before its value)
   * and the value, as two fragments of one message. False: not a frame to send this way.
   */
  sendValue(frame: { readonly value?: unknown }, encodeHead: (frame: never) => Uint8Array, maxPayload: number, tooBig: (size: number) => Error): boolean;
}

/** Names of the WebSocket `readyState` values, for messages. */
export const READY_STATE_NAMES = ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'] as const;

/**
 * Resolves once `ws` has closed. After `ms` a `ws` socket is terminated (no closing handshake,
 * through `support`) and a standard one, which cannot be, is given up on: either way the promise
 * resolves, so `close()` never hangs on a peer that does not answer.
 */
export function whenSocketClosed(ws: WebSocketLike, ms: number, support?: SocketSupport): Promise<void> {
  if (ws.readyState === 3) return Promise.resolve();
  const viaWs = support?.whenClosed(ws, ms);
  if (viaWs) return viaWs;
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    (ws as unknown as DomWebSocket).addEventListener('close', (() => {
      clearTimeout(timer);
      resolve();
    }) as (event: never) => void);
  });
}
