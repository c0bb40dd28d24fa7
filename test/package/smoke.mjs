// Package smoke test, ES module side: `import 'nestjs-ws-msgpack'` by package name (the package
// references itself through its "exports"), which must resolve to the built dist/esm, then one
// request/response round trip through a real Nest microservice.
//
//   npm run build && node test/package/smoke.mjs
//
// Plain .mjs has no decorator syntax, so the decorators are applied by hand, exactly as the
// TypeScript decorator helper would. Exits 0 on success, 1 on any failure, and never hangs:
// a watchdog ends the process after TIMEOUT_MS.
import 'reflect-metadata';
import { fileURLToPath } from 'node:url';
import { sep } from 'node:path';
import { createRequire } from 'node:module';

const TIMEOUT_MS = 15_000;
const watchdog = setTimeout(() => {
  console.error(`smoke.mjs: FAIL: no result within ${TIMEOUT_MS} ms`);
  process.exit(1);
}, TIMEOUT_MS);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function main() {
  const resolved = fileURLToPath(import.meta.resolve('nestjs-ws-msgpack'));
  check(
    resolved.endsWith(`${sep}dist${sep}esm${sep}index.js`),
    `'nestjs-ws-msgpack' resolved to ${resolved}, expected .../dist/esm/index.js (run \`npm run build\`)`,
  );

  const clientEntry = fileURLToPath(import.meta.resolve('nestjs-ws-msgpack/client'));
  check(clientEntry.endsWith(`${sep}dist${sep}esm${sep}web${sep}index.js`), `'nestjs-ws-msgpack/client' resolved to ${clientEntry}`);
  const web = await import('nestjs-ws-msgpack/client');
  check(typeof web.WsMsgpackWebClient === 'function', 'nestjs-ws-msgpack/client has no WsMsgpackWebClient');
  const { WebSocket: WsWebSocket } = await import('ws');
  const lib = await import('nestjs-ws-msgpack');
  const { Controller, Module } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { MessagePattern, Payload } = await import('@nestjs/microservices');
  const { firstValueFrom, timeout } = await import('rxjs');
  const nestVersion = createRequire(import.meta.url)('@nestjs/core/package.json').version;

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
    console.log(`smoke.mjs: OK (ESM, ${resolved}, @nestjs/core ${nestVersion}): sum([1,2,3]) = ${result}`);
  } finally {
    await client?.close();
    await webClient?.close();
    await app.close();
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (err) => {
    console.error('smoke.mjs: FAIL:', err);
    process.exit(1);
  },
);
