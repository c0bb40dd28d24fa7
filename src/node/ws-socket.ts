import { startKeepAlive, type PingableSocket } from '../connection/keepalive.js';
import type { ReadControl, ReadOptions, SocketListener, SocketSupport, WebSocketLike, WriteBatching } from '../connection/socket.js';
import { WsReader } from './ws-reader.js';
import { rawSocketOf } from '../patches/ws.js';

/** `ws`'s EventEmitter interface. */
interface NodeWebSocket {
  on(event: 'message', cb: (data: Uint8Array | ArrayBuffer | Uint8Array[], isBinary: boolean) => void): unknown;
  on(event: 'close', cb: (code: number, reason: { toString(): string }) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  once(event: 'close', cb: () => void): unknown;
}

/** `ws`'s send with fragmentation options. */
interface FragmentingSocket {
  send(data: Uint8Array, options: { binary: boolean; fin: boolean }): void;
}

/** The TCP socket under a Node `ws` WebSocket, for corking writes. */
interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** Most frames written together in one corked batch. */
const MAX_BATCH_FRAMES = 32;

/** Binary values at least this big are sent without a copy. */
const ZERO_COPY_BYTES = 64 * 1024;

/** Runs `fn` once the current tick's synchronous work and promise jobs are done. */
const scheduleFlush: (fn: () => void) => void =
  typeof process !== 'undefined' && typeof process.nextTick === 'function' ? (fn) => process.nextTick(fn) : (fn) => queueMicrotask(fn);

/**
 * Per-tick write batching on a `ws` socket's TCP socket: its writes are held (corked) until the
 * end of the tick, so every frame sent in it leaves in one `writev` instead of one system call
 * each (no protocol change: each frame is still its own message); and zero-copy sends of large
 * binaries (the frame head as one WebSocket fragment, the bytes themselves as the final one).
 */
class CorkedWrites implements WriteBatching {
  private corked = false;
  private batched = 0;

  constructor(
    private readonly ws: FragmentingSocket,
    private readonly tcp: CorkableSocket,
  ) {}

  beforeWrite(): void {
    if (this.corked) return;
    this.corked = true;
    this.tcp.cork();
    scheduleFlush(this.flush);
  }

  afterWrite(): void {
    // Cap the batch: a whole tick's frames in one write turns a window of calls into lockstep
    // batches (each side idle while the other works); smaller writes let both cores overlap.
    if (this.corked && ++this.batched >= MAX_BATCH_FRAMES) this.flush();
  }

  readonly flush = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.batched = 0;
    this.tcp.uncork();
  };

  sendValue(frame: { readonly value?: unknown }, encodeHead: (frame: never) => Uint8Array, maxPayload: number, tooBig: (size: number) => Error): boolean {
    const value = frame.value;
    if (!(value instanceof Uint8Array) || value.byteLength < ZERO_COPY_BYTES) return false;
    const prefix = encodeHead(frame as never);
    // The prefix plus a bin 32 header: followed by the value's bytes it is exactly the frame (bin 32
    // is valid for any length, if not the shortest form).
    const head = new Uint8Array(prefix.byteLength + 5);
    head.set(prefix);
    head[prefix.byteLength] = 0xc6;
    new DataView(head.buffer, head.byteOffset + prefix.byteLength + 1, 4).setUint32(0, value.byteLength);
    if (head.byteLength + value.byteLength > maxPayload) throw tooBig(head.byteLength + value.byteLength);
    this.flush(); // what waited goes first; the value's bytes are too big to batch
    this.ws.send(head, { binary: true, fin: false });
    this.ws.send(value, { binary: true, fin: true });
    return true;
  }
}

function isNodeSocket(ws: WebSocketLike): ws is WebSocketLike & NodeWebSocket {
  return typeof (ws as Partial<NodeWebSocket>).on === 'function';
}

function pingable(ws: WebSocketLike): PingableSocket | undefined {
  const p = ws as unknown as Partial<PingableSocket>;
  return typeof p.ping === 'function' && typeof p.terminate === 'function' && typeof p.on === 'function' ? (p as PingableSocket) : undefined;
}

/**
 * {@link SocketSupport} for Node `ws` sockets: the server's and the Nest client's. The only place
 * the core looks under a `ws` WebSocket (`_socket`, for corking). No Node built-in is imported.
 */
export const WS_SOCKET_SUPPORT: SocketSupport = {
  bind(ws: WebSocketLike, listener: SocketListener, options: ReadOptions): ReadControl | undefined {
    if (!isNodeSocket(ws)) return undefined;
    ws.binaryType = 'nodebuffer';
    return new WsReader(ws, listener, options);
  },

  terminate(ws: WebSocketLike): void {
    const terminate = (ws as unknown as Partial<PingableSocket>).terminate;
    if (typeof terminate === 'function') terminate.call(ws);
    else ws.close();
  },

  keepAlive(ws: WebSocketLike, intervalMs: number, timeoutMs: number): (() => void) | undefined {
    const p = pingable(ws);
    return p ? startKeepAlive(p, intervalMs, timeoutMs) : undefined;
  },

  batching(ws: WebSocketLike): WriteBatching | undefined {
    const raw = rawSocketOf<CorkableSocket>(ws);
    return raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function' ? new CorkedWrites(ws as unknown as FragmentingSocket, raw as CorkableSocket) : undefined;
  },

  whenClosed(ws: WebSocketLike, ms: number): Promise<void> | undefined {
    if (!isNodeSocket(ws)) return undefined;
    const terminate = (ws as unknown as Partial<PingableSocket>).terminate;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => (typeof terminate === 'function' ? terminate.call(ws) : resolve()), ms);
      ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  },
};
