// A Nest microservice on WsMsgpackServer in its own process, from the built package (dist/), so
// that tests can send it SIGTERM (graceful drain with enableShutdownHooks) or SIGKILL (sudden death).
//
//   node test/support/child-server.mjs <port> [drainTimeoutMs]   -> prints "ready <port>"
//
// Handlers: 'work' {ms, tag} prints "started <tag>" and answers `done <tag>` after ms; 'ticks' streams 0, 1, 2, ... every
// 5 ms; 'echo' returns its payload. Plain .mjs: decorators applied by hand (bench/lib/nest.mjs).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { interval } from 'rxjs';
import { WsMsgpackServer } from '../../dist/esm/index.js';
import { moduleFor } from '../../bench/lib/nest.mjs';

const port = Number(process.argv[2]);
const drainTimeout = process.argv[3] === undefined ? undefined : Number(process.argv[3]);

class ChildController {
  work({ ms, tag }) {
    console.log(`started ${tag}`);
    return new Promise((resolve) => setTimeout(() => resolve(`done ${tag}`), ms));
  }
  ticks() {
    return interval(5);
  }
  echo(v) {
    return v;
  }
}

const AppModule = moduleFor(ChildController, { work: MessagePattern('work'), ticks: MessagePattern('ticks'), echo: MessagePattern('echo') });
const server = new WsMsgpackServer({ port, host: '127.0.0.1', drainTimeout, keepAliveInterval: 0 });
const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: false });
app.enableShutdownHooks();
await app.listen();
console.log(`ready ${server.address().port}`);
