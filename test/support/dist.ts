import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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
  if (existsSync(entry) && statSync(entry).mtimeMs >= newest(join(root, 'src'))) return;
  execSync('npm run build', { cwd: root, stdio: 'ignore', timeout: 120_000 });
}
