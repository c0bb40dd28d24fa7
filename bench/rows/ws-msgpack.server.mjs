// ws-msgpack server: a Nest microservice with WsMsgpackServer. The sync-stream handler is what a
// Nest user writes (a synchronous Observable over in-memory data, an object pattern, @Payload());
// the other stream handlers are async generators, this transport's friendliest form.
// `callPeer(id)` is the server→client side: an adapter over `server.peers.get(id).send()`, the
// mirror of the client's, calling the handlers the client app exposes (rows/ws-msgpack.client.mjs).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { map, range } from 'rxjs';
import { setTimeout as delay } from 'node:timers/promises';
import { WsMsgpackServer, WsPeer, WsSignal } from 'nestjs-ws-msgpack';
import { moduleFor } from '../lib/nest.mjs';
import { observableAdapter } from '../lib/observable-adapter.mjs';
import { item, slowItem } from '../lib/fixtures.mjs';
import * as probe from '../lib/probe.mjs';

class BenchController {
  echo(data) {
    return data;
  }

  bin(bytes) {
    return bytes;
  }

  // The caller's id in server.peers (the client reads it once, when it connects).
  whoami(_data, peer) {
    return peer.id;
  }

  // Everything at once: the transport buffers what the client has no credit for yet (in bytes).
  streamSync({ count }) {
    return range(0, count).pipe(map((i) => item(i)));
  }

  async *stream({ count }) {
    for (let i = 0; i < count; i++) yield item(i);
  }

  // An endless producer. The call's AbortSignal (@WsSignal()) ends the pending delay at once on
  // cancel; without it, return() would wait for the current delay to end (up to a timer tick).
  async *ticks({ tag }, signal) {
    probe.start(tag);
    try {
      for (let i = 0; ; i++) {
        await delay(1, undefined, { signal });
        probe.tick(tag);
        yield item(i);
      }
    } finally {
      probe.stop(tag);
    }
  }

  async *slow({ tag, limit }) {
    probe.start(tag);
    try {
      for (let i = 0; i < limit; i++) {
        probe.tick(tag);
        yield slowItem(i);
      }
    } finally {
      probe.stop(tag);
    }
  }
}

WsSignal()(BenchController.prototype, 'ticks', 1); // @WsSignal() signal
WsPeer()(BenchController.prototype, 'whoami', 1); // @WsPeer() peer
const AppModule = moduleFor(BenchController, {
  echo: MessagePattern('echo'),
  bin: MessagePattern('bin'),
  whoami: MessagePattern('whoami'),
  streamSync: MessagePattern({ cmd: 'stream-sync' }),
  stream: MessagePattern('stream'),
  ticks: MessagePattern('ticks'),
  slow: MessagePattern('slow'),
});

/**
 * The server→client adapter over a peer: the same calls as the client's adapter, made with
 * peer.send(). The peer is `server.peers.get(id)`, or in the cluster benchmark (bench/cluster.mjs)
 * what `await server.cluster.peer(id)` gives: a local peer, or one held by another replica.
 */
export function peerAdapter(peer) {
  return observableAdapter({
    echo: (obj) => peer.send('echo', obj),
    streamSync: (count) => peer.send({ cmd: 'stream-sync' }, { count }),
    close: async () => {},
  });
}

/** `options`: more WsMsgpackServer options (the cluster benchmark's replicas pass `cluster`). */
export async function start(options = {}) {
  const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1', ...options });
  const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: false });
  await app.listen();
  return {
    port: server.address().port,
    server,
    close: () => app.close(),
    /** The server→client adapter for the connected client `id`. */
    callPeer(id) {
      const peer = server.peers.get(id);
      if (!peer) throw new Error(`no connected peer ${id} (${server.peers.size} connected)`);
      return peerAdapter(peer);
    },
  };
}
