// Bundles the browser client (or any entry) with esbuild for the browser, and refuses a bundle
// that pulls in what cannot work in a browser. Shared by scripts/size.mjs (the size budget) and
// test/support/browser.ts (the page the browser e2e tests load), so both check the same things.
//
// Everything is bundled (nothing external): @msgpack/msgpack, the parts of rxjs in use, ...
// Refused, with the importer named:
//   - Node built-ins (`node:*` and bare `fs`, `net`, ...): esbuild's platform 'browser' cannot
//     resolve them, and the plugin below names them as such;
//   - @nestjs/* (server-side framework, Node-only, huge);
//   - ws (its "browser" entry is a stub that throws: the browser has its own WebSocket).
// Type-only imports are erased by esbuild before resolution, so `import type` of these is fine.
import { existsSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_ENTRY = 'src/web/index.ts';

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, m.split('/')[0]]));

/** Why an import path may not be in the browser bundle, or undefined when it may. */
export function forbiddenImport(path) {
  if (path.startsWith('node:') || BUILTINS.has(path.split('/')[0])) return 'a Node built-in';
  if (path === '@nestjs' || path.startsWith('@nestjs/')) return 'NestJS (server-side, Node-only)';
  if (path === 'ws' || path.startsWith('ws/')) return 'the Node WebSocket library (the browser has its own WebSocket)';
  return undefined;
}

/** Why an esbuild metafile input may not be in the browser bundle, or undefined when it may. */
function forbiddenInput(input) {
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
  if (m) return forbiddenImport(m[1]);
  // esbuild names unresolvable/disabled modules like "(disabled):fs" or keeps "node:fs".
  const bare = input.replace(/^\([^)]*\):/, '');
  return bare.startsWith('node:') || BUILTINS.has(bare) ? 'a Node built-in' : undefined;
}

const guard = {
  name: 'browser-only',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      const why = forbiddenImport(args.path);
      if (!why) return undefined;
      return { errors: [{ text: `"${args.path}" is ${why}: it cannot be in the browser bundle (imported by ${args.importer.replace(`${ROOT}/`, '')})` }] };
    });
  },
};

/**
 * Bundles `entry` (relative to the repository root, or absolute) for the browser.
 *
 * @param {object} [options]
 * @param {string} [options.entry] default src/web/index.ts
 * @param {'esm' | 'iife'} [options.format] default 'esm'
 * @param {string} [options.globalName] the global the IIFE assigns the entry's exports to
 * @param {boolean} [options.minify] default false
 * @returns {Promise<{ text: string; metafile: import('esbuild').Metafile; entry: string }>}
 *   Rejects with the offending imports listed when the entry does not exist, does not build,
 *   or pulls in something forbidden.
 */
export async function bundleForBrowser({ entry = DEFAULT_ENTRY, format = 'esm', globalName, minify = false } = {}) {
  const file = resolve(ROOT, entry);
  if (!existsSync(file)) throw new Error(`the browser client entry ${entry} does not exist (${file})`);
  let result;
  try {
    result = await esbuild.build({
      entryPoints: [file],
      absWorkingDir: ROOT,
      // An entry outside the repository (a throwaway one in /tmp) still finds the repository's packages.
      nodePaths: [join(ROOT, 'node_modules')],
      bundle: true,
      platform: 'browser',
      // esbuild's default resolution (no `conditions`, default `mainFields`), which is what Vite and
      // webpack 5 do by default too: rxjs resolves to its esm5 build with tslib, about 0.75 KB
      // gzipped more than the ES2015 build Angular CLI picks (condition 'es2015'). The budget is
      // measured the way most apps bundle, not the friendliest way.
      // What every browser of the last few years runs (native class fields): Angular CLI's default target too.
      target: 'es2022',
      format,
      ...(globalName ? { globalName } : {}),
      minify,
      legalComments: 'none',
      metafile: true,
      write: false,
      logLevel: 'silent',
      plugins: [guard],
    });
  } catch (e) {
    const errors = e.errors?.map((m) => `  ${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`) ?? [`  ${e.message}`];
    throw new Error(`esbuild could not bundle ${entry} for the browser:\n${errors.join('\n')}`, { cause: e });
  }
  const bad = Object.keys(result.metafile.inputs)
    .map((input) => [input, forbiddenInput(input)])
    .filter(([, why]) => why);
  if (bad.length) throw new Error(`the browser bundle of ${entry} contains what cannot run in a browser:\n${bad.map(([i, why]) => `  ${i}: ${why}`).join('\n')}`);
  return { text: result.outputFiles[0].text, metafile: result.metafile, entry: file };
}

/** Stops esbuild's service process (it is started again by the next build). */
export function stopEsbuild() {
  return esbuild.stop();
}
