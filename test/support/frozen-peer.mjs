// A protocol peer in its own process, for keep-alive tests that freeze it with SIGSTOP: its kernel
// still holds the TCP connection open, but the process answers nothing (no pong, no frame).
//
//   node test/support/frozen-peer.mjs server          -> prints "ready <port>": a bare ws server speaking wsmp.v1
//   node test/support/frozen-peer.mjs client <url>    -> prints "ready": a bare ws client connected to <url>
import { WebSocket, WebSocketServer } from 'ws';

const [mode, url] = process.argv.slice(2);
if (mode === 'server') {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'wsmp.v1' });
  wss.on('listening', () => console.log(`ready ${wss.address().port}`));
} else if (mode === 'client') {
  const ws = new WebSocket(url, ['wsmp.v1']);
  ws.on('open', () => console.log('ready'));
  ws.on('error', (e) => {
    console.error(e.message);
    process.exit(1);
  });
} else {
  console.error('usage: frozen-peer.mjs server | client <url>');
  process.exit(2);
}
