/**
 * A real redis-server for a test file: started on a free port of 127.0.0.1, with no persistence
 * (a restart comes back empty, as a Redis without persistence does), stopped in afterAll.
 * `.ci/run` installs Debian's redis-server; REDIS_SERVER names another binary.
 *
 *   const redis = await startRedis();
 *   afterAll(() => redis.stop());
 *
 * `pause()` freezes it (SIGSTOP): its connections stay open and nothing is answered, as with a
 * Redis that hangs or a network path that drops packets; `resume()` (SIGCONT) lets it go on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './helpers.js';

/** How long a start (until it answers PING) or a stop may take. */
const BOUND_MS = 10_000;

export interface TestRedis {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, SIGKILL after a while); resolves once the process has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port (empty), once it has stopped; resolves when it answers PING. */
  start(): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections stay open, nothing is answered. */
  pause(): void;
  /** Lets a paused process go on (SIGCONT); resolves once it answers PING. */
  resume(): Promise<void>;
}

/** One PING over a raw socket: resolves true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      answer += d.toString();
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  const binary = process.env.REDIS_SERVER ?? 'redis-server';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let paused = false;

  async function start(): Promise<void> {
    if (child) throw new Error('redis-server is running already');
    let output = '';
    const proc = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stdout!.on('data', (d) => (output += d.toString()));
    proc.stderr!.on('data', (d) => (output += d.toString()));
    let failed: Error | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('error', (e) => {
        failed = new Error(`cannot run ${binary} (install redis-server, or set REDIS_SERVER): ${e.message}`);
        resolve();
      });
      proc.once('exit', () => resolve());
    });
    void exited.then(() => {
      if (child === proc) child = undefined;
    });
    const deadline = Date.now() + BOUND_MS;
    for (;;) {
      if (failed) throw failed;
      if (child !== proc) throw new Error(`redis-server exited at start:\n${output}`);
      if (await ping(port)) return;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`redis-server did not answer PING on port ${port} within ${BOUND_MS} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function stop(): Promise<void> {
    const proc = child;
    if (!proc) return;
    proc.kill('SIGTERM');
    if (paused) proc.kill('SIGCONT'); // a stopped process acts on SIGTERM once it runs
    paused = false;
    const timer = setTimeout(() => proc.kill('SIGKILL'), BOUND_MS / 2);
    await exited;
    clearTimeout(timer);
    child = undefined;
  }

  async function resume(): Promise<void> {
    if (!child || !paused) return;
    child.kill('SIGCONT');
    paused = false;
    const deadline = Date.now() + BOUND_MS;
    while (!(await ping(port))) {
      if (Date.now() > deadline) throw new Error(`redis-server did not answer PING within ${BOUND_MS} ms of SIGCONT`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    async restart() {
      await stop();
      await start();
    },
    pause() {
      if (!child) throw new Error('redis-server is not running');
      child.kill('SIGSTOP');
      paused = true;
    },
    resume,
  };
}
