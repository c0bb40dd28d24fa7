// Child process driving one row's client: `node --expose-gc bench/lib/client-host.mjs <row>`.
// Loads ../rows/<row>.client.mjs (which exports `connect(port)` returning the row's adapter, see
// bench/README.md) and runs the scenario drivers of drivers.mjs on request. The main connection
// asks the row to expose the client app's handlers to the server (only ws-msgpack can); its
// `peerId` (the server's id for it) goes back to the orchestrator for the server→client scenarios.
import { serveIpc } from './ipc-child.mjs';
import * as drivers from './drivers.mjs';
import { fullGc } from './mem.mjs';

const row = process.argv[2];
const rowModule = await import(`../rows/${row}.client.mjs`);

let adapter;
let port;
let many = [];

serveIpc({
  connect: async (args) => {
    port = args.port;
    adapter = await rowModule.connect(port, { exposeHandlers: true });
    return { peerId: adapter.peerId };
  },
  run: async ({ scenario, params }) => {
    const driver = drivers[scenario];
    if (!driver) throw new Error(`no driver for scenario ${scenario}`);
    return driver(adapter, params);
  },
  // 1,000 connections: open, run, close as three steps so the orchestrator can read the
  // server's memory in between.
  'conns-open': async ({ count, batch }) => {
    const t0 = performance.now();
    many = await drivers.openMany(() => rowModule.connect(port), count, batch);
    return { opened: many.length, openMs: performance.now() - t0 };
  },
  'conns-run': (params) => drivers.runMany(many, params),
  'conns-close': async () => {
    await Promise.allSettled(many.map((a) => a.close()));
    many = [];
    return true;
  },
  gc: () => {
    fullGc();
    return true;
  },
  close: async () => {
    await adapter?.close();
    adapter = undefined;
    return true;
  },
});

process.send({ type: 'ready', pid: process.pid });
