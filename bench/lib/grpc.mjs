// Options shared by the gRPC row's server and clients.
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

export const PROTO_PATH = fileURLToPath(new URL('../bench.proto', import.meta.url));
export const LOADER = { keepCase: true };
/** Room for the 1 MiB binary echo (gRPC's default receive limit is 4 MiB; this makes it explicit). */
export const MAX_MESSAGE = 16 * 1024 * 1024;

/**
 * A free port on 127.0.0.1. Nest's gRPC server binds the `url` it is given and does not expose
 * the port grpc-js picked for port 0, so the row asks the OS for a free port first (a tiny race
 * on a shared machine; a bind failure is reported, not hidden).
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
