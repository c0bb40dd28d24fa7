// ws-msgpack client: WsMsgpackClient, send() Observables; iterate() (pull-based backpressure)
// for the slow consumer.
import { WsMsgpackClient } from 'nestjs-ws-msgpack';
import { observableAdapter } from '../lib/observable-adapter.mjs';
import { sleep } from '../lib/fixtures.mjs';

export async function connect(port) {
  const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}` });
  await client.connect();
  const adapter = observableAdapter({
    echo: (obj) => client.send('echo', obj),
    bin: (bytes) => client.send('bin', bytes),
    streamSync: (count) => client.send({ cmd: 'stream-sync' }, { count }),
    stream: (count) => client.send('stream', { count }),
    ticks: (tag) => client.send('ticks', { tag }),
    close: () => client.close(),
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
  return adapter;
}
