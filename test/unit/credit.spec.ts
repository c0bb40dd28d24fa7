import { from, Subject, toArray, type Observable } from 'rxjs';
import { Connection, type ConnectionOptions } from '../../src/connection/connection.js';
import { WS_SOCKET_SUPPORT } from '../../src/node/ws-socket.js';
import { InboundCredit, OutboundCredit } from '../../src/connection/credit.js';
import { FrameCodec } from '../../src/protocol/codec.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';
import { MemorySocket } from '../support/memory-socket.js';

describe('InboundCredit', () => {
  it('grants the window up front and refuses items beyond it', () => {
    const c = new InboundCredit(4);
    expect(c.window).toBe(4);
    expect(c.unlimited).toBe(false);
    expect(c.outstanding).toBe(4);
    for (let i = 0; i < 4; i++) expect(c.receive()).toBe(true);
    expect(c.outstanding).toBe(0);
    expect(c.receive()).toBe(false);
    expect(c.receive()).toBe(false);
    expect(c.outstanding).toBe(0);
  });

  it('tops the grant back up to the window once half of it was consumed', () => {
    const c = new InboundCredit(8);
    const grants: number[] = [];
    for (let i = 1; i <= 4; i++) {
      expect(c.receive()).toBe(true);
      grants.push(c.consumed());
    }
    // outstanding 7, 6, 5 (> 4: nothing due), then 4 (<= 4: top up by 4 back to 8)
    expect(grants).toEqual([0, 0, 0, 4]);
    expect(c.outstanding).toBe(8);
  });

  it('counts consumption, not arrival: a lagging consumer keeps the sender within one window', () => {
    const c = new InboundCredit(8);
    for (let i = 0; i < 8; i++) expect(c.receive()).toBe(true); // all 8 arrive, none consumed yet
    expect(c.receive()).toBe(false); // the 9th would exceed the window
    expect(c.consumed()).toBe(0); // 1 consumed: 7 still ahead of the consumer
    expect(c.consumed()).toBe(0);
    expect(c.consumed()).toBe(0); // 3 consumed: 5 ahead
    expect(c.consumed()).toBe(4); // 4 consumed: 4 ahead (half) -> top up to consumed + 8 = 12
    expect(c.outstanding).toBe(4); // granted 12, received 8
    for (let i = 0; i < 4; i++) expect(c.receive()).toBe(true);
    expect(c.receive()).toBe(false); // never more than 8 beyond the 4 consumed
  });

  it('handles odd windows (half rounds down) and a window of 1', () => {
    const five = new InboundCredit(5);
    const grants: number[] = [];
    for (let i = 0; i < 3; i++) {
      five.receive();
      grants.push(five.consumed());
    }
    expect(grants).toEqual([0, 0, 3]); // outstanding 4, 3 (> 2.5), then 2 (<= 2.5): grant 3
    const one = new InboundCredit(1);
    expect(one.receive()).toBe(true);
    expect(one.receive()).toBe(false);
    expect(one.consumed()).toBe(1);
    expect(one.receive()).toBe(true);
  });

  it('sends one CREDIT per window/2 items on a steady stream and never lets the sender run dry', () => {
    const window = 256;
    const items = 100_000;
    const c = new InboundCredit(window);
    let available = window; // the sender's view of its credit
    const grants: number[] = [];
    let problems = 0;
    for (let i = 0; i < items; i++) {
      if (available <= 0 || !c.receive()) problems++;
      available--;
      const n = c.consumed();
      if (n > 0) {
        grants.push(n);
        available += n;
      }
      if (c.outstanding !== available || available > window || available <= window / 2 - 1) problems++;
    }
    expect(problems).toBe(0);
    expect(grants).toHaveLength(Math.floor(items / (window / 2)));
    expect(grants.every((n) => n === window / 2)).toBe(true);
  });

  it('is unlimited with a window of 0: everything is accepted, nothing is granted', () => {
    const c = new InboundCredit(0);
    expect(c.unlimited).toBe(true);
    expect(c.outstanding).toBe(Infinity);
    for (let i = 0; i < 10_000; i++) {
      expect(c.receive()).toBe(true);
      expect(c.consumed()).toBe(0);
    }
  });
});

describe('OutboundCredit', () => {
  it('counts down to zero and refuses to go below', () => {
    const c = new OutboundCredit(2);
    expect(c.take()).toBe(true);
    expect(c.take()).toBe(true);
    expect(c.value).toBe(0);
    expect(c.take()).toBe(false);
    expect(c.value).toBe(0);
  });

  it('adds granted credit', () => {
    const c = new OutboundCredit(0);
    expect(c.take()).toBe(false);
    c.add(3);
    expect(c.value).toBe(3);
    expect(c.take()).toBe(true);
    c.add(1);
    expect(c.value).toBe(3);
  });

  it('stays unlimited with Infinity', () => {
    const c = new OutboundCredit(Infinity);
    for (let i = 0; i < 1000; i++) expect(c.take()).toBe(true);
    expect(c.value).toBe(Infinity);
  });
});

// ---------------------------------------------------------------- credit on the wire

const codec = new FrameCodec();

/** Lets queued microtasks and immediates run (no timers involved). */
async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A connection whose peer is the test: frames go in via `deliver`, come out in `frames()`. */
function rawPeer(options: ConnectionOptions): { conn: Connection; deliver: (f: Frame) => void; frames: () => Frame[] } {
  const socket = new MemorySocket();
  // No keep-alive: a memory socket cannot ping, and the test is the peer (it would not answer keep-alive calls).
  const conn = new Connection(socket, { keepAliveInterval: 0, socketSupport: WS_SOCKET_SUPPORT, ...options });
  let read = 0;
  return {
    conn,
    deliver: (f) => socket.receive(codec.encode(f)),
    frames: () => {
      const out = socket.sent.slice(read).map((b) => codec.decode(b));
      read = socket.sent.length;
      return out;
    },
  };
}

describe('credit on the wire (Connection)', () => {
  it('the responder grants CREDIT(window) right after accepting a stream REQUEST, and tops up at half', async () => {
    const { conn, deliver, frames } = rawPeer({ role: 'server', window: 4 });
    conn.onRequest((call) => (call.payload as Observable<unknown>).pipe(toArray()));
    deliver({ type: FrameType.REQUEST, id: 1, pattern: 'up', payload: undefined, stream: true });
    expect(frames()).toEqual([{ type: FrameType.CREDIT, id: 1, credit: 4 }]);
    deliver({ type: FrameType.NEXT, id: 1, value: 'a' });
    await flush(); // a server may leave a connection's next frames to a later turn (fair reading)
    expect(frames()).toEqual([]);
    deliver({ type: FrameType.NEXT, id: 1, value: 'b' });
    await flush();
    expect(frames()).toEqual([{ type: FrameType.CREDIT, id: 1, credit: 2 }]);
    deliver({ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 'c' });
    await flush();
    expect(frames()).toEqual([{ type: FrameType.COMPLETE, id: 1, hasValue: true, value: ['a', 'b', 'c'] }]);
  });

  it('a request-stream item beyond credit fails the call with PROTOCOL_ERROR', async () => {
    const { conn, deliver, frames } = rawPeer({ role: 'server', window: 2 });
    conn.onRequest(() => new Subject<unknown>()); // never reads the request stream: no credit comes back
    deliver({ type: FrameType.REQUEST, id: 1, pattern: 'up', payload: undefined, stream: true });
    deliver({ type: FrameType.NEXT, id: 1, value: 1 });
    deliver({ type: FrameType.NEXT, id: 1, value: 2 });
    expect(frames()).toEqual([{ type: FrameType.CREDIT, id: 1, credit: 2 }]);
    deliver({ type: FrameType.NEXT, id: 1, value: 3 });
    await flush();
    const out = frames();
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ type: FrameType.ERROR, id: 1, code: 'PROTOCOL_ERROR' });
    expect((out[0] as { message: string }).message).toContain('beyond granted credit');
    expect(conn.incomingCalls).toBe(0);
  });

  it('the requester announces its window as meta n and tops it up once per window/2 items', () => {
    const { conn, deliver, frames } = rawPeer({ role: 'client', window: 4 });
    const got: unknown[] = [];
    let completed = false;
    conn.call('list', null).subscribe({ next: (v) => got.push(v), complete: () => (completed = true) });
    expect(frames()).toEqual([{ type: FrameType.REQUEST, id: 1, pattern: 'list', payload: null, stream: false, credit: 4 }]);
    const credits: number[] = [];
    for (let i = 0; i < 100; i++) {
      deliver({ type: FrameType.NEXT, id: 1, value: i });
      for (const f of frames()) {
        expect(f.type).toBe(FrameType.CREDIT);
        if (f.type === FrameType.CREDIT) credits.push(f.credit);
      }
    }
    expect(credits).toEqual(Array.from({ length: 50 }, () => 2));
    deliver({ type: FrameType.COMPLETE, id: 1, hasValue: false });
    expect(frames()).toEqual([]);
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(completed).toBe(true);
  });

  it('a requester window of 0 sends no n (unlimited) and no CREDIT frames', () => {
    const { conn, deliver, frames } = rawPeer({ role: 'client', window: 0 });
    let count = 0;
    conn.call('list', null).subscribe({ next: () => count++ });
    expect(frames()).toEqual([{ type: FrameType.REQUEST, id: 1, pattern: 'list', payload: null, stream: false }]);
    for (let i = 0; i < 1000; i++) deliver({ type: FrameType.NEXT, id: 1, value: i });
    expect(frames()).toEqual([]);
    expect(count).toBe(1000);
  });

  it('the responder sends no more items than the credit it was given; the final item rides on COMPLETE', async () => {
    const { conn, deliver, frames } = rawPeer({ role: 'server' });
    conn.onRequest(() => from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]));
    deliver({ type: FrameType.REQUEST, id: 1, pattern: 'list', payload: null, stream: false, credit: 3 });
    await flush();
    expect(frames()).toEqual([1, 2, 3].map((value) => ({ type: FrameType.NEXT, id: 1, value })));
    deliver({ type: FrameType.CREDIT, id: 1, credit: 2 });
    await flush();
    expect(frames()).toEqual([4, 5].map((value) => ({ type: FrameType.NEXT, id: 1, value })));
    deliver({ type: FrameType.CREDIT, id: 1, credit: 5 });
    await flush();
    expect(frames()).toEqual([...[6, 7, 8, 9].map((value) => ({ type: FrameType.NEXT, id: 1, value })), { type: FrameType.COMPLETE, id: 1, hasValue: true, value: 10 }]);
  });

  it('a responder given n=0 waits for CREDIT before answering', async () => {
    const { conn, deliver, frames } = rawPeer({ role: 'server' });
    conn.onRequest(() => from([42]));
    deliver({ type: FrameType.REQUEST, id: 1, pattern: 'one', payload: null, stream: false, credit: 0 });
    await flush();
    expect(frames()).toEqual([]);
    deliver({ type: FrameType.CREDIT, id: 1, credit: 1 });
    await flush();
    expect(frames()).toEqual([{ type: FrameType.COMPLETE, id: 1, hasValue: true, value: 42 }]);
  });

  it('a pull source (generator) is pulled at most one item ahead of the credit it was given', async () => {
    const { conn, deliver, frames } = rawPeer({ role: 'server' });
    let produced = 0;
    function* numbers(): Generator<number> {
      for (let i = 1; i <= 100; i++) {
        produced++;
        yield i;
      }
    }
    conn.onRequest(() => numbers());
    deliver({ type: FrameType.REQUEST, id: 1, pattern: 'gen', payload: null, stream: false, credit: 2 });
    await flush();
    expect(frames()).toHaveLength(2);
    expect(produced).toBe(3); // item 3 waits for credit, so the end of the source is seen at once
    deliver({ type: FrameType.CREDIT, id: 1, credit: 3 });
    await flush();
    expect(frames().map((f) => (f.type === FrameType.NEXT ? f.value : f))).toEqual([3, 4, 5]);
    expect(produced).toBe(6);
  });

  it('BUG: a responder with window 0 (unlimited) still lets a request stream flow', async () => {
    // The responder sends CREDIT only when its window is > 0, but the requester starts a request stream with zero
    // credit: with `window: 0` on the server, every request stream stalls until its deadline (or forever).
    const client = new MemorySocket();
    const server = new MemorySocket();
    client.peer = server;
    server.peer = client;
    const c = new Connection(client, { role: 'client', keepAliveInterval: 0, socketSupport: WS_SOCKET_SUPPORT });
    const s = new Connection(server, { role: 'server', window: 0, keepAliveInterval: 0, socketSupport: WS_SOCKET_SUPPORT });
    s.onRequest((call) => (call.payload as Observable<unknown>).pipe(toArray()));
    const got: unknown[] = [];
    c.call('up', from([1, 2, 3])).subscribe({ next: (v) => got.push(v) });
    await flush(20);
    expect(got).toEqual([[1, 2, 3]]);
  });
});
