// ws-msgpack client: WsMsgpackClient, send() Observables; iterate() (pull-based backpressure)
// for the slow consumer. The main connection of the client process (`exposeHandlers: true`) is
// also a Nest app serving ClientBenchController to the server (the server→client scenarios);
// the 1,000 connections of `conns` are plain clients.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { firstValueFrom, map, range } from 'rxjs';
import { WsMsgpackClient } from 'nestjs-ws-msgpack';
import { moduleFor } from '../lib/nest.mjs';
import { observableAdapter } from '../lib/observable-adapter.mjs';
import { item, sleep } from '../lib/fixtures.mjs';

/**
 * The handlers the client app exposes to the server: the same patterns and the same bodies as
 * the server's echo and sync-stream handlers (rows/ws-msgpack.server.mjs), so that a
 * server→client scenario does exactly the work of its client→server counterpart, mirrored.
 */
class ClientBenchController {
  echo(data) {
    return data;
  }

  // A synchronous Observable over in-memory data, with @Payload(), as in the server's streamSync.
  streamSync({ count }) {
    return range(0, count).pipe(map((i) => item(i)));
  }
}

const ClientModule = moduleFor(ClientBenchController, {
  echo: MessagePattern('echo'),
  streamSync: MessagePattern({ cmd: 'stream-sync' }),
});

export async function connect(port, { exposeHandlers = false } = {}) {
  const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}` });
  let app;
  if (exposeHandlers) {
    // listen() of the strategy connects the client.
    app = await NestFactory.createMicroservice(ClientModule, { strategy: client.exposeHandlers(), logger: false });
    await app.listen();
  } else {
    await client.connect();
  }
  const adapter = observableAdapter({
    echo: (obj) => client.send('echo', obj),
    bin: (bytes) => client.send('bin', bytes),
    streamSync: (count) => client.send({ cmd: 'stream-sync' }, { count }),
    stream: (count) => client.send('stream', { count }),
    ticks: (tag) => client.send('ticks', { tag }),
    close: async () => {
      await app?.close(); // stops serving; the client stays connected until:
      await client.close();
    },
  });
  adapter.slow = async (tag, limit, durationMs) => {
    const end = performance.now() + durationMs;
    let consumed = 0;
    for await (const _item of client.iterate('slow', { tag, limit })) {
      await sleep(1); // the consumer's work: ~1 item/ms
      consumed++;
      if (performance.now() >= end) break; // break cancels the call on the server
    }
    return { consumed };
  };
  // The server's id for this connection (its key in server.peers), for the server→client scenarios.
  if (exposeHandlers) adapter.peerId = await firstValueFrom(client.send('whoami', null));
  return adapter;
}
