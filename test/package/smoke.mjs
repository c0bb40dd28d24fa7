// Package smoke test, ES module side: `import 'nestjs-ws-msgpack'` by package name (the package
// references itself through its "exports"), which must resolve to the built dist/esm, then one
// request/response round trip through a real Nest microservice. Every subpath of "exports" must
// resolve to its dist/esm file and export exactly the names test/package/exports.json lists.
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
import { readFileSync } from 'node:fs';

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
  check(resolved.endsWith(`${sep}dist${sep}esm${sep}index.js`), `'nestjs-ws-msgpack' resolved to ${resolved}, expected .../dist/esm/index.js (run \`npm run build\`)`);

  // Every subpath: where it resolves, and exactly which names it exports.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const expected = JSON.parse(readFileSync(new URL('./exports.json', import.meta.url), 'utf8'));
  const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');
  const specifiers = subpaths.map((k) => (k === '.' ? pkg.name : `${pkg.name}/${k.slice(2)}`));
  check(
    JSON.stringify(specifiers.toSorted()) ===
      JSON.stringify(
        Object.keys(expected)
          .filter((k) => !k.startsWith('/'))
          .toSorted(),
      ),
    `package.json "exports" has ${specifiers.join(', ')}; test/package/exports.json lists ${Object.keys(expected).join(', ')}`,
  );
  const modules = {};
  for (const [i, specifier] of specifiers.entries()) {
    const file = fileURLToPath(import.meta.resolve(specifier));
    const want = pkg.exports[subpaths[i]].import.default.slice(2).split('/').join(sep);
    check(file.endsWith(`${sep}${want}`), `'${specifier}' resolved to ${file}, expected .../${want}`);
    modules[specifier] = await import(specifier);
    const names = Object.keys(modules[specifier]).toSorted();
    const missing = expected[specifier].filter((n) => !names.includes(n));
    const extra = names.filter((n) => !expected[specifier].includes(n));
    check(!missing.length && !extra.length, `'${specifier}' exports: missing ${missing.join(', ') || '-'}; not in test/package/exports.json: ${extra.join(', ') || '-'}`);
  }
  const web = modules['nestjs-ws-msgpack/client'];
  const { WebSocket: WsWebSocket } = await import('ws');
  const lib = await import('nestjs-ws-msgpack');
  const { Controller, Module } = await import('@nestjs/common');
  const { NestFactory } = await import('@nestjs/core');
  const { MessagePattern, Payload } = await import('@nestjs/microservices');
  const { firstValueFrom, timeout } = await import('rxjs');
  const nestVersion = createRequire(import.meta.url)('@nestjs/core/package.json').version;

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
