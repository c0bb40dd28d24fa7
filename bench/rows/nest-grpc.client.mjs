// nest-grpc client: ClientGrpcProxy.getService('Bench'): methods returning Observables.
// Each instance gets its own channel *and connection*: grpc-js otherwise shares one connection
// between all channels to the same address (global subchannel pool), which would turn the
// 1,000-connection scenario into a single connection.
import { createRequire } from 'node:module';
import { ClientGrpcProxy } from '@nestjs/microservices';
import { observableAdapter } from '../lib/observable-adapter.mjs';
import { LOADER, MAX_MESSAGE, PROTO_PATH } from '../lib/grpc.mjs';

// Parsed once per process and handed to every client (Nest's `packageDefinition` option).
const packageDefinition = createRequire(import.meta.url)('@grpc/proto-loader').loadSync(PROTO_PATH, LOADER);

export async function connect(port) {
  const client = new ClientGrpcProxy({
    package: 'bench',
    packageDefinition,
    url: `127.0.0.1:${port}`,
    maxReceiveMessageLength: MAX_MESSAGE,
    maxSendMessageLength: MAX_MESSAGE,
    channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
  });
  const bench = client.getService('Bench');
  const adapter = observableAdapter({
    echo: (obj) => bench.Echo(obj),
    bin: (bytes) => bench.Bin({ data: bytes }),
    streamSync: (count) => bench.StreamSync({ count }),
    stream: (count) => bench.Stream({ count }),
    ticks: (tag) => bench.Ticks({ tag }),
    slow: (tag, limit) => bench.Slow({ tag, limit }),
    close: () => client.close(),
  });
  const bin = adapter.bin;
  adapter.bin = async (bytes) => (await bin(bytes)).data;
  await adapter.echo({ id: 1 }); // gRPC channels connect lazily: connect now, as the other rows do
  return adapter;
}
