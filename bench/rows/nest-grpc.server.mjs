// nest-grpc server: Nest's gRPC transport (@grpc/grpc-js + @grpc/proto-loader, bench/bench.proto);
// server-streaming methods are @GrpcMethod handlers returning Observables: a synchronous one over
// in-memory data (StreamSync), asynchronous push sources (the others).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { GrpcMethod, Transport } from '@nestjs/microservices';
import { defer, finalize, interval, map, range } from 'rxjs';
import { moduleFor } from '../lib/nest.mjs';
import { chunkedSource, item, slowItem } from '../lib/fixtures.mjs';
import { freePort, LOADER, MAX_MESSAGE, PROTO_PATH } from '../lib/grpc.mjs';
import * as probe from '../lib/probe.mjs';

class BenchController {
  echo(data) {
    return data;
  }

  bin(blob) {
    return blob;
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

const AppModule = moduleFor(
  BenchController,
  {
    echo: GrpcMethod('Bench', 'Echo'),
    bin: GrpcMethod('Bench', 'Bin'),
    streamSync: GrpcMethod('Bench', 'StreamSync'),
    stream: GrpcMethod('Bench', 'Stream'),
    ticks: GrpcMethod('Bench', 'Ticks'),
    slow: GrpcMethod('Bench', 'Slow'),
  },
  { payload: false },
);

export async function start() {
  const port = await freePort();
  const app = await NestFactory.createMicroservice(AppModule, {
    transport: Transport.GRPC,
    options: {
      package: 'bench',
      protoPath: PROTO_PATH,
      loader: LOADER,
      url: `127.0.0.1:${port}`,
      maxReceiveMessageLength: MAX_MESSAGE,
      maxSendMessageLength: MAX_MESSAGE,
    },
    logger: false,
  });
  await app.listen();
  return { port, close: () => app.close() };
}
