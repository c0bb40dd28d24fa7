import { execSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function newest(dir: string): number {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Makes sure dist/ (what tests that run the package in a child process load) is built from the
 * current src/: builds it when it is missing or older (CI builds before the tests, so there it
 * is a no-op).
 */
export function ensureBuilt(): void {
  const entry = join(root, 'dist/esm/index.js');
  const fresh = (): boolean => existsSync(entry) && statSync(entry).mtimeMs >= newest(join(root, 'src'));
  if (fresh()) return;
  // One build at a time: two jest workers building at once would remove each other's dist/.
  const lock = join(root, '.dist-build.lock');
  const deadline = Date.now() + 180_000;
  for (;;) {
    try {
      mkdirSync(lock); // atomic: whoever creates it builds
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`ensureBuilt: ${lock} held for 3 minutes (a crashed build? remove it)`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // another worker builds
    }
  }
  try {
    if (!fresh()) execSync('npm run build', { cwd: root, stdio: 'ignore', timeout: 120_000 });
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
