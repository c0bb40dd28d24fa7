import type { PingableSocket } from './socket.js';

/**
 * Pings every `intervalMs`; a peer that has not answered a ping with a pong within `timeoutMs` is
 * presumed dead (a frozen process, a half-open TCP connection) and the socket is terminated: its
 * calls then fail with UNAVAILABLE (local close code 1006). A dead peer is found within
 * `intervalMs + timeoutMs`. Stops by itself when the socket closes. Returns a stop function; an
 * interval of 0 disables it.
 */
export function startKeepAlive(socket: PingableSocket, intervalMs: number, timeoutMs: number): () => void {
  if (!(intervalMs > 0)) return () => {};
  let waiting: ReturnType<typeof setTimeout> | undefined;
  socket.on('pong', () => {
    if (waiting !== undefined) clearTimeout(waiting);
    waiting = undefined;
  });
  const timer = setInterval(() => {
    if (waiting !== undefined) return; // the previous ping is still waiting for its pong
    try {
      socket.ping();
    } catch {
      return; // closing: the close event follows
    }
    waiting = setTimeout(() => {
      stop();
      socket.terminate();
    }, timeoutMs > 0 ? timeoutMs : intervalMs);
    unref(waiting);
  }, intervalMs);
  unref(timer);
  const stop = (): void => {
    clearInterval(timer);
    if (waiting !== undefined) clearTimeout(waiting);
    waiting = undefined;
  };
  socket.on('close', stop);
  return stop;
}

function unref(timer: ReturnType<typeof setTimeout>): void {
  (timer as { unref?: () => void }).unref?.();
}
