#!/usr/bin/env node
/**
 * `npm run sample`: compiles sample/ with tsc (Nest needs decorator metadata), starts the sample
 * server, waits for its "ready" line, runs the sample client against it, then stops the server
 * with SIGTERM. Exits with the client's exit code (1 if the server did not shut down cleanly,
 * or if anything takes longer than the global timeout).
 *
 * `npm run sample:browser` (`--serve`): compiles and starts the server the same way, prints the
 * browser page's URL, and keeps serving (no client, no global timeout) until Ctrl-C or SIGTERM,
 * which stops the server gracefully; exits 0 when it shut down cleanly.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist-sample');
const GLOBAL_TIMEOUT_MS = Number(process.env.SAMPLE_TIMEOUT_MS) || 60_000;
const READY_TIMEOUT_MS = 20_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;
const SERVE = process.argv.includes('--serve');
const READY_LINE = /ready: http:\/\/([\d.]+):(\d+)/;

const children = new Set();
const env = { ...process.env };
if (!process.stdout.isTTY) env.NO_COLOR ??= '1';

function log(message) {
  console.log(`[sample] ${message}`);
}

function run(name, args, { detached = false } = {}) {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached });
  children.add(child);
  const exited = new Promise((resolve) => {
    child.once('error', (err) => {
      log(`${name}: ${err.message}`);
      resolve({ code: 1, signal: null });
    });
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const forward = (stream, out) => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => {
      out.write(`[${name}] ${line}\n`);
      child.emit('line', line);
    });
  };
  forward(child.stdout, process.stdout);
  forward(child.stderr, process.stderr);
  return { child, exited };
}

function killAll(signal) {
  for (const child of children) child.kill(signal);
}

function fail(message) {
  log(message);
  killAll('SIGKILL');
  process.exit(1);
}

function withTimeout(promise, ms, onTimeout) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(onTimeout()), ms);
    }),
  ]);
}

const globalTimer = setTimeout(() => fail(`timed out after ${GLOBAL_TIMEOUT_MS / 1000} s`), GLOBAL_TIMEOUT_MS);
globalTimer.unref();
// Until the server is up (and in the client run throughout), a signal kills everything.
let onSignal = (sig) => fail(`${sig} received`);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => onSignal(sig));

// 1. Compile.
log('compiling sample/ with tsc');
rmSync(outDir, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const compiled = await run('tsc', [tsc, '-p', join(root, 'sample', 'tsconfig.json')]).exited;
if (compiled.code !== 0) fail(`tsc failed (exit ${compiled.code})`);

// 2. Start the server and wait for its ready line. With --serve, in its own process group: Ctrl-C
//    in the terminal reaches only this script, which then stops the server with one SIGTERM (the
//    terminal's SIGINT and ours could otherwise race, a late one killing it while it exits).
const server = run('server', [join(outDir, 'sample', 'server', 'main.js')], { detached: SERVE });
process.once('exit', () => killAll('SIGKILL')); // never leave a (detached) server behind
const address = await withTimeout(
  new Promise((resolve) => {
    server.child.on('line', (line) => {
      // eslint-disable-next-line no-control-regex
      const m = READY_LINE.exec(line.replace(/\x1b\[[0-9;]*m/g, ''));
      if (m) resolve({ host: m[1], port: Number(m[2]) });
    });
    void server.exited.then(({ code, signal }) => resolve({ exitedEarly: `exit ${code ?? signal}` }));
  }),
  READY_TIMEOUT_MS,
  () => ({ exitedEarly: `no ready line within ${READY_TIMEOUT_MS / 1000} s` }),
);
if (address.exitedEarly) fail(`server did not start (${address.exitedEarly})`);

const rpcUrl = `ws://${address.host}:${address.port}/rpc`;
const httpUrl = `http://${address.host}:${address.port}`;
log(`browser page: ${httpUrl}/browser`);

/** Stops the server with SIGTERM; resolves with its exit code (fails if it takes too long). */
async function stopServer() {
  server.child.kill('SIGTERM');
  const stopped = await withTimeout(server.exited, SHUTDOWN_TIMEOUT_MS, () => ({ code: null, signal: 'timeout' }));
  if (stopped.signal === 'timeout') fail(`server did not exit within ${SHUTDOWN_TIMEOUT_MS / 1000} s of SIGTERM`);
  log(`server exited with ${stopped.code ?? stopped.signal}`);
  return stopped.code === 0 ? 0 : 1;
}

// 3'. --serve: keep the server up for a human with a browser, until Ctrl-C.
if (SERVE) {
  clearTimeout(globalTimer);
  log(`serving; open ${httpUrl}/browser in a browser (RPC at ${rpcUrl}). Ctrl-C stops.`);
  let stopping;
  onSignal = (sig) => {
    if (stopping) return;
    log(`${sig} received, stopping the server`);
    stopping = stopServer().then((code) => process.exit(code));
  };
  const exited = await server.exited;
  if (!stopping) {
    log(`server exited by itself with ${exited.code ?? exited.signal}`);
    process.exit(exited.code === 0 ? 0 : 1);
  }
  await stopping;
}

// 3. Run the client against it.
log(`server ready; running the client against ${rpcUrl}`);
const client = await run('client', [join(outDir, 'sample', 'client', 'main.js'), rpcUrl, httpUrl]).exited;
const clientCode = client.code ?? 1;
log(`client exited with ${client.code ?? client.signal}`);

// 4. Stop the server gracefully.
const serverCode = await stopServer();

const code = clientCode !== 0 ? clientCode : serverCode;
log(code === 0 ? 'OK' : 'FAILED');
process.exit(code);
