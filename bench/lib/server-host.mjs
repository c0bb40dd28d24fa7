// Child process hosting one row's server: `node --expose-gc bench/lib/server-host.mjs <row>`.
// Starts ../rows/<row>.server.mjs on 127.0.0.1 port 0, reports {type:'ready', port} over IPC,
// then answers the orchestrator's requests (memory sampling, producer probe) and pushes a
// {type:'probe-stop'} event whenever a stream producer stops. Exits when the parent goes away.
// For the server→client scenarios it also runs the scenario drivers of drivers.mjs, as the client
// host does, over the row's `callPeer(id)` adapter (calls the server makes to a connected client).
import * as probe from './probe.mjs';
import * as drivers from './drivers.mjs';
import { fullGc, memSnapshot, MemSampler } from './mem.mjs';
import { serveIpc } from './ipc-child.mjs';

const row = process.argv[2];
const { start } = await import(`../rows/${row}.server.mjs`);

probe.onStop((tag, t, produced) => process.send?.({ type: 'probe-stop', tag, t, produced }));

let sampler;
const server = await start();

serveIpc({
  'mem-begin': () => {
    sampler?.stop();
    sampler = new MemSampler();
    return sampler.baseline;
  },
  'mem-end': () => {
    const s = sampler;
    sampler = undefined;
    return s ? s.stop() : memSnapshot();
  },
  mem: ({ gc }) => {
    if (gc) fullGc();
    return memSnapshot();
  },
  gc: () => {
    fullGc();
    return true;
  },
  // A server→client scenario: the server calls the client `peerId` and measures, with the same
  // driver the client process runs for the client→server counterpart.
  run: async ({ scenario, params, peerId }) => {
    if (!server.callPeer) throw new Error(`the ${row} row cannot call its clients`);
    const driver = drivers[scenario];
    if (!driver) throw new Error(`no driver for scenario ${scenario}`);
    return driver(server.callPeer(peerId), params);
  },
  probe: ({ tag, since }) => probe.report(tag, since),
  forget: ({ tag }) => probe.forget(tag),
  status: () => ({ running: probe.running() }),
  close: async () => {
    await server.close();
    return true;
  },
});

process.send({ type: 'ready', port: server.port, pid: process.pid });
