import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { take, toArray } from 'rxjs';
import { WsMsgpackClient, WsMsgpackStatus } from '../../src/index.js';
import { ensureBuilt } from '../support/dist.js';
import { errorOf, first, freePort, until, WAIT_MS, within } from '../support/helpers.js';
import { codeOf } from '../support/streams.js';

/**
 * The server in its own process: SIGTERM with enableShutdownHooks drains it, SIGKILL kills it
 * mid-stream. The child runs the built package (dist/), built first if needed.
 */

const script = fileURLToPath(new URL('../support/child-server.mjs', import.meta.url));

interface Child {
  process: ChildProcess;
  lines: Interface;
  /** Resolves with the first stdout line that starts with `prefix`. */
  line(prefix: string): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function startChild(port: number, drainTimeout?: number): Promise<Child> {
  const args = [script, String(port), ...(drainTimeout === undefined ? [] : [String(drainTimeout)])];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: proc.stdout! });
  const seen: string[] = [];
  const waiters: { prefix: string; resolve: (l: string) => void }[] = [];
  lines.on('line', (l) => {
    seen.push(l);
    for (const w of [...waiters]) {
      if (!l.startsWith(w.prefix)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(l);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const child: Child = {
    process: proc,
    lines,
    exited,
    line: (prefix) =>
      within(
        new Promise<string>((resolve) => {
          const hit = seen.find((l) => l.startsWith(prefix));
          if (hit) return resolve(hit);
          waiters.push({ prefix, resolve });
        }),
        WAIT_MS * 2,
        `child line "${prefix}"`,
      ),
  };
  await child.line('ready');
  return child;
}

function stop(child: Child | undefined): Promise<unknown> {
  if (!child || child.process.exitCode !== null || child.process.signalCode !== null) return Promise.resolve();
  child.process.kill('SIGKILL');
  return child.exited;
}

beforeAll(() => ensureBuilt(), 150_000);

describe('the server in its own process', () => {
  it('SIGTERM (enableShutdownHooks) drains: the call under way gets its answer, then the connection closes 1001 and the process ends', async () => {
    const port = await freePort();
    const child = await startChild(port, 5000);
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}`, reconnect: false });
    try {
      const conn = await client.connect();
      const closed = new Promise<number>((resolve) => conn.onClose((info) => resolve(info.code)));
      const answer = first(client.send('work', { ms: 300, tag: 'drained' }), WAIT_MS * 2);
      await child.line('started drained');
      child.process.kill('SIGTERM');
      expect(await answer).toBe('done drained');
      expect(await within(closed, WAIT_MS * 2, 'closing handshake')).toBe(1001); // closed by the server, not cut
      // Nest's shutdown hooks re-raise the signal once the app has closed.
      expect(await within(child.exited, WAIT_MS * 2, 'child exit')).toEqual({ code: null, signal: 'SIGTERM' });
    } finally {
      await client.close();
      await stop(child);
    }
  });

  it('SIGKILL mid-stream: the stream fails UNAVAILABLE; the client reconnects by itself when a new server starts on the port; new calls succeed', async () => {
    const port = await freePort();
    let child: Child | undefined = await startChild(port);
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}`, reconnect: { initialDelay: 20, maxDelay: 100 } });
    const statuses: string[] = [];
    client.status.subscribe((s) => statuses.push(s));
    client.on('error', () => {});
    try {
      expect(await first(client.send('ticks', null).pipe(take(3), toArray()))).toEqual([0, 1, 2]);
      const stream = errorOf(client.send('ticks', null), WAIT_MS * 2);
      await until(() => statuses.includes(WsMsgpackStatus.CONNECTED), WAIT_MS, 'connected');
      child.process.kill('SIGKILL');
      await child.exited;
      expect(codeOf(await stream)).toBe('UNAVAILABLE');
      await until(() => statuses[statuses.length - 1] === WsMsgpackStatus.RECONNECTING, WAIT_MS, 'reconnecting');
      child = await startChild(port);
      await until(() => statuses[statuses.length - 1] === WsMsgpackStatus.CONNECTED, WAIT_MS * 2, 'reconnected by itself');
      expect(await first(client.send('echo', 'back'))).toBe('back');
    } finally {
      await client.close();
      await stop(child);
    }
  });
});
