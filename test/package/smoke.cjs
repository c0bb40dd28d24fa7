// Package smoke test, CommonJS side: `require('nestjs-ws-msgpack')` by package name (the package
// references itself through its "exports"), which must resolve to the built dist/cjs, then one
// request/response round trip through a real Nest microservice. Every subpath of "exports" must
// resolve to its dist/cjs file and export exactly the names test/package/exports.json lists.
// Meant for Nest 11 (CommonJS):
//
//   npm run build
//   npm i --no-save @nestjs/common@11 @nestjs/core@11 @nestjs/microservices@11 ...
//   node test/package/smoke.cjs
//
// Decorators are applied by hand, exactly as the TypeScript decorator helper would. Exits 0 on
// success, 1 on any failure, and never hangs: a watchdog ends the process after TIMEOUT_MS.
'use strict';
require('reflect-metadata');
const path = require('node:path');

const TIMEOUT_MS = 15_000;
const watchdog = setTimeout(() => {
  console.error(`smoke.cjs: FAIL: no result within ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function main() {
  const resolved = require.resolve('nestjs-ws-msgpack');
  check(
    resolved.endsWith(`${path.sep}dist${path.sep}cjs${path.sep}index.js`),
    `'nestjs-ws-msgpack' resolved to ${resolved}, expected .../dist/cjs/index.js (run \`npm run build\`)`,
  );

  // Every subpath: where it resolves, and exactly which names it exports. The browser entry and
  // the protocol entry first: they must load without any @nestjs/* package (and without ws).
  const pkg = require('../../package.json');
  const expected = require('./exports.json');
  const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');
  const specifierOf = (k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`);
  check(
    JSON.stringify(subpaths.map(specifierOf).sort()) ===
      JSON.stringify(
        Object.keys(expected)
          .filter((k) => !k.startsWith('/'))
          .sort(),
      ),
    `package.json "exports" has ${subpaths.map(specifierOf).join(', ')}; test/package/exports.json lists ${Object.keys(expected).join(', ')}`,
  );
  const browserSafe = ['./client', './protocol'];
  const modules = {};
  for (const subpath of [...browserSafe, ...subpaths.filter((k) => !browserSafe.includes(k))]) {
    const specifier = specifierOf(subpath);
    const file = require.resolve(specifier);
    const want = pkg.exports[subpath].require.default.slice(2).split('/').join(path.sep);
    check(file.endsWith(`${path.sep}${want}`), `'${specifier}' resolved to ${file}, expected .../${want}`);
    modules[specifier] = require(specifier);
    if (browserSafe.includes(subpath)) {
      const loadedNest = Object.keys(require.cache).filter((f) => /[\\/]node_modules[\\/](@nestjs|ws)[\\/]/.test(f));
      check(loadedNest.length === 0, `requiring ${specifier} loaded ${loadedNest.join(', ')}`);
    }
    if (subpath === '.') {
      // ioredis is an optional peer of nestjs-ws-msgpack/redis only: the root entry never loads it.
      const loadedRedis = Object.keys(require.cache).filter((f) => /[\\/]node_modules[\\/]ioredis[\\/]/.test(f));
      check(loadedRedis.length === 0, `requiring ${specifier} loaded ${loadedRedis.join(', ')}`);
    }
    const names = Object.keys(modules[specifier]).sort();
    const missing = expected[specifier].filter((n) => !names.includes(n));
    const extra = names.filter((n) => !expected[specifier].includes(n));
    check(!missing.length && !extra.length, `'${specifier}' exports: missing ${missing.join(', ') || '-'}; not in test/package/exports.json: ${extra.join(', ') || '-'}`);
  }
  const web = modules['nestjs-ws-msgpack/client'];

  const lib = modules['nestjs-ws-msgpack'];
  const { WebSocket: WsWebSocket } = require('ws');
  // The module really is CommonJS (loaded by the CJS loader, not through require(esm)).
  check(require.cache[resolved] && require.cache[resolved].exports === lib, 'dist/cjs/index.js was not loaded as a CommonJS module');
  check(!(Symbol.toStringTag in lib) || lib[Symbol.toStringTag] !== 'Module', 'require() returned an ES module namespace');

  const { Controller, Module } = require('@nestjs/common');
  const { NestFactory } = require('@nestjs/core');
  const { MessagePattern, Payload } = require('@nestjs/microservices');
  const { firstValueFrom, timeout } = require('rxjs');
  const nestVersion = require('@nestjs/core/package.json').version;

  check(lib.WsMsgpackErrorCode === web.WsMsgpackErrorCode, 'the root and the client entry hold different WsMsgpackErrorCode objects');
  check(modules['nestjs-ws-msgpack/protocol'].SUBPROTOCOL_V1 === 'wsmp.v1', 'nestjs-ws-msgpack/protocol SUBPROTOCOL_V1 is not wsmp.v1');
  const { WsMsgpackServer, WsMsgpackClient } = lib;

  // @Controller() class MathController { @MessagePattern('sum') sum(@Payload() data) {...} }
  class MathController {
    sum(data) {
      return data.reduce((a, b) => a + b, 0);
    }
  }
  Payload()(MathController.prototype, 'sum', 0);
  MessagePattern('sum')(MathController.prototype, 'sum', Object.getOwnPropertyDescriptor(MathController.prototype, 'sum'));
  Controller()(MathController);
  // @Module({ controllers: [MathController] }) class AppModule {}
  class AppModule {}
  Module({ controllers: [MathController] })(AppModule);

  const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1' });
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: false });
  let client;
  let webClient;
  try {
    await app.listen();
    const addr = server.address();
    check(addr && addr.port > 0, 'server.address() has no port after listen()');
    client = new WsMsgpackClient({ url: `ws://127.0.0.1:${addr.port}` });
    const result = await firstValueFrom(client.send('sum', [1, 2, 3]).pipe(timeout(5000)));
    check(result === 6, `sum([1,2,3]) answered ${JSON.stringify(result)}, expected 6`);
    // The browser client from the same package (over ws's WebSocket: Node 20 has no global one).
    webClient = new web.WsMsgpackWebClient({ url: `ws://127.0.0.1:${addr.port}`, WebSocket: WsWebSocket });
    const webResult = await webClient.call('sum', [4, 5]);
    check(webResult === 9, `web client sum([4,5]) answered ${JSON.stringify(webResult)}, expected 9`);
    console.log(`smoke.cjs: OK (CommonJS, ${resolved}, @nestjs/core ${nestVersion}): sum([1,2,3]) = ${result}`);
  } finally {
    if (client) await client.close();
    if (webClient) await webClient.close();
    await app.close();
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => {
    console.error('smoke.cjs: FAIL:', err);
    process.exit(1);
  },
);
