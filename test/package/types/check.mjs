#!/usr/bin/env node
// `npm run types:consumer`: type-checks consumer.ts against the built package (dist/, run
// `npm run build` first) with skipLibCheck off, as a consumer's compiler would see it, twice:
//
//   - as an ES module (consumer.ts; the package is "type": "module"): every subpath's "import"
//     condition, dist/esm/**.d.ts;
//   - as CommonJS (the same text as consumer.cts): every subpath's "require" condition,
//     dist/cjs/**.d.ts, which the CJS build emits without checking them (tsconfig.cjs.json noCheck).
//
// Then checks that each run loaded the types of every subpath package.json "exports" names (so a
// new subpath that consumer.ts does not import fails here), and only from its own half of dist/.
// Node10 resolution ("typesVersions", a CommonJS Nest 11 app) is covered by test/fresh-apps.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const consumer = join(here, 'consumer.ts');
const text = readFileSync(consumer, 'utf8');

const parsed = ts.getParsedCommandLineOfConfigFile(
  join(here, 'tsconfig.json'),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  },
);
if (parsed.errors.length) throw new Error(ts.formatDiagnostics(parsed.errors, ts.createCompilerHost({})));
const options = parsed.options;
if (options.skipLibCheck !== false) throw new Error('test/package/types/tsconfig.json must set skipLibCheck: false');

const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');
const runs = [
  { name: 'ES module ("import" conditions)', file: consumer, condition: 'import' },
  { name: 'CommonJS ("require" conditions, consumer.ts read as consumer.cts)', file: join(here, 'consumer.cts'), condition: 'require' },
];

let failed = false;
for (const run of runs) {
  const host = ts.createCompilerHost(options);
  if (run.file !== consumer) {
    if (existsSync(run.file)) throw new Error(`${run.file} exists: the CommonJS run reads consumer.ts under that name, delete it`);
    const { fileExists, readFile, getSourceFile } = host;
    host.fileExists = (f) => resolve(f) === run.file || fileExists.call(host, f);
    host.readFile = (f) => (resolve(f) === run.file ? text : readFile.call(host, f));
    host.getSourceFile = (f, languageVersion, ...rest) =>
      resolve(f) === run.file ? ts.createSourceFile(f, text, languageVersion, true) : getSourceFile.call(host, f, languageVersion, ...rest);
  }
  const program = ts.createProgram({ rootNames: [run.file], options, host });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const loaded = new Set(program.getSourceFiles().map((f) => relative(root, f.fileName).split('\\').join('/')));
  const problems = [];
  for (const subpath of subpaths) {
    const types = pkg.exports[subpath]?.[run.condition]?.types?.replace(/^\.\//, '');
    if (!types) problems.push(`package.json "exports" ${subpath} has no ${run.condition}.types`);
    else if (!loaded.has(types)) problems.push(`consumer.ts does not import ${subpath === '.' ? pkg.name : `${pkg.name}/${subpath.slice(2)}`} (${types} was not loaded)`);
  }
  const other = run.condition === 'import' ? 'dist/cjs/' : 'dist/esm/';
  const stray = [...loaded].filter((f) => f.startsWith(other));
  if (stray.length) problems.push(`loaded the other half of the build: ${stray.slice(0, 5).join(', ')}`);
  if (diagnostics.length || problems.length) {
    failed = true;
    console.error(`types:consumer: ${run.name}: FAIL`);
    if (diagnostics.length) console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, host));
    for (const p of problems) console.error(`  ${p}`);
  } else {
    const dts = [...loaded].filter((f) => f.startsWith('dist/')).length;
    console.log(`types:consumer: ${run.name}: OK (${subpaths.map((s) => (s === '.' ? pkg.name : s)).join(', ')}; ${dts} .d.ts files of dist/)`);
  }
}
process.exit(failed ? 1 : 0);
