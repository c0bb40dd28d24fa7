/** The part of a Node `ws` WebSocket that keep-alive uses. */
export interface PingableSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', cb: () => void): unknown;
}

/** Default interval of {@link startKeepAlive}, in milliseconds. */
export const DEFAULT_KEEPALIVE_INTERVAL = 30_000;

/**
 * Pings every `intervalMs`; a peer that has not answered the previous ping (a pong, not just any
 * data) by the next one is presumed dead and the socket is terminated (its calls then fail with
 * UNAVAILABLE), so a dead peer is found within one to two intervals. Browsers and `ws` answer
 * pings by themselves. Stops by itself when the socket closes. Returns a stop function; 0 disables.
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
      /* closing */
    }
  }, intervalMs);
  timer.unref?.();
  const stop = (): void => clearInterval(timer);
  socket.on('close', stop);
  return stop;
}
