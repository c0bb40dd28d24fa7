// ESLint 10 flat config: ESLint's and typescript-eslint's recommended rules, without type
// information (fast: `npm run lint` lints the whole tree in a few seconds; `npm run typecheck`
// is the type-level check).
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// ---------------------------------------------------------------------------------------------
// The layers of src/ (docs/DESIGN.md, "Layers"): each folder may import only the folders listed
// for it, and only the packages its layer allows; a lower layer importing a higher one fails lint.
const FOLDERS = ['protocol', 'connection', 'session', 'node', 'peer', 'cluster', 'redis', 'tracing', 'nest', 'patches', 'decorators', 'web', 'server', 'client', 'health'];
const NODE_BUILTINS = [
  'node:*',
  'http',
  'https',
  'net',
  'tls',
  'stream',
  'fs',
  'path',
  'os',
  'crypto',
  'zlib',
  'events',
  'module',
  'url',
  'util',
  'buffer',
  'child_process',
  'worker_threads',
];
const NO_NODE = { group: NODE_BUILTINS, message: 'this layer runs in browsers too: no Node built-in' };
const NO_WS = { group: ['ws', 'ws/*'], message: 'this layer works over any WebSocket-like object: no `ws`' };
const NO_NEST = { group: ['@nestjs/*'], message: 'this layer knows nothing of Nest' };
const NO_RXJS = { group: ['rxjs', 'rxjs/*'], message: 'the protocol is pure data: no rxjs' };
const NO_OTEL = { group: ['@opentelemetry/*'], message: 'OpenTelemetry is loaded only by src/tracing' };
/** folder: [the src/ folders (or single files) it may import, the package rules] */
export const LAYERS = {
  protocol: [
    ['protocol', 'patches/msgpack.js'],
    [NO_NODE, NO_WS, NO_NEST, NO_RXJS, NO_OTEL],
  ],
  connection: [
    ['protocol', 'connection'],
    [NO_NODE, NO_WS, NO_NEST, NO_OTEL],
  ],
  session: [
    ['protocol', 'connection', 'session'],
    [NO_NODE, NO_WS, NO_NEST, NO_OTEL],
  ],
  web: [
    ['protocol', 'connection', 'session', 'web'],
    [NO_NODE, NO_WS, NO_NEST, NO_OTEL],
  ],
  peer: [
    ['protocol', 'connection', 'peer'],
    [NO_NODE, NO_WS, NO_NEST, NO_OTEL],
  ],
  cluster: [
    ['protocol', 'connection', 'peer', 'cluster'],
    [NO_NODE, NO_WS, NO_NEST, NO_OTEL],
  ],
  redis: [
    ['protocol', 'connection', 'peer', 'cluster', 'redis'],
    [NO_WS, NO_NEST, NO_OTEL],
  ],
  node: [
    ['protocol', 'connection', 'node', 'patches/ws.js', 'patches/http-upgrade-router.js'],
    [NO_NEST, NO_OTEL],
  ],
  tracing: [
    ['protocol', 'connection', 'tracing'],
    [NO_WS, NO_NEST],
  ],
  nest: [['protocol', 'connection', 'peer', 'tracing', 'nest', 'patches/nest-filters.js', 'patches/nest-pipes.js'], [NO_OTEL]],
  patches: [['protocol', 'connection', 'nest', 'patches'], [NO_OTEL]],
  decorators: [['protocol', 'peer', 'nest', 'decorators'], [NO_OTEL]],
  server: [['protocol', 'connection', 'session', 'node', 'peer', 'cluster', 'tracing', 'nest', 'patches', 'server'], [NO_OTEL]],
  client: [['protocol', 'connection', 'session', 'node', 'peer', 'tracing', 'nest', 'patches', 'client'], [NO_OTEL]],
  health: [['protocol', 'connection', 'session', 'peer', 'server', 'client', 'health'], [NO_OTEL]],
};
function layerRules(folder, [may, packages]) {
  const groups = [];
  for (const other of FOLDERS) {
    if (may.includes(other)) continue;
    const files = may.filter((m) => m.startsWith(`${other}/`));
    groups.push(`../${other}/*`, ...files.map((f) => `!../${f}`));
  }
  return {
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [...(groups.length ? [{ group: groups, message: `src/${folder} may import only ${may.join(', ')} (docs/DESIGN.md, "Layers")` }] : []), ...packages] },
      ],
    },
  };
}

export default defineConfig(
  globalIgnores(['dist/', 'dist-sample/', 'node_modules/', 'coverage/', '.bench-out/', '.perf/']),

  js.configs.recommended,
  tseslint.configs.recommended,

  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.node },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_`-prefixed names are deliberately unused (callback signatures, destructuring).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },

  // The library itself: no `any` in what ships.
  {
    files: ['src/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' },
  },

  // Tests, sample and benchmarks poke at internals and untyped wire data: `any` is tolerated there but shown.
  {
    files: ['test/**/*.ts', 'sample/**/*.ts', 'bench/**/*.ts'],
    languageOptions: { globals: { ...globals.node, ...globals.jest } },
    rules: { '@typescript-eslint/no-explicit-any': 'warn' },
  },

  // CommonJS files (the CJS package smoke test).
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { ...globals.node } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },

  // The layers (above).
  ...Object.entries(LAYERS).map(([folder, rule]) => layerRules(folder, rule)),
);
