import type { Connection } from '../connection/connection.js';
import type { SocketAttempt } from '../session/attempt.js';
import type { WebSocketLike } from '../connection/socket.js';
import { SUBPROTOCOL_V1 } from '../protocol/constants.js';
import { unavailable } from '../protocol/errors.js';
import { Opening } from '../connection/opening.js';

/**
 * A standard WebSocket constructor: the browser's (and Deno's, Bun's, Node ≥ 22's) global
 * `WebSocket`, or `ws`'s `WebSocket` on Node 20 (`import { WebSocket } from 'ws'`).
 */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** The DOM-style listener registration every standard WebSocket (and `ws`) has. */
interface EventTargetSocket {
  addEventListener(type: string, listener: (event: never) => void): void;
  removeEventListener(type: string, listener: (event: never) => void): void;
}

const ignore = (): void => {};

/**
 * Opens a standard WebSocket to `url` offering `protocols` (wsmp.v1 first) and calls `adopt`
 * synchronously in its open event, before any message event can be delivered. Every way the
 * attempt ends settles `opened` exactly once, with UNAVAILABLE naming why:
 * - the socket closed before it opened (`closed during handshake (code N: reason)`, with
 *   `details.closeCode`; a browser reports an HTTP refusal such as 401 as code 1006, without the
 *   status, which scripts cannot see);
 * - the server selected no subprotocol or another one;
 * - `cancel(reason)` (the client core calls it at `connectTimeout`, and on `close()`).
 */
export function openWebSocket(Ctor: WebSocketConstructor, url: string, protocols: string[], adopt: (socket: WebSocketLike) => Connection): SocketAttempt {
  let ws: WebSocketLike & EventTargetSocket;
  try {
    ws = new Ctor(url, protocols) as WebSocketLike & EventTargetSocket;
  } catch (e) {
    // A malformed URL, or a subprotocol entry the constructor refuses (SyntaxError).
    const message = e instanceof Error ? e.message : String(e);
    return { opened: Promise.reject(unavailable(`cannot connect to ${url}: ${message}`)), cancel: ignore };
  }
  ws.binaryType = 'arraybuffer';
  const opening = new Opening<Connection>(url, {
    cleanup: () => {
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('error', onError);
      ws.removeEventListener('close', onClose as (event: never) => void);
    },
    abandon: () => {
      ws.addEventListener('error', ignore); // closing a connecting socket reports an error nobody needs
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    },
  });
  function onOpen(): void {
    if (opening.isSettled) return;
    if (ws.protocol !== SUBPROTOCOL_V1) {
      opening.fail(`the server selected subprotocol ${ws.protocol ? JSON.stringify(ws.protocol) : '(none)'}, not ${SUBPROTOCOL_V1}`);
      return;
    }
    opening.open(() => adopt(ws));
  }
  function onError(): void {
    // The close event that follows says more (its code); wait for it, unless it never comes.
    queueMicrotask(() => setTimeout(() => opening.fail('WebSocket error'), 0));
  }
  function onClose(ev: { code: number; reason: string }): void {
    opening.fail(`closed during handshake (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`, { closeCode: ev.code });
  }
  ws.addEventListener('open', onOpen);
  ws.addEventListener('error', onError);
  ws.addEventListener('close', onClose as (event: never) => void);
  return { opened: opening.opened, cancel: (reason) => opening.fail(reason) };
}
