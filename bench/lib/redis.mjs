// A real redis-server for the cluster benchmark (bench/cluster.mjs): started on a free port of
// 127.0.0.1 with no persistence, stopped at the end (SIGKILLed if the orchestrator dies first).
// The same settings as the tests' test/support/redis.ts. REDIS_SERVER names another binary.
import { execFileSync, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from './grpc.mjs';

/** How long a start (until it answers PING) or a stop may take. */
const BOUND_MS = 10_000;

/** One PING over a raw socket: resolves true on +PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    const done = (ok) => {
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

/** Starts redis-server; resolves with `{ url, port, version, pid, stop() }` once it answers PING. */
export async function startRedis({ binary = process.env.REDIS_SERVER ?? 'redis-server' } = {}) {
  let version;
  try {
    version = /v=(\S+)/.exec(execFileSync(binary, ['--version']).toString())?.[1];
  } catch (e) {
    throw new Error(`cannot run ${binary} (install redis-server, or set REDIS_SERVER): ${e.message}`, { cause: e });
  }
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d.toString()));
  child.stderr.on('data', (d) => (output += d.toString()));
  let running = true;
  const exited = new Promise((resolve) => child.once('exit', resolve)).then(() => (running = false));
  const killOnExit = () => running && child.kill('SIGKILL');
  process.on('exit', killOnExit);

  async function stop() {
    if (running) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), BOUND_MS / 2);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', killOnExit);
  }

  const deadline = performance.now() + BOUND_MS;
  for (;;) {
    if (!running) throw new Error(`redis-server exited at start:\n${output}`);
    if (await ping(port)) break;
    if (performance.now() > deadline) {
      await stop();
      throw new Error(`redis-server did not answer PING on port ${port} within ${BOUND_MS} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { url: `redis://127.0.0.1:${port}`, port, version, pid: child.pid, stop };
}
