/**
 * The parts of test/unit/remote-calls.spec.ts: an in-memory bus between replicas' RemoteCalls that
 * msgpack-encodes every message (only plain data crosses, as over Redis) and delivers it later, in
 * order; test peers whose handlers are async generators; real ConnectionPeers over memory sockets.
 */
import { decode, encode } from '@msgpack/msgpack';
import { lastValueFrom, of, type Observable } from 'rxjs';
import type { ClusterLocalPeer } from '../../src/cluster/adapter.js';
import { RemoteCalls, type ClusterLink, type RemoteCallsOptions, type RemoteMessage } from '../../src/cluster/remote-calls.js';
import { Connection } from '../../src/connection/connection.js';
import type { RequestHandler } from '../../src/connection/incoming.js';
import type { WsMsgpackCallOptions } from '../../src/connection/options.js';
import { WS_SOCKET_SUPPORT } from '../../src/node/ws-socket.js';
import { ConnectionPeer, type WsMsgpackPeer } from '../../src/peer/peer.js';
import { WsMsgpackError, resourceExhausted, unavailable } from '../../src/protocol/errors.js';
import { MemorySocket } from './memory-socket.js';

/** The bus: encodes each message, delivers it in a later macrotask, in send order. */
export class Bus {
  readonly nodes = new Map<string, RemoteCalls>();
  /** Every message sent, decoded again (what crossed). */
  readonly log: { from: string; to: string; message: Record<string, unknown> }[] = [];
  /** While true, every send rejects UNAVAILABLE (the engine is unreachable). */
  down = false;
  /** The replicas whose sends reject UNAVAILABLE (their own link is down, the others' is not). */
  readonly cutOff = new Set<string>();
  /** Messages this returns true for are lost on the way. */
  lose: (message: RemoteMessage) => boolean = () => false;
  /** Replicas nothing is delivered to (their messages wait, in order): receivers that do not read. */
  readonly paused = new Set<string>();
  /** Messages larger than this (encoded) are refused with RESOURCE_EXHAUSTED, as the Redis bus does. */
  maxMessageBytes = Infinity;
  /** Bytes sent, by "from>to". */
  readonly bytes = new Map<string, number>();
  private queue: [string, string, Uint8Array][] = [];
  private scheduled = false;

  link(from: string): ClusterLink {
    return {
      send: async (to, message, sized) => {
        if (this.down || this.cutOff.has(from)) throw unavailable('the bus is down');
        const bytes = encode(message);
        if (bytes.length > this.maxMessageBytes) throw resourceExhausted(`a message of ${bytes.length} bytes is over maxMessageBytes`);
        sized?.(bytes.length);
        this.bytes.set(`${from}>${to}`, (this.bytes.get(`${from}>${to}`) ?? 0) + bytes.length);
        this.log.push({ from, to, message: decode(bytes) as Record<string, unknown> });
        if (this.lose(message)) return;
        this.queue.push([from, to, bytes]);
        if (!this.scheduled) {
          this.scheduled = true;
          setImmediate(() => this.flush());
        }
      },
    };
  }

  sent(t: string): Record<string, unknown>[] {
    return this.log.filter((e) => e.message.t === t).map((e) => e.message);
  }

  /** Loses what waits for `replica` (Redis cut its connection with its output buffer). */
  dropQueued(replica: string): void {
    this.queue = this.queue.filter(([, to]) => to !== replica);
  }

  /** Delivers what waited for `replica` while it was {@link paused}. */
  resume(replica: string): void {
    this.paused.delete(replica);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const entry of batch) {
      const [from, to, bytes] = entry;
      if (this.paused.has(to)) this.queue.push(entry);
      else this.nodes.get(to)?.receive(from, decode(bytes), bytes.length);
    }
  }
}

export type Handler = (payload: unknown, options: WsMsgpackCallOptions, peer: TestPeer) => AsyncGenerator<unknown>;

/** A local peer of the holder whose handlers are async generators. */
export class TestPeer implements ClusterLocalPeer {
  readonly handshake = { url: '/', headers: {}, remoteAddress: undefined };
  readonly user = undefined;
  readonly state = new Map<unknown, unknown>();
  readonly rooms = new Set<string>();
  isConnected = true;
  /** Items the handlers produced (a generator counts before it yields). */
  produced = 0;
  /** How many times a call's iterator was `return()`ed. */
  returned = 0;
  readonly calls: { pattern: unknown; payload: unknown; options: WsMsgpackCallOptions }[] = [];
  readonly events: { pattern: unknown; data: unknown }[] = [];
  closedWith: [number | undefined, string | undefined] | undefined;

  constructor(
    readonly id: string,
    private readonly handlers: Record<string, Handler>,
  ) {}

  iterate(pattern: unknown, payload: unknown, options: WsMsgpackCallOptions): AsyncIterableIterator<unknown> {
    this.calls.push({ pattern, payload, options });
    const generator = this.handlers[String(pattern)]!(payload, options, this);
    const it: AsyncIterableIterator<unknown> = {
      next: () => generator.next(),
      return: () => {
        this.returned++;
        return generator.return(undefined);
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }

  send(): Observable<never> {
    throw new Error('not used');
  }
  emit(pattern: unknown, data: unknown): Observable<undefined> {
    this.events.push({ pattern, data });
    return of(undefined);
  }
  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
    this.isConnected = false;
  }
  join(...rooms: string[]): void {
    for (const r of rooms) this.rooms.add(r);
  }
  leave(...rooms: string[]): void {
    for (const r of rooms) this.rooms.delete(r);
  }
}

/** Gates the `gated` handler waits on, by name: resolve with {@link gate}. */
const gates = new Map<string, Promise<void>>();

/** Makes gate `name` (the `gated` handler with payload `name` waits on it); returns what opens it. */
export function gate(name: string): () => void {
  let open!: () => void;
  gates.set(name, new Promise<void>((resolve) => (open = resolve)));
  return open;
}

/** Handlers of the test peers. */
export const handlers: Record<string, Handler> = {
  async *sum(payload) {
    yield (payload as number[]).reduce((a, b) => a + b, 0);
  },
  async *count(payload, _options, peer) {
    for (let i = 0; i < (payload as number); i++) {
      peer.produced++;
      yield i;
    }
  },
  /** `n` items of `size` bytes each (payload [n, size]). */
  async *blobs(payload, _options, peer) {
    const [n, size] = payload as [number, number];
    for (let i = 0; i < n; i++) {
      peer.produced++;
      yield new Uint8Array(size).fill(i % 251);
    }
  },
  /** One item, then the end only once `release` of the payload's gate is called (see `gate`). */
  async *gated(payload) {
    yield 'first';
    await gates.get(payload as string);
  },
  async *itemThenFail() {
    yield 'one';
    throw new WsMsgpackError('RESOURCE_EXHAUSTED', 'after one');
  },
  async *forever(_payload, _options, peer) {
    for (let i = 0; ; i++) {
      peer.produced++;
      yield i;
    }
  },
  // eslint-disable-next-line require-yield
  async *fails(payload) {
    throw payload === 'error' ? new Error('plain failure') : payload === 'typed' ? new WsMsgpackError('RESOURCE_EXHAUSTED', 'too much', { limit: 5, seen: [1, 2] }) : payload;
  },
};

/** Replica A (the caller) and replica B (holding peer `p1`), on one bus. */
export function twoReplicas(options: { a?: RemoteCallsOptions; b?: RemoteCallsOptions; more?: ClusterLocalPeer } = {}) {
  const bus = new Bus();
  const peers = new Map<string, ClusterLocalPeer>([['p1', new TestPeer('p1', handlers)]]);
  if (options.more) peers.set(options.more.id, options.more);
  const errors: Record<'A' | 'B', Error[]> = { A: [], B: [] };
  const A = new RemoteCalls('A', bus.link('A'), () => undefined, { onError: (e) => errors.A.push(e), ...options.a });
  const B = new RemoteCalls('B', bus.link('B'), (id) => peers.get(id), { onError: (e) => errors.B.push(e), ...options.b });
  bus.nodes.set('A', A);
  bus.nodes.set('B', B);
  const remote = (id = 'p1', replica = 'B'): WsMsgpackPeer => A.peer({ id, replica, user: 'ada', rooms: ['r1'] });
  return { bus, A, B, peers, errors, remote, p1: peers.get('p1') as TestPeer };
}

/** A real ConnectionPeer (the server side of a connection) whose client answers calls with `handler`. */
export function connectionPeer(handler: RequestHandler): { peer: ConnectionPeer; close: () => void } {
  const c = new MemorySocket();
  const s = new MemorySocket();
  c.peer = s;
  s.peer = c;
  const client = new Connection(c, { role: 'client', keepAliveInterval: 0, socketSupport: WS_SOCKET_SUPPORT });
  const server = new Connection(s, { role: 'server', keepAliveInterval: 0, socketSupport: WS_SOCKET_SUPPORT });
  client.onRequest(handler);
  return {
    peer: new ConnectionPeer(server, { url: '/', headers: {}, remoteAddress: undefined }),
    close: () => {
      server.close();
      client.close();
    },
  };
}

/** Waits (macrotask by macrotask, at most `ms`) until `cond` holds. */
export async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** The error a call or emit fails with. */
export async function failure(o: Observable<unknown>): Promise<unknown> {
  try {
    await lastValueFrom(o);
  } catch (e) {
    return e;
  }
  throw new Error('expected an error');
}

export function codeOf(e: unknown): string | undefined {
  return e instanceof WsMsgpackError ? e.code : undefined;
}
