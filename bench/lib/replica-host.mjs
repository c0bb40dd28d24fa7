// Child process hosting one replica of the cluster benchmark (bench/cluster.mjs):
// `node --expose-gc bench/lib/replica-host.mjs <name>`. On `start` it runs the ws-msgpack row's
// server (rows/ws-msgpack.server.mjs: the same Nest microservice and handlers) with
// `cluster: redisCluster({ url, prefix })` (default heartbeat and timeouts), and waits until the
// cluster is ready. Then, on request, it makes the calls and the broadcasts and measures them, as
// a Nest app on that replica would make them:
//   run        a driver of drivers.mjs over the peer `await server.cluster.peer(peerId)` gives
//              (a local peer, or one held by another replica: its calls go through Redis)
//   lookup     `await server.cluster.peer(peerId)` in a loop: the lookup alone
//   broadcast  `await server.cluster.broadcast('news', { tag, seq })`, `count` times in a row
import { redisCluster } from 'nestjs-ws-msgpack/redis';
import * as drivers from './drivers.mjs';
import { now } from './clock.mjs';
import { fullGc } from './mem.mjs';
import { serveIpc } from './ipc-child.mjs';
import { peerAdapter, start } from '../rows/ws-msgpack.server.mjs';

let row;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

async function peerOf(id) {
  const peer = await row.server.cluster.peer(id);
  if (!peer) throw new Error(`no replica holds peer ${id}`);
  return peer;
}

serveIpc({
  start: async ({ url, prefix }) => {
    if (row) throw new Error('started already');
    row = await start({ cluster: redisCluster({ url, prefix }) });
    const end = performance.now() + 10_000;
    while (row.server.cluster.status !== 'ready') {
      if (performance.now() > end) throw new Error(`the cluster is ${row.server.cluster.status} after 10 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return { port: row.port, replica: row.server.cluster.replica };
  },
  /** How many peers this replica holds, and how many the cluster's presence lists. */
  peers: async () => ({ local: row.server.peers.size, cluster: await row.server.cluster.count() }),
  gc: () => {
    fullGc();
    return true;
  },
  run: async ({ scenario, params, peerId }) => {
    const driver = drivers[scenario];
    if (!driver) throw new Error(`no driver for scenario ${scenario}`);
    const peer = await peerOf(peerId); // once, as an app keeps the peer it looked up
    return driver(peerAdapter(peer), params);
  },
  lookup: async ({ peerId, durationMs, warmupMs }) => {
    const loop = async (ms) => {
      const lat = [];
      const end = performance.now() + ms;
      for (;;) {
        const s = performance.now();
        if (s >= end) break;
        await peerOf(peerId);
        lat.push(performance.now() - s);
      }
      return lat;
    };
    await loop(warmupMs);
    const t0 = performance.now();
    const lat = Float64Array.from(await loop(durationMs));
    const elapsed = performance.now() - t0;
    lat.sort();
    return { lookupsPerSec: (lat.length * 1000) / elapsed, lookups: lat.length, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
  },
  // `count` broadcasts in a row, each awaited (handed to this replica's peers and published).
  // t0: just before the first; the peer processes stamp each delivery with the same clock.
  broadcast: async ({ tag, count = 1 }) => {
    const t0 = now();
    let last;
    for (let seq = 0; seq < count; seq++) last = await row.server.cluster.broadcast('news', { tag, seq });
    return { t0, tPublished: now(), ...last };
  },
  close: async () => {
    await row?.close();
    return true;
  },
});

process.send({ type: 'ready', pid: process.pid });
