// Child process hosting one row's server: `node --expose-gc bench/lib/server-host.mjs <row>`.
// Starts ../rows/<row>.server.mjs on 127.0.0.1 port 0, reports {type:'ready', port} over IPC,
// then answers the orchestrator's requests (memory sampling, producer probe) and pushes a
// {type:'probe-stop'} event whenever a stream producer stops. Exits when the parent goes away.
import * as probe from './probe.mjs';
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
  probe: ({ tag, since }) => probe.report(tag, since),
  forget: ({ tag }) => probe.forget(tag),
  status: () => ({ running: probe.running() }),
  close: async () => {
    await server.close();
    return true;
  },
});

process.send({ type: 'ready', port: server.port, pid: process.pid });
