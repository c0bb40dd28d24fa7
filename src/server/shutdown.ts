import type { WebSocket } from 'ws';
import type { Connection } from '../connection/connection.js';
import { startTimer, type Timer } from '../connection/timers.js';
import { CloseCode } from '../protocol/constants.js';

/**
 * Graceful part of a server's close(): every client is told the server is going away
 * (GOING_AWAY: it starts new calls elsewhere; new REQUESTs here are refused with UNAVAILABLE, and
 * the server's own new calls to it fail at once with UNAVAILABLE), and the calls under way, both
 * ways, get up to `ms` to finish (Infinity: however long they take). What is still running after
 * that is cancelled by the close.
 */
export async function drain(connections: readonly Connection[], ms: number): Promise<void> {
  if (connections.length === 0) return;
  for (const conn of connections) conn.goAway('server shutting down', { drainTimeout: ms });
  if (!(ms > 0)) return;
  // Neither count can grow from here: both sides refuse new calls on a connection going away.
  const idle = Promise.all(connections.map((conn) => conn.whenNoCalls()));
  if (ms === Infinity) {
    await idle;
    return;
  }
  let timer: Timer | undefined;
  await Promise.race([idle, new Promise<void>((resolve) => (timer = startTimer(ms, resolve)))]);
  timer?.cancel();
}

/** One promise per socket, resolved once it has closed (taken before the drain: a socket that closes meanwhile counts). */
export function whenClosed(sockets: readonly WebSocket[]): Promise<void>[] {
  return sockets.map(
    (ws) =>
      new Promise<void>((resolve) => {
        if (ws.readyState === ws.CLOSED) return resolve();
        ws.once('close', () => resolve());
      }),
  );
}

/**
 * Closes `connections` (their calls end) and `sockets` (1001), and resolves once every socket
 * has closed (`closed`, from {@link whenClosed}), or after `timeout` ms, when those still open
 * are cut off. `timeout` Infinity: nobody is cut off here (ws's own 30 s close timer still applies).
 */
export async function closeAll(connections: readonly Connection[], sockets: readonly WebSocket[], closed: readonly Promise<void>[], timeout: number): Promise<void> {
  for (const conn of connections) conn.close(CloseCode.GOING_AWAY, 'server shutting down');
  for (const ws of sockets) if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close(CloseCode.GOING_AWAY, 'server shutting down');
  let timer: Timer | undefined;
  await Promise.race([
    Promise.all(closed),
    ...(timeout === Infinity
      ? []
      : [
          new Promise<void>((resolve) => {
            timer = startTimer(timeout, () => {
              for (const ws of sockets) ws.terminate();
              resolve();
            });
          }),
        ]),
  ]);
  timer?.cancel();
}
