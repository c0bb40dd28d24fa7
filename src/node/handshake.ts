import { WebSocket, type ClientOptions } from 'ws';
import { SUBPROTOCOL_V1 } from '../protocol/constants.js';
import { Opening } from '../connection/opening.js';

const ignore = (): void => {};

/** One WebSocket opening handshake that can be called off. */
export interface Handshake<T> {
  /**
   * Resolves with what `adopt` made of the open socket; rejects with UNAVAILABLE when it failed or
   * was cancelled (a socket error is the rejection's `cause`).
   */
  readonly opened: Promise<T>;
  /** Calls the handshake off: the socket is terminated and `opened` rejects with `reason`. No effect once settled. */
  cancel(reason: string): void;
}

/**
 * Opens a WebSocket to `url` offering protocol v1. `adopt` runs synchronously in the socket's
 * 'open' event, so that whatever binds to the socket does so before any frame the server sent
 * right after the handshake is delivered (`ws` emits those on the next tick, before promise
 * callbacks). Every way the handshake can end settles `opened` exactly once, and every listener
 * it added is removed by then.
 */
export function startHandshake<T>(url: string, options: ClientOptions, adopt: (ws: WebSocket) => T): Handshake<T> {
  const ws = new WebSocket(url, [SUBPROTOCOL_V1], options);
  const opening = new Opening<T>(url, {
    cleanup,
    abandon: () => {
      ws.on('error', ignore); // terminate() during the handshake reports an error nobody needs
      ws.terminate();
    },
  });
  const onOpen = (): void => opening.open(() => adopt(ws));
  // The socket's own error (Node's ECONNREFUSED, ENOTFOUND, ...) is the error's `cause`: `err.cause.code`.
  const onError = (err: Error): void => opening.fail(err.message, { cause: String(err), code: (err as NodeJS.ErrnoException).code }, err);
  const onClose = (code: number, reason: Buffer): void =>
    opening.fail(`closed during handshake (code ${code}${reason.length ? `: ${reason.toString()}` : ''})`, { closeCode: code });
  const onUnexpected = (_req: unknown, res: { statusCode?: number; statusMessage?: string }): void =>
    opening.fail(`HTTP ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trim(), { httpStatus: res.statusCode });
  function cleanup(): void {
    ws.off('open', onOpen);
    ws.off('error', onError);
    ws.off('close', onClose);
    ws.off('unexpected-response', onUnexpected);
  }
  ws.on('open', onOpen);
  ws.on('error', onError);
  ws.on('close', onClose);
  ws.on('unexpected-response', onUnexpected);
  return { opened: opening.opened, cancel: (reason) => opening.fail(reason) };
}
