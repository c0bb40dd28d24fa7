// What the harnesses (run.mjs, cluster.mjs) benchmark and where: the built package, and the
// machine, versions and commit that go into every results file.
import { execSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Checks that dist/ exists (building it when it is missing, or always with `build`) and warns
 * when a file of src/ is newer than the build.
 */
export function ensureDist(root, { build = false } = {}) {
  const entry = path.join(root, 'dist/esm/index.js');
  if (build || !fs.existsSync(entry)) {
    console.log(build ? 'building (npm run build)…' : 'dist/esm/index.js is missing: building (npm run build)…');
    execSync('npm run build', { cwd: root, stdio: 'inherit' });
  }
  const distTime = fs.statSync(entry).mtimeMs;
  let newest = 0;
  let newestFile = '';
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const t = fs.statSync(p).mtimeMs;
        if (t > newest) [newest, newestFile] = [t, p];
      }
    }
  };
  if (fs.existsSync(path.join(root, 'src'))) walk(path.join(root, 'src'));
  const stale = newest > distTime;
  if (stale) {
    console.log(`WARNING: dist/ is older than ${path.relative(root, newestFile)}: this benchmarks the last build. Run \`npm run build\` (or pass --build).`);
  }
  return { entry: fileURLToPath(import.meta.resolve('nestjs-ws-msgpack')), builtAt: new Date(distTime).toISOString(), staleVsSrc: stale };
}

/** The machine, Node, the commit, and the versions of `packages` (the package itself is read from package.json). */
export function machine(root, packages) {
  const version = (name) => {
    try {
      const file = name === 'nestjs-ws-msgpack' ? 'package.json' : `node_modules/${name}/package.json`;
      return JSON.parse(fs.readFileSync(path.join(root, file), 'utf8')).version;
    } catch {
      return undefined;
    }
  };
  const git = (cmd) => {
    try {
      return execSync(`git ${cmd}`, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    } catch {
      return undefined;
    }
  };
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    date: new Date().toISOString(),
    commit: git('rev-parse --short HEAD'),
    srcChanges: Boolean(git('status --porcelain -- src')),
    versions: Object.fromEntries(packages.map((n) => [n, version(n)])),
  };
}
