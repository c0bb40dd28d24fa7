// nest-tcp server: Nest's built-in TCP transport (JSON); stream handlers return Observables: a
// synchronous one over in-memory data (sync streams), an asynchronous push source (the others).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Transport } from '@nestjs/microservices';
import { defer, finalize, interval, map, range } from 'rxjs';
import { moduleFor } from '../lib/nest.mjs';
import { chunkedSource, item, slowItem } from '../lib/fixtures.mjs';
import * as probe from '../lib/probe.mjs';

class BenchController {
  echo(data) {
    return data;
  }

  bin(bytes) {
    return bytes; // arrives as JSON's {type:'Buffer', data:[...]}, goes back as it came
  }

  streamSync({ count }) {
    return range(0, count).pipe(map((i) => item(i)));
  }

  stream({ count }) {
    return chunkedSource(count, item);
  }

  ticks({ tag }) {
    return defer(() => {
      probe.start(tag);
      return interval(1).pipe(
        map((i) => {
          probe.tick(tag);
          return item(i);
        }),
        finalize(() => probe.stop(tag)),
      );
    });
  }

  slow({ tag, limit }) {
    return chunkedSource(limit, slowItem, { onStart: () => probe.start(tag), onItem: () => probe.tick(tag), onStop: () => probe.stop(tag) });
  }
}

const AppModule = moduleFor(BenchController, {
  echo: MessagePattern('echo'),
  bin: MessagePattern('bin'),
  streamSync: MessagePattern({ cmd: 'stream-sync' }),
  stream: MessagePattern('stream'),
  ticks: MessagePattern('ticks'),
  slow: MessagePattern('slow'),
});

export async function start() {
  const app = await NestFactory.createMicroservice(AppModule, {
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port: 0 },
    logger: false,
  });
  await app.listen();
  return { port: app.unwrap().address().port, close: () => app.close() };
}
