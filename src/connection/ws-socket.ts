import { startKeepAlive } from './keepalive.js';
import type { CorkableSocket, SocketListener, SocketSupport, WebSocketLike } from './socket.js';

/** `ws`'s EventEmitter interface. */
interface NodeWebSocket {
  on(event: 'message', cb: (data: Uint8Array | ArrayBuffer | Uint8Array[], isBinary: boolean) => void): unknown;
  on(event: 'close', cb: (code: number, reason: { toString(): string }) => void): unknown;
  on(event: 'error', cb: (err: Error) => void): unknown;
  once(event: 'close', cb: () => void): unknown;
}

/** The part of a Node `ws` WebSocket that keep-alive uses. */
export interface PingableSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', cb: () => void): unknown;
}

/** `ws`'s send with fragmentation options. */
interface FragmentingSocket {
  send(data: Uint8Array, options: { binary: boolean; fin: boolean }): void;
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
  bind(ws: WebSocketLike, listener: SocketListener): boolean {
    if (!isNodeSocket(ws)) return false;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => {
      // binaryType 'nodebuffer': ws delivers one Buffer per message.
      if (!isBinary) return listener.onMessage(String(data), false);
      listener.onMessage(data as Uint8Array, true);
    });
    ws.on('close', (code, reason) => listener.onClose(code, reason.toString()));
    ws.on('error', (err) => listener.onSocketError(err));
    return true;
  },

  keepAlive(ws: WebSocketLike, intervalMs: number, timeoutMs: number): (() => void) | undefined {
    const p = pingable(ws);
    return p ? startKeepAlive(p, intervalMs, timeoutMs) : undefined;
  },

  tcpSocket(ws: WebSocketLike): CorkableSocket | null {
    const raw = (ws as unknown as { _socket?: Partial<CorkableSocket> })._socket;
    return raw && typeof raw.cork === 'function' && typeof raw.uncork === 'function' ? (raw as CorkableSocket) : null;
  },

  sendFragmented(ws: WebSocketLike, head: Uint8Array, value: Uint8Array): void {
    const f = ws as unknown as FragmentingSocket;
    f.send(head, { binary: true, fin: false });
    f.send(value, { binary: true, fin: true });
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
