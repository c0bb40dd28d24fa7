// Package smoke test, CommonJS side: `require('nestjs-ws-msgpack')` by package name (the package
// references itself through its "exports"), which must resolve to the built dist/cjs, then one
// request/response round trip through a real Nest microservice. Meant for Nest 11 (CommonJS):
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

  // The browser entry first: it must load without any @nestjs/* package (and without ws).
  const clientEntry = require.resolve('nestjs-ws-msgpack/client');
  check(clientEntry.endsWith(`${path.sep}dist${path.sep}cjs${path.sep}web${path.sep}index.js`), `'nestjs-ws-msgpack/client' resolved to ${clientEntry}`);
  const web = require('nestjs-ws-msgpack/client');
  const loadedNest = Object.keys(require.cache).filter((f) => /[\\/]node_modules[\\/](@nestjs|ws)[\\/]/.test(f));
  check(loadedNest.length === 0, `requiring nestjs-ws-msgpack/client loaded ${loadedNest.join(', ')}`);
  check(typeof web.WsMsgpackWebClient === 'function', 'nestjs-ws-msgpack/client has no WsMsgpackWebClient');

  const lib = require('nestjs-ws-msgpack');
  const { WebSocket: WsWebSocket } = require('ws');
  // The module really is CommonJS (loaded by the CJS loader, not through require(esm)).
  check(require.cache[resolved] && require.cache[resolved].exports === lib, 'dist/cjs/index.js was not loaded as a CommonJS module');
  check(!(Symbol.toStringTag in lib) || lib[Symbol.toStringTag] !== 'Module', 'require() returned an ES module namespace');

  const { Controller, Module } = require('@nestjs/common');
  const { NestFactory } = require('@nestjs/core');
  const { MessagePattern, Payload } = require('@nestjs/microservices');
  const { firstValueFrom, timeout } = require('rxjs');
  const nestVersion = require('@nestjs/core/package.json').version;

  for (const name of ['WsMsgpackServer', 'WsMsgpackClient', 'WsMsgpackContext', 'WsMsgpackError', 'WsMessagePattern', 'SUBPROTOCOL_V1']) {
    check(lib[name] !== undefined, `export ${name} is missing`);
  }
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
