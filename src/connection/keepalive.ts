import type { PingableSocket } from './socket.js';

/**
 * Pings every `intervalMs`; a peer that has not answered the previous ping (a pong, not just any
 * data) by the next one is presumed dead and the socket is terminated (its calls then fail with
 * UNAVAILABLE), so a dead peer is found within one to two intervals. Stops by itself when the
 * socket closes. Returns a stop function; an interval of 0 disables it.
 */
export function startKeepAlive(socket: PingableSocket, intervalMs: number): () => void {
  if (!(intervalMs > 0)) return () => {};
  let alive = true;
  socket.on('pong', () => {
    alive = true;
  });
  const timer = setInterval(() => {
    if (!alive) {
      clearInterval(timer);
      socket.terminate();
      return;
    }
    alive = false;
    try {
      socket.ping();
    } catch {
      /* closing: the close event follows */
    }
  }, intervalMs);
  (timer as { unref?: () => void }).unref?.();
  const stop = (): void => clearInterval(timer);
  socket.on('close', stop);
  return stop;
}
