/**
 * The layers of src/ are kept by lint (eslint.config.js, LAYERS): a lower layer importing a
 * higher one, or a package its layer may not use, fails `npm run lint`. These probes check that
 * the rules still catch what they are for (and let through what is allowed).
 */
import { ESLint } from 'eslint';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const eslint = new ESLint({ cwd: root });

async function restricted(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${root}/${file}` });
  return result!.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('layer boundaries (lint)', () => {
  it.each([
    ['src/protocol/probe.ts', "import { Connection } from '../connection/connection.js';"],
    ['src/protocol/probe.ts', "import { Observable } from 'rxjs';"],
    ['src/connection/probe.ts', "import { Session } from '../session/session.js';"],
    ['src/connection/probe.ts', "import { WsMsgpackServer } from '../server/ws-msgpack.server.js';"],
    ['src/connection/probe.ts', "import type { WebSocket } from 'ws';"],
    ['src/connection/probe.ts', "import { createServer } from 'node:http';"],
    ['src/connection/probe.ts', "import { Logger } from '@nestjs/common';"],
    ['src/session/probe.ts', "import { WS_SOCKET_SUPPORT } from '../node/ws-socket.js';"],
    ['src/web/probe.ts', "import { WsMsgpackDispatcher } from '../nest/dispatcher.js';"],
    ['src/web/probe.ts', "import { EventEmitter } from 'events';"],
    ['src/node/probe.ts', "import { Logger } from '@nestjs/common';"],
    ['src/node/probe.ts', "import { installPipeBridge } from '../patches/nest-pipes.js';"],
    ['src/nest/probe.ts', "import { WsMsgpackClient } from '../client/ws-msgpack.client.js';"],
    ['src/client/probe.ts', "import { WsMsgpackServer } from '../server/ws-msgpack.server.js';"],
    ['src/server/probe.ts', "import { WsMsgpackClient } from '../client/ws-msgpack.client.js';"],
    ['src/cluster/probe.ts', "import { redisCluster } from '../redis/redis-cluster.js';"],
    ['src/server/probe.ts', "import { redisCluster } from '../redis/redis-cluster.js';"],
    ['src/redis/probe.ts', "import { WsMsgpackServer } from '../server/ws-msgpack.server.js';"],
    ['src/redis/probe.ts', "import { WebSocket } from 'ws';"],
    ['src/redis/probe.ts', "import { Logger } from '@nestjs/common';"],
  ])('%s: %s is refused', async (file, code) => {
    expect(await restricted(file, code)).toHaveLength(1);
  });

  it.each([
    ['src/protocol/probe.ts', "import { guardDecoder } from '../patches/msgpack.js';"],
    ['src/connection/probe.ts', "import { FrameCodec } from '../protocol/codec.js';"],
    ['src/node/probe.ts', "import { bytesOfPartialMessage } from '../patches/ws.js';"],
    ['src/node/probe.ts', "import { createServer } from 'node:http';"],
    ['src/server/probe.ts', "import { WsMsgpackDispatcher } from '../nest/dispatcher.js';"],
    ['src/health/probe.ts', "import { WsMsgpackClient } from '../client/ws-msgpack.client.js';"],
    ['src/redis/probe.ts', "import { RemoteCalls } from '../cluster/remote-calls.js';"],
    ['src/redis/probe.ts', "import { Redis } from 'ioredis';"],
    ['src/redis/probe.ts', "import { randomUUID } from 'node:crypto';"],
  ])('%s: %s is allowed', async (file, code) => {
    expect(await restricted(file, code)).toEqual([]);
  });
});

describe('the layer table of docs/DESIGN.md', () => {
  it('is the one scripts/layers-table.mjs makes from the tree (npm run docs:layers)', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, ['scripts/layers-table.mjs', '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
