// A peer that floods a server with small REQUEST frames as fast as its socket takes them, and reads
// every answer. Runs in its own process (its CPU is not the server's) until killed.
//
//   node test/support/flooder.mjs <url> [pattern]   -> prints "flooding" once connected
import { encode } from '@msgpack/msgpack';
import WebSocket from 'ws';

const [url, pattern = 'no-such-pattern'] = process.argv.slice(2);
const ws = new WebSocket(url, ['wsmp.v1']);
let id = 1;
let answers = 0;
ws.on('message', () => answers++);
ws.on('error', () => process.exit(1));
ws.on('close', () => process.exit(0));
ws.on('open', () => {
  console.log('flooding');
  const burst = () => {
    if (ws.readyState !== WebSocket.OPEN) return;
    // Keep a megabyte in flight: the server, not this process, is the bottleneck.
    while (ws.bufferedAmount < 1024 * 1024) {
      ws.send(encode([1, id, pattern, null]));
      id += 2;
    }
    setImmediate(burst);
  };
  burst();
});
process.on('SIGTERM', () => {
  console.log(`sent ${(id - 1) / 2}, answered ${answers}`);
  process.exit(0);
});
