// A replica in its own process: a Nest microservice on WsMsgpackServer with the Redis cluster
// option, from the built package (dist/), so that tests can SIGKILL it. Driven over stdin, one
// command a line, each answered on stdout as one line starting with the command's tag:
//
//   node test/support/child-replica.mjs <redisUrl> <prefix> <heartbeatInterval> <replicaTimeout> <commandTimeout>
//     -> "ready <port> <replica id>" once listening and the cluster is ready
//
//   <tag> status                          -> <tag> ok "ready" | "down" | ...
//   <tag> broadcast {pattern,data,selection?}  -> <tag> ok {local,replicas}
//   <tag> peers <selection>               -> <tag> ok [{id,replica,user,rooms}]   (server.cluster.fetchPeers)
//   <tag> lookup <id>                     -> <tag> ok "local" | "remote" | "none"   (server.cluster.peer(id); the peer is kept)
//   <tag> call {peer,pattern,data,timeout?,held?} -> <tag> ok <result>   (a unary call on the peer wherever it is: looked
//                                            up now, or with held: true the one the last lookup of that id gave)
//   <tag> stream {peer,pattern,data,window,stallAt} -> <tag> ok {count,inOrder}: takes the response stream (credit
//                                            window `window`); on item number stallAt, prints "<tag> stalled <n>" and
//                                            stops this process (SIGSTOP) inside the subscriber's next(), before
//                                            the credit for that item: the test sends SIGCONT
//   <tag> take {peer,pattern,data,n}      -> <tag> ok [first n items]  (then unsubscribes: cancels the call)
//
// Failures: <tag> err {code,message} (code NO_PEER when server.cluster.peer(id) found nothing).
// Clients authenticate with ?user=<id> and join the room in ?room=<room>. Handlers for clients:
// 'sum' adds numbers, 'whoami' answers this replica's id. The process exits when stdin closes
// (its test ended, however it ended). Plain .mjs: decorators applied by hand (bench/lib/nest.mjs).
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { createInterface } from 'node:readline';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { WsMsgpackRecordBuilder, WsMsgpackServer } from '../../dist/esm/index.js';
import { redisCluster } from '../../dist/esm/redis/index.js';
import { moduleFor } from '../../bench/lib/nest.mjs';

const [url, prefix, heartbeatInterval, replicaTimeout, commandTimeout] = process.argv.slice(2);
const cluster = redisCluster({ url, prefix, heartbeatInterval: Number(heartbeatInterval), replicaTimeout: Number(replicaTimeout), commandTimeout: Number(commandTimeout) });
const param = (req, key) => new URL(req.url ?? '/', 'http://x').searchParams.get(key) ?? undefined;

class ReplicaController {
  sum(numbers) {
    return numbers.reduce((a, b) => a + b, 0);
  }
  whoami() {
    return cluster.replica;
  }
}

const AppModule = moduleFor(ReplicaController, { sum: MessagePattern('sum'), whoami: MessagePattern('whoami') });
const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1', cluster, authenticate: (req) => param(req, 'user') });
server.on('connection', (_ws, req, peer) => {
  const room = param(req, 'room');
  if (room) peer.join(room);
});
server.on('error', () => {}); // the outages the tests cause are reported here; the tests watch the commands' answers
const app = await NestFactory.createMicroservice(AppModule, { strategy: server, logger: false });
await app.listen();

const print = (line) => process.stdout.write(line + '\n'); // a pipe: written synchronously on Linux
const failure = (e) => ({ code: e?.code ?? 'ERROR', message: e instanceof Error ? e.message : String(e) });

/** The peers the lookups gave, by id. */
const held = new Map();

/** The peer with this id, wherever it is (or the one held); rejects with NO_PEER when no replica holds it. */
async function peerOf(id, fromHeld = false) {
  const peer = fromHeld ? held.get(id) : await server.cluster.peer(id);
  if (!peer) throw Object.assign(new Error(`no replica holds peer ${id}`), { code: 'NO_PEER' });
  return peer;
}

const commands = {
  status: async () => server.cluster.status,
  broadcast: async ({ pattern, data, selection }) => server.cluster.broadcast(pattern, data, selection),
  peers: async (selection) => server.cluster.fetchPeers(selection ?? undefined),
  lookup: async (id) => {
    const peer = await server.cluster.peer(id);
    held.set(id, peer);
    return !peer ? 'none' : server.peers.get(id) === peer ? 'local' : 'remote';
  },
  call: async ({ peer, pattern, data, timeout, held: fromHeld }) => {
    const target = await peerOf(peer, fromHeld);
    return firstValueFrom(target.send(pattern, timeout === undefined ? data : new WsMsgpackRecordBuilder(data).setTimeout(timeout).build()));
  },
  take: async ({ peer, pattern, data, n }) => lastValueFrom((await peerOf(peer)).send(pattern, data).pipe(take(n), toArray())),
  stream: async ({ peer, pattern, data, window, stallAt }, tag) => {
    const target = await peerOf(peer);
    let count = 0;
    let inOrder = true;
    await new Promise((resolve, reject) => {
      target.send(pattern, new WsMsgpackRecordBuilder(data).setWindow(window).build()).subscribe({
        next: (item) => {
          if (item !== count) inOrder = false;
          count++;
          if (count !== stallAt) return;
          print(`${tag} stalled ${count}`); // written before the stop: stdout is a pipe
          process.kill(process.pid, 'SIGSTOP');
        },
        error: reject,
        complete: resolve,
      });
    });
    return { count, inOrder };
  },
};

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [tag, verb, ...rest] = line.split(' ');
  const run = commands[verb];
  const arg = rest.length === 0 ? undefined : verb === 'lookup' ? rest[0] : JSON.parse(rest.join(' '));
  (run ? run(arg, tag) : Promise.reject(new Error(`unknown command ${verb}`))).then(
    (result) => print(`${tag} ok ${JSON.stringify(result ?? null)}`),
    (e) => print(`${tag} err ${JSON.stringify(failure(e))}`),
  );
});
lines.on('close', () => process.exit(0));

for (let i = 0; server.cluster.status !== 'ready'; i++) {
  if (i > 2000) throw new Error(`the cluster is ${server.cluster.status} after 10 s`);
  await new Promise((r) => setTimeout(r, 5));
}
print(`ready ${server.address().port} ${cluster.replica}`);
