#!/usr/bin/env node
// Adds the platform-specific optional dependencies that are missing from package-lock.json.
//
// Why: when the lock file is written by an `npm install` against a registry that only carries
// the native packages of some platforms (e.g. a mirror with just linux-x64/arm64 builds of
// @swc/core or unrs-resolver), npm silently leaves the other platforms' optional packages out.
// `npm ci` then refuses the lock ("package.json and package-lock.json ... are in sync ...
// Missing: @swc/core-darwin-arm64@ from lock file"), on every machine.
//
// This adds an entry `{ version, optional: true }` (plus `dev` as its parent) for every
// optionalDependency whose `node_modules/<name>` entry is absent, with the exact version the
// parent pins. `npm ci` then accepts the lock; on other platforms npm fetches those packages
// by version as usual, here it skips them. Later `npm install`s keep the entries.
//
//   node scripts/lock-fill-optional.mjs          # fix package-lock.json in place
//   node scripts/lock-fill-optional.mjs --check  # exit 1 if entries are missing
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'package-lock.json');
const check = process.argv.includes('--check');
const lock = JSON.parse(readFileSync(file, 'utf8'));
const EXACT = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/;

const added = [];
const skipped = [];
for (const [key, entry] of Object.entries(lock.packages ?? {})) {
  for (const [name, spec] of Object.entries(entry.optionalDependencies ?? {})) {
    // Where Node would look first: nested under the parent, then hoisted to the top.
    const nested = `${key ? `${key}/` : ''}node_modules/${name}`;
    const top = `node_modules/${name}`;
    if (lock.packages[nested] || lock.packages[top]) continue;
    if (!EXACT.test(spec)) {
      skipped.push(`${name}@${spec} (wanted by ${key || 'the root'}): not an exact version`);
      continue;
    }
    lock.packages[top] = { version: spec, ...(entry.dev ? { dev: true } : {}), optional: true };
    added.push(`${name}@${spec}`);
  }
}

for (const s of skipped) console.error(`lock-fill-optional: skipped ${s}`);
if (check) {
  if (added.length) console.error(`lock-fill-optional: ${added.length} optional dependencies missing from package-lock.json:\n  ${added.join('\n  ')}`);
  process.exit(added.length || skipped.length ? 1 : 0);
}
if (added.length) {
  // npm's own order: '' first, then by locale.
  const sorted = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b, 'en'))));
  lock.packages = sorted;
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
}
console.log(`lock-fill-optional: added ${added.length} entries${added.length ? `:\n  ${added.join('\n  ')}` : ''}`);
process.exit(skipped.length ? 1 : 0);
