#!/usr/bin/env node
// Fresh apps from the packed package: builds nestjs-ws-msgpack, packs it (`npm pack`), and makes
// two new apps in temp directories that depend on the tarball, as users' apps would:
//
//   nest11-cjs  Nest 11, "type": "commonjs", TypeScript compiled by tsc to CommonJS (moduleResolution
//               Node10, so the subpath types come from "typesVersions"), @nestjs/terminus 11
//   nest12-esm  Nest 12, "type": "module", NodeNext, @nestjs/terminus 12
//
// Each app (sources in test/fresh-apps/src, package.json and tsconfig.json in test/fresh-apps/<app>)
// is installed with `npm install --prefer-offline` (the npm cache is warm after `npm ci` and CI's
// Nest 11 step), type-checked with skipLibCheck off and compiled, then run: a WsMsgpackServer
// microservice with a unary and a stream handler, a client app with WsMsgpackClientModule.register,
// a call, the stream through send() and iterate(), and terminus health checks with
// WsMsgpackHealthIndicator (healthy while up, unhealthy once the server closed). The app must then
// exit by itself.
//
//   node test/fresh-apps/run.mjs [--no-build] [--keep] [--only nest11-cjs|nest12-esm] [--timeout <s>]
//
//   --no-build   pack dist/ as it is (CI: right after `npm run build`)
//   --keep       keep the temp directory (it is always kept when something failed)
//   --timeout    overall limit in seconds (default 300): every command is ended at that deadline
//
// One line per step; on a failure the failing command's output is printed and the exit status is 1.
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const TIMEOUT_S = Number(option('--timeout', '300'));
if (!(TIMEOUT_S > 0)) {
  console.error('fresh-apps: --timeout must be a number of seconds > 0');
  process.exit(2);
}
const APPS = [
  { name: 'nest11-cjs', nest: 11, terminus: 11, type: 'commonjs' },
  { name: 'nest12-esm', nest: 12, terminus: 12, type: 'module' },
].filter((a) => option('--only', a.name) === a.name);
if (APPS.length === 0) {
  console.error(`fresh-apps: --only must be nest11-cjs or nest12-esm`);
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'nestjs-ws-msgpack-fresh-apps-'));
console.log(`fresh-apps: node ${process.version}, temp directory ${tmp}, limit ${TIMEOUT_S}s`);
const started = Date.now();
const deadline = started + TIMEOUT_S * 1000;
const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
const running = new Set();

// The global limit: also ends what is still running (each command is its own process group).
const watchdog = setTimeout(() => {
  console.error(`fresh-apps: FAIL: not done within the ${TIMEOUT_S}s limit (the apps are kept in ${tmp})`);
  for (const child of running) killGroup(child);
  process.exit(1);
}, TIMEOUT_S * 1000);

// Ended from outside (CI's step time limit, Ctrl-C): end the commands too (they are process groups of their own).
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.error(`fresh-apps: FAIL: ended by ${signal} (the apps are kept in ${tmp})`);
    for (const child of running) killGroup(child);
    process.exit(1);
  });
}

function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// The environment of `npm run` names this repository (npm_config_local_prefix, INIT_CWD, npm_package_*):
// an `npm install` in an app directory must not see it, or it would install here.
const childEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|npm_config_call$|npm_command$|INIT_CWD$)/.test(k)),
);

class CommandError extends Error {
  constructor(message, output) {
    super(message);
    this.output = output;
  }
}

/**
 * Runs a command in its own process group, within what is left of the global limit. Resolves with
 * its output; rejects with a CommandError carrying the output. `onLine` sees stdout lines as they come.
 */
function run(cmd, argv, { cwd, env = {}, onLine } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd, env: { ...childEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    running.add(child);
    let output = '';
    let pending = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (!onLine) return;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const line of lines) onLine(line);
    });
    child.stderr.on('data', (chunk) => (output += chunk));
    const left = Math.max(1, deadline - Date.now());
    const timer = setTimeout(() => killGroup(child), left);
    child.on('error', (err) => {
      clearTimeout(timer);
      running.delete(child);
      reject(new CommandError(`${cmd} ${argv.join(' ')}: ${err.message}`, output));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      if (onLine && pending) onLine(pending);
      if (code === 0) resolve(output);
      else reject(new CommandError(`\`${cmd} ${argv.join(' ')}\` (in ${cwd}) ${signal ? `was ended by ${signal}` : `exited with ${code}`}`, output));
    });
  });
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

/** Builds (unless --no-build) and packs the package; returns the tarball's path. */
async function pack() {
  if (!flag('--no-build')) {
    const t = Date.now();
    await run('npm', ['run', 'build'], { cwd: root });
    console.log(`fresh-apps: ok: npm run build (${secs(Date.now() - t)})`);
  }
  for (const f of ['dist/esm/index.js', 'dist/cjs/index.js', 'dist/esm/health/index.js', 'dist/cjs/health/index.js', 'dist/cjs/health/index.d.ts']) {
    check(existsSync(join(root, f)), `${f} is missing: run \`npm run build\` (or leave out --no-build)`);
  }
  const t = Date.now();
  // --ignore-scripts: prepack would build again (and its output would mix with the JSON).
  const out = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], { cwd: root });
  const [info] = JSON.parse(out.slice(out.indexOf('[')));
  const files = new Set(info.files.map((f) => f.path));
  for (const f of ['dist/esm/health/index.js', 'dist/esm/health/index.d.ts', 'dist/cjs/health/index.js', 'dist/cjs/health/index.d.ts', 'dist/cjs/package.json']) {
    check(files.has(f), `the tarball has no ${f}`);
  }
  const tarball = join(tmp, info.filename);
  console.log(`fresh-apps: ok: npm pack -> ${info.filename} (${info.entryCount} files, ${(info.size / 1024).toFixed(0)} KB, ${secs(Date.now() - t)})`);
  return tarball;
}

/** Makes, installs, compiles and runs one app. */
async function freshApp(app, tarball) {
  const dir = join(tmp, app.name);
  const say = (line) => console.log(`[${app.name}] ${line}`);
  mkdirSync(dir);
  // The sources open with `// @ts-nocheck` (and the eslint comment allowing it) for the repo's own
  // typecheck, which runs before the build, when the package they import by name has no dist/ yet;
  // the app's tsc checks them in full, without those two lines.
  mkdirSync(join(dir, 'src'));
  for (const f of readdirSync(join(here, 'src'))) {
    const text = readFileSync(join(here, 'src', f), 'utf8').replace(/^\/\/ eslint-disable-next-line @typescript-eslint\/ban-ts-comment\b.*\n\/\/ @ts-nocheck\b.*\n/, '');
    check(!text.includes('@ts-nocheck'), `test/fresh-apps/src/${f}: @ts-nocheck left in the app's copy`);
    writeFileSync(join(dir, 'src', f), text);
  }
  cpSync(join(here, app.name, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  const pkg = JSON.parse(readFileSync(join(here, app.name, 'package.json'), 'utf8'));
  pkg.dependencies = { 'nestjs-ws-msgpack': `file:${tarball}`, ...pkg.dependencies };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);

  let t = Date.now();
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir });
  const version = (name) => JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version;
  const versions = ['@nestjs/core', '@nestjs/microservices', '@nestjs/terminus', 'nestjs-ws-msgpack'].map((n) => `${n}@${version(n)}`);
  check(version('@nestjs/core').startsWith(`${app.nest}.`), `installed @nestjs/core ${version('@nestjs/core')}, expected ${app.nest}.x`);
  check(version('@nestjs/terminus').startsWith(`${app.terminus}.`), `installed @nestjs/terminus ${version('@nestjs/terminus')}, expected ${app.terminus}.x`);
  say(`ok: npm install (${versions.join(' ')}; ${secs(Date.now() - t)})`);

  // What Node resolves the package and the subpath to, from the app: dist/cjs for require, dist/esm for import.
  const half = app.type === 'commonjs' ? 'cjs' : 'esm';
  const resolver =
    app.type === 'commonjs'
      ? "for (const s of ['nestjs-ws-msgpack', 'nestjs-ws-msgpack/terminus']) console.log(require.resolve(s))"
      : "for (const s of ['nestjs-ws-msgpack', 'nestjs-ws-msgpack/terminus']) console.log(import.meta.resolve(s))";
  const resolved = (await run('node', [...(app.type === 'module' ? ['--input-type=module'] : []), '-e', resolver], { cwd: dir })).trim().split('\n');
  check(/[\\/]dist[\\/]/.test(resolved[0]) && resolved[0].includes(`dist/${half}/index.js`), `nestjs-ws-msgpack resolved to ${resolved[0]}, expected dist/${half}/index.js`);
  check(resolved[1].includes(`dist/${half}/health/index.js`), `nestjs-ws-msgpack/terminus resolved to ${resolved[1]}, expected dist/${half}/health/index.js`);
  say(`ok: ${app.type === 'commonjs' ? 'require' : 'import'} resolves nestjs-ws-msgpack and nestjs-ws-msgpack/terminus to dist/${half}`);

  t = Date.now();
  await run('node', [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: dir });
  const emitted = readFileSync(join(dir, 'dist', 'client.module.js'), 'utf8');
  const cjs = /require\("nestjs-ws-msgpack\/terminus"\)/.test(emitted);
  const esm = /from ['"]nestjs-ws-msgpack\/terminus['"]/.test(emitted);
  check(app.type === 'commonjs' ? cjs && !esm : esm && !cjs, `tsc did not emit ${app.type === 'commonjs' ? 'CommonJS' : 'an ES module'} (dist/client.module.js)`);
  say(`ok: tsc (${app.type === 'commonjs' ? 'CommonJS, moduleResolution Node10' : 'ESM, NodeNext'}, skipLibCheck off; ${secs(Date.now() - t)})`);

  t = Date.now();
  await run('node', ['dist/main.js'], { cwd: dir, env: { FRESH_APP_LABEL: app.name }, onLine: (line) => line && console.log(line) });
  say(`ok: the app ran and exited 0 (${secs(Date.now() - t)})`);
}

let failed = false;
try {
  const tarball = await pack();
  const results = await Promise.allSettled(APPS.map((app) => freshApp(app, tarball)));
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') return;
    failed = true;
    const e = r.reason;
    console.error(`[${APPS[i].name}] FAIL: ${e instanceof Error ? e.message : String(e)}`);
    if (e instanceof CommandError && e.output) console.error(`----- output of the failing command -----\n${e.output.trimEnd()}\n-----------------------------------------`);
  });
} catch (e) {
  failed = true;
  console.error(`fresh-apps: FAIL: ${e instanceof Error ? e.message : String(e)}`);
  if (e instanceof CommandError && e.output) console.error(`----- output of the failing command -----\n${e.output.trimEnd()}\n-----------------------------------------`);
}
clearTimeout(watchdog);
if (failed || flag('--keep')) {
  console.log(`fresh-apps: the apps are kept in ${tmp}`);
} else {
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`fresh-apps: ${failed ? 'FAILED' : 'all apps passed'} (${secs(Date.now() - started)})`);
process.exit(failed ? 1 : 0);
