import type { Connection } from '../connection/connection.js';
import { startTimer, type Timer } from '../connection/timers.js';
import { unavailable } from '../protocol/errors.js';

/** One socket being opened: `opened` settles once; `cancel` calls it off. */
export interface SocketAttempt {
  /** Resolves with the Connection made in the socket's open event. */
  readonly opened: Promise<Connection>;
  /** Calls the attempt off (`opened` rejects with UNAVAILABLE naming `reason`). */
  cancel(reason: string): void;
}

/** The two steps of an attempt, as the client provides them. */
export interface AttemptSteps {
  /** What the socket needs first (upgrade headers, a token); may wait. A rejection fails the attempt with it. */
  prepare?(): Promise<unknown>;
  /** Opens the socket with what `prepare` gave. */
  open(prepared: unknown): SocketAttempt;
}

/**
 * One connection attempt: `prepare`, then the socket, both within `timeoutMs` (`connectTimeout`).
 * `cancel()` (close(), the timeout) settles `opened` at once, whichever step is under way: a
 * `prepare` that answers later opens nothing, and a socket that opens after all is closed.
 * `opened` rejects with UNAVAILABLE when called off, else with what `prepare` or the socket failed with.
 *
 * Phases: `preparing` → `opening` → `open`; `failed` from either of the first two.
 * (Closures, not a class: the browser bundle keeps the names short.)
 */
export function connectAttempt(url: string, timeoutMs: number, steps: AttemptSteps): SocketAttempt {
  let phase: 'preparing' | 'opening' | 'open' | 'failed' = 'preparing';
  let socket: SocketAttempt | undefined;
  let resolve!: (connection: Connection) => void;
  let reject!: (error: unknown) => void;
  const opened = new Promise<Connection>((res, rej) => ((resolve = res), (reject = rej)));
  opened.catch(() => {}); // a caller that stopped listening (the session moved on) leaves no unhandled rejection
  const unsettled = (): boolean => phase === 'preparing' || phase === 'opening';
  const settle = (to: 'open' | 'failed'): void => {
    phase = to;
    timer.cancel();
  };
  const fail = (error: unknown): void => {
    if (!unsettled()) return;
    settle('failed');
    reject(error);
  };
  const cancel = (reason: string): void => {
    if (!unsettled()) return;
    fail(unavailable(`cannot connect to ${url}: ${reason}`));
    socket?.cancel(reason);
  };
  const timer: Timer = startTimer(timeoutMs, () => cancel(`no connection within ${timeoutMs} ms (connectTimeout)`), false);

  const run = async (): Promise<void> => {
    let prepared: unknown;
    if (steps.prepare) {
      try {
        prepared = await steps.prepare();
      } catch (error) {
        return fail(error);
      }
      if (phase !== 'preparing') return; // called off while preparing: nothing opens
    }
    phase = 'opening';
    try {
      socket = steps.open(prepared);
    } catch (error) {
      return fail(error);
    }
    socket.opened.then(
      (connection) => {
        // Opened just as it was called off: nobody will use it.
        if (phase !== 'opening') return connection.close(1000, 'client closed');
        settle('open');
        resolve(connection);
      },
      (error: unknown) => fail(error),
    );
  };
  void run();
  return { opened, cancel };
}

/**
 * What an attempt needs first, from a client option (`headers`, `token`): the option as it is, or
 * what its function gives (called before every attempt). A function that throws is reported, and
 * the attempt fails with UNAVAILABLE naming it (the session retries with backoff).
 */
export async function preparedOption(url: string, name: string, option: unknown, report: (error: Error) => void): Promise<unknown> {
  if (typeof option !== 'function') return option;
  try {
    return await (option as () => unknown)();
  } catch (e) {
    const message = `the ${name} function threw: ${e instanceof Error ? e.message : String(e)}`;
    report(new Error(message, { cause: e }));
    throw unavailable(`cannot connect to ${url}: ${message}`);
  }
}
