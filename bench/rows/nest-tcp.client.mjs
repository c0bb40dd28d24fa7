// nest-tcp client: ClientProxyFactory.create({ transport: Transport.TCP }), send() Observables.
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { observableAdapter } from '../lib/observable-adapter.mjs';

export async function connect(port) {
  const client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
  await client.connect();
  return observableAdapter({
    echo: (obj) => client.send('echo', obj),
    bin: (bytes) => client.send('bin', bytes), // a Buffer, as a Nest user would pass it
    streamSync: (count) => client.send({ cmd: 'stream-sync' }, { count }),
    stream: (count) => client.send('stream', { count }),
    ticks: (tag) => client.send('ticks', { tag }),
    slow: (tag, limit) => client.send('slow', { tag, limit }),
    close: () => client.close(),
  });
}
