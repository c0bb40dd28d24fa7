import type { Observable, Subscription } from 'rxjs';
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

/**
 * Keep-alive for a socket that cannot send WebSocket pings (a browser's): every `intervalMs` it
 * makes a keep-alive call (`ping()`, the `wsmp:ping` pattern), one at a time. Any answer (a
 * COMPLETE, or an ERROR from a peer that does not know the pattern) proves the peer alive; none
 * within `timeoutMs` calls `cut` with the reason, which closes the connection so that its calls
 * fail with UNAVAILABLE at once. Returns a stop function; an interval of 0 disables it.
 */
export function startCallKeepAlive(
  ping: () => Observable<unknown>,
  cut: (reason: string) => void,
  intervalMs: number,
  timeoutMs: number,
): () => void {
  if (!(intervalMs > 0)) return () => {};
  const wait = timeoutMs > 0 ? timeoutMs : intervalMs;
  let inFlight: { sub: Subscription; timer: ReturnType<typeof setTimeout> } | undefined;
  const settle = (): void => {
    if (!inFlight) return;
    clearTimeout(inFlight.timer);
    inFlight = undefined;
  };
  const timer = setInterval(() => {
    if (inFlight) return; // the previous keep-alive call is still waiting for its answer
    const waiting = setTimeout(() => {
      inFlight = undefined; // closing fails the call itself
      stop();
      cut(`keep-alive timeout: no answer to a keep-alive call within ${wait} ms`);
    }, wait);
    unref(waiting);
    const entry = { sub: undefined as unknown as Subscription, timer: waiting };
    inFlight = entry;
    // Any outcome is an answer; a local failure (the connection closing) ends the keep-alive too.
    entry.sub = ping().subscribe({ error: () => inFlight === entry && settle(), complete: () => inFlight === entry && settle() });
  }, intervalMs);
  unref(timer);
  const stop = (): void => {
    clearInterval(timer);
    const pending = inFlight;
    inFlight = undefined;
    if (pending) {
      clearTimeout(pending.timer);
      pending.sub?.unsubscribe();
    }
  };
  return stop;
}
