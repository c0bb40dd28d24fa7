// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- see the next line
// @ts-nocheck -- type-checked in the fresh apps (run.mjs drops this line): the repo's typecheck runs before dist/ exists
// A fresh app using the packed nestjs-ws-msgpack: a WsMsgpackServer microservice, a client app
// with WsMsgpackClientModule.register, a unary call, a stream (send and iterate), and terminus
// health checks (healthy while up, unhealthy once the server is gone). One line per step; exit
// status 0 only if every step passed, and only if the process then exits by itself (nothing left open).
import 'reflect-metadata';
import { Module, ServiceUnavailableException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { WsMsgpackServer } from 'nestjs-ws-msgpack';
import { ClientAppModule, HealthService, MathService } from './client.module.js';
import { MathController } from './math.controller.js';

const label = process.env.FRESH_APP_LABEL ?? 'fresh app';

function step(what: string): void {
  console.log(`[${label}] ok: ${what}`);
}

function check(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

@Module({ controllers: [MathController] })
class ServerModule {}

async function main(): Promise<void> {
  step(`booting (node ${process.version})`);

  const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1' });
  const microservice = await NestFactory.createMicroservice(ServerModule, { strategy: server, logger: false });
  await microservice.listen();
  const port = server.address()?.port;
  check(port, 'server.address() has no port after listen()');
  step(`WsMsgpackServer microservice listening on 127.0.0.1:${port}`);
  HealthService.server = server;

  const app = await NestFactory.createApplicationContext(ClientAppModule.forUrl(`ws://127.0.0.1:${port}`), { logger: false });
  try {
    const math = app.get(MathService);
    const health = app.get(HealthService);
    step('client app up (WsMsgpackClientModule.register, TerminusModule, WsMsgpackHealthIndicator)');

    const sum = await math.sum([1, 2, 3, 4]);
    check(sum === 10, `sum([1,2,3,4]) answered ${JSON.stringify(sum)}, expected 10`);
    step(`unary call: sum([1,2,3,4]) = ${sum}`);

    const expected = [0, 1, 4, 9, 16];
    const sent = await math.squaresSent(5);
    check(JSON.stringify(sent) === JSON.stringify(expected), `squares(5) via send() gave ${JSON.stringify(sent)}`);
    step(`stream via send(): squares(5) = ${JSON.stringify(sent)}`);
    const pulled = await math.squaresIterated(5);
    check(JSON.stringify(pulled) === JSON.stringify(expected), `squares(5) via iterate() gave ${JSON.stringify(pulled)}`);
    step(`stream via iterate(): squares(5) = ${JSON.stringify(pulled)}`);

    const ok = await health.check();
    check(ok.status === 'ok', `health check: ${JSON.stringify(ok)}`);
    check(ok.details.math?.status === 'up' && ok.details.rpc?.status === 'up', `health check details: ${JSON.stringify(ok.details)}`);
    step(`terminus health check: ${JSON.stringify(ok.details)}`);

    await microservice.close();
    const started = Date.now();
    let down: unknown;
    try {
      await health.check();
    } catch (e) {
      down = e;
    }
    check(down instanceof ServiceUnavailableException, `health check after the server closed: expected ServiceUnavailableException, got ${String(down)}`);
    const body = down.getResponse() as { error?: Record<string, { status?: string }> };
    check(body.error?.math?.status === 'down' && body.error?.rpc?.status === 'down', `unhealthy body: ${JSON.stringify(body)}`);
    step(`terminus health check after the server closed: unhealthy in ${Date.now() - started} ms (${JSON.stringify(body.error)})`);
  } finally {
    await app.close(); // closes the client (as ClientsModule does)
    await microservice.close();
  }
}

main().then(
  () => {
    step('done; the process must now exit by itself');
    // Nothing may be left open: if the event loop does not drain, fail (the timer itself does not hold it).
    setTimeout(() => {
      console.error(`[${label}] FAIL: the process did not exit by itself within 5 s after closing (a socket or timer left open)`);
      process.exit(1);
    }, 5000).unref();
  },
  (err: unknown) => {
    console.error(`[${label}] FAIL:`, err);
    process.exit(1);
  },
);
