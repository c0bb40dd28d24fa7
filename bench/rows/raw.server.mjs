// raw server: a ws WebSocketServer answering the raw protocol (lib/raw-protocol.mjs).
import { WebSocketServer } from 'ws';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { BATCH, item, slowItem } from '../lib/fixtures.mjs';
import * as probe from '../lib/probe.mjs';
import { CANCEL, END, ERROR, ITEM, MAX_PAYLOAD, REQUEST, RESULT } from '../lib/raw-protocol.mjs';

function onConnection(ws) {
  const encoder = new Encoder();
  const decoder = new Decoder();
  const running = new Map(); // id → stop()
  const send = (msg) => ws.send(encoder.encode(msg));

  // Sends `count` items made by make(i), BATCH per event-loop turn, until done or cancelled.
  const pushStream = (id, count, make, hooks = {}) => {
    let i = 0;
    let timer;
    const stop = () => {
      clearImmediate(timer);
      running.delete(id);
      hooks.onStop?.();
    };
    const pump = () => {
      for (let k = 0; k < BATCH && i < count; k++) {
        hooks.onItem?.();
        send([ITEM, id, make(i++)]);
      }
      if (i < count) {
        timer = setImmediate(pump);
        return;
      }
      send([END, id]);
      stop();
    };
    hooks.onStart?.();
    running.set(id, stop);
    timer = setImmediate(pump);
  };

  const handlers = {
    echo: (id, data) => send([RESULT, id, data]),
    bin: (id, data) => send([RESULT, id, data]),
    // The sync streams: every item written in one synchronous loop, as fast as ws takes them.
    'stream-sync': (id, { count }) => {
      for (let i = 0; i < count; i++) send([ITEM, id, item(i)]);
      send([END, id]);
    },
    stream: (id, { count }) => pushStream(id, count, item),
    slow: (id, { tag, limit }) => pushStream(id, limit, slowItem, { onStart: () => probe.start(tag), onItem: () => probe.tick(tag), onStop: () => probe.stop(tag) }),
    ticks: (id, { tag }) => {
      probe.start(tag);
      let i = 0;
      const timer = setInterval(() => {
        probe.tick(tag);
        send([ITEM, id, item(i++)]);
      }, 1);
      running.set(id, () => {
        clearInterval(timer);
        running.delete(id);
        probe.stop(tag);
      });
    },
  };

  ws.on('message', (data) => {
    const [type, id, method, payload] = decoder.decode(data);
    if (type === REQUEST) {
      const handler = handlers[method];
      if (handler) handler(id, payload);
      else send([ERROR, id, `no handler for ${method}`]);
    } else if (type === CANCEL) {
      running.get(id)?.();
    }
  });
  ws.on('close', () => {
    for (const stop of [...running.values()]) stop();
  });
  ws.on('error', () => {});
}

export async function start() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: MAX_PAYLOAD });
  await new Promise((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  wss.on('connection', onConnection);
  return {
    port: wss.address().port,
    close: () =>
      new Promise((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}
