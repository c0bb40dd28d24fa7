import type { Observable, Subscription } from 'rxjs';
import { MAX_TIMER_MS, startTimer, type Timer } from './timers.js';

/** The part of a Node `ws` WebSocket that keep-alive uses. */
export interface PingableSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', cb: () => void): unknown;
}

/**
 * Pings every `intervalMs`; a peer that has not answered a ping with a pong within `timeoutMs` is
 * presumed dead (a frozen process, a half-open TCP connection) and the socket is terminated: its
 * calls then fail with UNAVAILABLE (local close code 1006). A dead peer is found within
 * `intervalMs + timeoutMs`. No ping is sent while one waits for its pong. Stops by itself when the
 * socket closes. Returns a stop function. An interval of 0 or Infinity disables it; a timeout of
 * 0 means the interval, and Infinity never terminates (pings then go out every interval, answered
 * or not: they still keep proxies and NATs from dropping the idle connection).
 */
export function startKeepAlive(socket: PingableSocket, intervalMs: number, timeoutMs: number): () => void {
  if (!isPeriod(intervalMs)) return () => {};
  const wait = timeoutMs > 0 ? timeoutMs : intervalMs;
  let waiting: Timer | undefined;
  socket.on('pong', () => {
    waiting?.cancel();
    waiting = undefined;
  });
  const ticker = every(intervalMs, () => {
    if (waiting !== undefined) return; // the previous ping is still waiting for its pong
    try {
      socket.ping();
    } catch {
      return; // closing: the close event follows
    }
    if (wait === Infinity) return; // no limit: the peer is never presumed dead
    waiting = startTimer(
      wait,
      () => {
        stop();
        socket.terminate();
      },
      false,
    );
  });
  const stop = (): void => {
    ticker.cancel();
    waiting?.cancel();
    waiting = undefined;
  };
  socket.on('close', stop);
  return stop;
}

/**
 * Keep-alive for a socket that cannot send WebSocket pings (a browser's): every `intervalMs` it
 * makes a keep-alive call (`ping()`, the `wsmp:ping` pattern), one at a time. Any answer (a
 * COMPLETE, or an ERROR from a peer that does not know the pattern) proves the peer alive; none
 * within `timeoutMs` calls `cut` with the reason, which closes the connection so that its calls
 * fail with UNAVAILABLE at once. Returns a stop function. An interval of 0 or Infinity disables
 * it; a timeout of 0 means the interval, and Infinity never cuts (the next call waits for the
 * answer to the previous one, however long it takes).
 */
export function startCallKeepAlive(ping: () => Observable<unknown>, cut: (reason: string) => void, intervalMs: number, timeoutMs: number): () => void {
  if (!isPeriod(intervalMs)) return () => {};
  const wait = timeoutMs > 0 ? timeoutMs : intervalMs;
  let inFlight: { sub: Subscription | undefined; timer: Timer | undefined } | undefined;
  const settle = (): void => {
    if (!inFlight) return;
    inFlight.timer?.cancel();
    inFlight = undefined;
  };
  const ticker = every(intervalMs, () => {
    if (inFlight) return; // the previous keep-alive call is still waiting for its answer
    const entry: { sub: Subscription | undefined; timer: Timer | undefined } = { sub: undefined, timer: undefined };
    if (wait !== Infinity) {
      entry.timer = startTimer(
        wait,
        () => {
          inFlight = undefined; // closing fails the call itself
          stop();
          cut(`keep-alive timeout: no answer to a keep-alive call within ${wait} ms`);
        },
        false,
      );
    }
    inFlight = entry;
    // Any outcome is an answer (a local failure means the connection is closing, which stops this too).
    entry.sub = ping().subscribe({ error: () => inFlight === entry && settle(), complete: () => inFlight === entry && settle() });
  });
  const stop = (): void => {
    ticker.cancel();
    const pending = inFlight;
    inFlight = undefined;
    if (pending) {
      pending.timer?.cancel();
      pending.sub?.unsubscribe();
    }
  };
  return stop;
}

/** True for an interval that keep-alive runs at: finite and above 0 (0 and Infinity switch it off). */
function isPeriod(ms: number): boolean {
  return ms > 0 && Number.isFinite(ms);
}

/**
 * Runs `fn` every `ms` (finite, > 0) without keeping the process alive. `setInterval` beyond its
 * ~24.8-day limit would fire every 1 ms: such an interval is chained on {@link startTimer}.
 */
function every(ms: number, fn: () => void): Timer {
  if (ms <= MAX_TIMER_MS) {
    const handle = setInterval(fn, ms);
    (handle as { unref?: () => void }).unref?.();
    return { cancel: () => clearInterval(handle) };
  }
  let current: Timer;
  let stopped = false;
  const arm = (): void => {
    current = startTimer(
      ms,
      () => {
        if (stopped) return;
        arm();
        fn();
      },
      false,
    );
  };
  arm();
  return {
    cancel: () => {
      stopped = true;
      current.cancel();
    },
  };
}
