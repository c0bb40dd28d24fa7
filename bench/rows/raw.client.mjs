// raw client: a ws WebSocket speaking the raw protocol (lib/raw-protocol.mjs), promises and callbacks.
import { WebSocket } from 'ws';
import { Decoder, Encoder } from '@msgpack/msgpack';
import { now } from '../lib/clock.mjs';
import { sleep } from '../lib/fixtures.mjs';
import { CANCEL, END, ERROR, ITEM, MAX_PAYLOAD, REQUEST, RESULT } from '../lib/raw-protocol.mjs';

export async function connect(port) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false, maxPayload: MAX_PAYLOAD });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const encoder = new Encoder();
  const decoder = new Decoder();
  const calls = new Map(); // id → { resolve, reject, item }
  let nextId = 1;

  ws.on('message', (data) => {
    const [type, id, value] = decoder.decode(data);
    const call = calls.get(id);
    if (!call) return;
    if (type === ITEM) call.item(value);
    else {
      calls.delete(id);
      if (type === RESULT || type === END) call.resolve(value);
      else if (type === ERROR) call.reject(new Error(value));
    }
  });
  ws.on('close', () => {
    for (const call of calls.values()) call.reject(new Error('connection closed'));
    calls.clear();
  });
  ws.on('error', () => {});

  /** Starts a call; `item` receives stream items. Returns the id and a promise of the result / end. */
  const start = (method, payload, item) => {
    const id = nextId++;
    const done = new Promise((resolve, reject) => calls.set(id, { resolve, reject, item }));
    ws.send(encoder.encode([REQUEST, id, method, payload]));
    return { id, done };
  };
  const cancel = (id) => {
    calls.delete(id);
    ws.send(encoder.encode([CANCEL, id]));
  };

  const countItems = async (method, count) => {
    let received = 0;
    await start(method, { count }, () => received++).done;
    return received;
  };

  return {
    echo: (obj) => start('echo', obj).done,
    bin: (bytes) => start('bin', bytes).done,
    stream: (count) => countItems('stream', count),
    streamSync: (count) => countItems('stream-sync', count),
    ticks: (tag, after) =>
      new Promise((resolve, reject) => {
        let received = 0;
        const call = start('ticks', { tag }, () => {
          if (++received === after) {
            const tUnsub = now();
            cancel(call.id);
            resolve({ tUnsub, received });
          }
        });
        call.done.then(() => reject(new Error('endless stream completed')), reject);
      }),
    // No flow control: items queue up in this process while the loop works through them.
    slow: async (tag, limit, durationMs) => {
      const queue = [];
      let head = 0;
      let ended = false;
      let wake;
      const call = start('slow', { tag, limit }, (it) => {
        queue.push(it);
        wake?.();
      });
      const onEnd = () => {
        ended = true;
        wake?.();
      };
      call.done.then(onEnd, onEnd);
      const end = performance.now() + durationMs;
      let consumed = 0;
      for (;;) {
        if (head === queue.length) {
          if (ended) break;
          await new Promise((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        queue[head++] = undefined;
        await sleep(1); // the consumer's work: ~1 item/ms
        consumed++;
        if (performance.now() >= end) break;
      }
      if (!ended) cancel(call.id);
      return { consumed };
    },
    close: async () => {
      if (ws.readyState === ws.CLOSED) return;
      const closed = new Promise((resolve) => ws.once('close', resolve));
      ws.close();
      await closed;
    },
  };
}
