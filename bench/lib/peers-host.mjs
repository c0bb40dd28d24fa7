// Child process holding broadcast receivers for the cluster benchmark (bench/cluster.mjs):
// `node --expose-gc bench/lib/peers-host.mjs <name>`. Each receiver is what a Nest user writes: a
// WsMsgpackClient (one connection) whose client app exposes `@EventPattern('news')
// news(@Payload() msg)` with `client.exposeHandlers()`. Every delivery is counted per broadcast
// tag and stamped with the benchmark's shared clock (lib/clock.mjs); once a tag has all the
// deliveries it expects, {type: 'received', tag, first, last, received} goes to the orchestrator.
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { EventPattern } from '@nestjs/microservices';
import { WsMsgpackClient } from 'nestjs-ws-msgpack';
import { now } from './clock.mjs';
import { moduleFor } from './nest.mjs';
import { fullGc } from './mem.mjs';
import { serveIpc } from './ipc-child.mjs';

/** Deliveries by tag: { expected, received, first, last }. */
const tags = new Map();

function delivered(tag) {
  const t = now();
  let s = tags.get(tag);
  if (!s) tags.set(tag, (s = { expected: Infinity, received: 0, first: t, last: t }));
  s.received++;
  s.last = t;
  if (s.received === s.expected) process.send?.({ type: 'received', tag, first: s.first, last: s.last, received: s.received });
}

class NewsController {
  news({ tag }) {
    delivered(tag);
  }
}
const NewsModule = moduleFor(NewsController, { news: EventPattern('news') });

let apps = [];

/** One receiver: a client and its Nest app; resolves once connected. */
async function openOne(port) {
  const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}` });
  const app = await NestFactory.createMicroservice(NewsModule, { strategy: client.exposeHandlers({ waitForConnection: true }), logger: false });
  await app.listen();
  return {
    close: async () => {
      await app.close();
      await client.close();
    },
  };
}

serveIpc({
  // `count` receivers connected to `port`, `batch` at a time.
  open: async ({ port, count, batch = 50 }) => {
    const t0 = performance.now();
    for (let i = 0; i < count; i += batch) apps.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - i) }, () => openOne(port)))));
    return { open: apps.length, openMs: performance.now() - t0 };
  },
  close: async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
    apps = [];
    return true;
  },
  // Expects `perPeer` broadcasts tagged `tag` at each receiver (before they are sent).
  expect: ({ tag, perPeer }) => {
    const s = tags.get(tag) ?? { received: 0, first: undefined, last: undefined };
    s.expected = apps.length * perPeer;
    tags.set(tag, s);
    return { expected: s.expected };
  },
  report: ({ tag }) => {
    const s = tags.get(tag);
    return s ? { expected: s.expected, received: s.received, first: s.first, last: s.last } : { received: 0 };
  },
  forget: ({ tag }) => tags.delete(tag),
  gc: () => {
    fullGc();
    return true;
  },
});

process.send({ type: 'ready', pid: process.pid });
