#!/usr/bin/env node
// Last step of `npm run build`: marks each half of the dual build with its module type.
//
// The root package.json says "type": "module", so without a marker Node would load the
// CommonJS files in dist/cjs as ESM and fail ("exports is not defined"). A package.json
// with only "type" in a sub-directory overrides that for the files below it.
//
// It also checks that the two halves really are what they claim to be, so a tsconfig
// change that silently emits the wrong format fails the build instead of the consumers, and
// that every file package.json "exports" and "typesVersions" name (each subpath's entry, ESM and
// CJS, code and types) was built: a new subpath whose entry is missing fails here.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const halves = [
  { dir: 'dist/esm', type: 'module' },
  { dir: 'dist/cjs', type: 'commonjs' },
];

let failed = false;
for (const { dir, type } of halves) {
  const index = join(root, dir, 'index.js');
  if (!existsSync(index) || !existsSync(join(root, dir, 'index.d.ts'))) {
    console.error(`fix-dual: ${dir}/index.js or index.d.ts is missing; did tsc run?`);
    failed = true;
    continue;
  }
  const code = readFileSync(index, 'utf8');
  const looksCjs = /^"use strict";/m.test(code) && /\bexports\.\w+\s*=/.test(code) && /\brequire\(/.test(code);
  const looksEsm = /^export\s/m.test(code) && !/\brequire\(/.test(code);
  if (type === 'commonjs' ? !looksCjs : !looksEsm) {
    console.error(`fix-dual: ${dir}/index.js does not look like ${type === 'commonjs' ? 'CommonJS' : 'an ES module'}`);
    failed = true;
    continue;
  }
  writeFileSync(join(root, dir, 'package.json'), `${JSON.stringify({ type }, null, 2)}\n`);
  console.log(`fix-dual: ${dir}/package.json -> {"type":"${type}"}`);
}

/** Every file "exports" (all conditions, all subpaths) and "typesVersions" point at. */
function targets(value, out = new Set()) {
  if (typeof value === 'string') out.add(value);
  else if (Array.isArray(value)) for (const v of value) targets(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) targets(v, out);
  return out;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
for (const target of targets([pkg.exports, pkg.typesVersions, pkg.main, pkg.module, pkg.types])) {
  if (!existsSync(join(root, target))) {
    console.error(`fix-dual: package.json names ${target}, which the build did not make`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
