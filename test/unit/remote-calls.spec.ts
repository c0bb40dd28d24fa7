/**
 * Remote calls (src/cluster/remote-calls.ts): two replicas' multiplexers joined by an in-memory bus
 * that msgpack-encodes every message (only plain data crosses, as over Redis) and delivers it
 * later, in order. The holder's local peers are test peers whose `iterate` runs an async
 * generator (counting what it produced and whether it was `return()`ed), or real ConnectionPeers
 * over in-memory sockets where the connection itself must act (deadlines, a handler's signal).
 * The parts are in test/support/remote-calls.ts.
 */
import { firstValueFrom, lastValueFrom, Observable, of, take, toArray } from 'rxjs';
import { RemoteCalls } from '../../src/cluster/remote-calls.js';
import { WsMsgpackRecord } from '../../src/peer/record.js';
import { WsMsgpackError } from '../../src/protocol/errors.js';
import { codeOf, connectionPeer, failure, twoReplicas, until } from '../support/remote-calls.js';

describe('RemoteCalls: calls to a peer on another replica', () => {
  it('a unary call: the value comes back; headers, deadline and window reach the holder', async () => {
    const { remote, p1, bus } = twoReplicas();
    expect(await firstValueFrom(remote().send('sum', [1, 2, 3]))).toBe(6);
    const record = new WsMsgpackRecord([4, 5], { headers: { tenant: 'x' }, timeout: 2000.5, window: 16 });
    expect(await lastValueFrom(remote().send('sum', record))).toBe(9);
    expect(p1.calls.map((c) => [c.payload, c.options])).toEqual([
      [[1, 2, 3], { window: 16 }], // the caller's 256, capped at SERVED_WINDOW on the client's connection
      [[4, 5], { window: 16, headers: { tenant: 'x' }, timeout: 2001 }],
    ]);
    expect(bus.sent('call')[1]).toMatchObject({ i: 2, p: 'p1', k: 'sum', d: [4, 5], h: { tenant: 'x' }, ms: 2001, n: 16 });
  });

  it('a 100,000-item stream arrives complete and in order, the producer never more than window + 1 ahead of the subscriber', async () => {
    const { remote, p1, bus } = twoReplicas();
    let received = 0;
    let lead = 0;
    let outOfOrder = 0;
    await new Promise<void>((resolve, reject) =>
      remote()
        .send<number>('count', 100_000)
        .subscribe({
          next: (v) => {
            if (v !== received) outOfOrder++;
            received++;
            lead = Math.max(lead, p1.produced - received);
          },
          error: reject,
          complete: resolve,
        }),
    );
    expect({ received, outOfOrder, produced: p1.produced }).toEqual({ received: 100_000, outOfOrder: 0, produced: 100_000 });
    expect(lead).toBeLessThanOrEqual(257);
    expect(lead).toBeGreaterThan(128); // it did run ahead: the bound is what held it
    expect(bus.sent('credit').length).toBeGreaterThanOrEqual(100_000 / 128 - 2);
  }, 60_000);

  it('a slow subscriber keeps the producer paced (window 4)', async () => {
    const { remote, p1, bus } = twoReplicas();
    const leads: number[] = [];
    let received = 0;
    await new Promise<void>((resolve, reject) =>
      remote()
        .send('count', new WsMsgpackRecord(120, { window: 4 }))
        .subscribe({
          next: () => {
            received++;
            leads.push(p1.produced - received);
            const busy = performance.now() + 1; // a subscriber that takes 1 ms per item
            while (performance.now() < busy);
          },
          error: reject,
          complete: resolve,
        }),
    );
    expect(received).toBe(120);
    expect(Math.max(...leads)).toBeLessThanOrEqual(5);
    // credit came back as the subscriber took items: every 2 items (left <= window / 2)
    expect(bus.sent('credit').map((m) => m.n)).toEqual(Array(60).fill(2));
  });

  it('unsubscribing mid-stream sends cancel, and the holder return()s its iterator', async () => {
    const { remote, p1, bus } = twoReplicas();
    const got = await lastValueFrom(remote().send<number>('forever', null).pipe(take(10), toArray()));
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await until(() => p1.returned === 1, 'the iterator to be returned');
    expect(bus.sent('cancel')).toEqual([{ t: 'cancel', i: 1 }]);
    expect(p1.produced).toBeLessThanOrEqual(10 + 256);
  });

  it('unsubscribing cancels the call on the client connection: its handler signal fires (real Connection)', async () => {
    let aborted = false;
    let started = false;
    const { peer, close } = connectionPeer((call) => {
      started = true;
      call.signal.addEventListener('abort', () => (aborted = true));
      return new Observable(() => {}); // never answers
    });
    const { remote } = twoReplicas({ more: peer });
    try {
      const sub = remote(peer.id)
        .send('hang', 1)
        .subscribe({ error: () => undefined });
      await until(() => started, 'the client handler to start');
      sub.unsubscribe();
      await until(() => aborted, "the client handler's signal to abort");
    } finally {
      close();
    }
  });

  it('a deadline is enforced by the holder connection: DEADLINE_EXCEEDED comes back from it (real Connection)', async () => {
    const { peer, close } = connectionPeer(() => new Observable(() => {}));
    const { remote } = twoReplicas({ a: { deadlineGrace: 10_000 }, more: peer });
    try {
      const started = Date.now();
      const e = await failure(remote(peer.id).send('hang', new WsMsgpackRecord(1, { timeout: 50 })));
      expect([codeOf(e), (e as Error).message]).toEqual(['DEADLINE_EXCEEDED', 'deadline of 50 ms exceeded']);
      expect(Date.now() - started).toBeLessThan(5000); // not the caller's guard (50 + 10,000 ms)
    } finally {
      close();
    }
  });

  it('a holder that never answers: the caller fails DEADLINE_EXCEEDED by its own guard, and cancels', async () => {
    const { remote, bus } = twoReplicas({ a: { deadlineGrace: 20 } });
    bus.lose = (m) => m.t === 'call'; // the holder never hears of it
    const e = await failure(remote().send('sum', new WsMsgpackRecord([1], { timeout: 30 })));
    expect(codeOf(e)).toBe('DEADLINE_EXCEEDED');
    expect((e as Error).message).toMatch(/deadline of 30 ms exceeded \(replica B did not answer/);
    expect(bus.sent('cancel')).toEqual([{ t: 'cancel', i: 1, r: 'DEADLINE_EXCEEDED' }]);
  });

  it('typed errors travel: code, message and details; a Nest error payload as-is; an Error as APPLICATION_ERROR', async () => {
    const { remote } = twoReplicas();
    const typed = await failure(remote().send('fails', 'typed'));
    expect(typed).toBeInstanceOf(WsMsgpackError);
    expect([codeOf(typed), (typed as WsMsgpackError).message, (typed as WsMsgpackError).details]).toEqual(['RESOURCE_EXHAUSTED', 'too much', { limit: 5, seen: [1, 2] }]);
    expect(await failure(remote().send('fails', { status: 'error', message: 'bad input' }))).toEqual({ status: 'error', message: 'bad input' });
    const plain = await failure(remote().send('fails', 'error'));
    expect([codeOf(plain), (plain as Error).message]).toEqual(['APPLICATION_ERROR', 'plain failure']);
  });

  it('a peer the holder does not have: UNAVAILABLE naming it, and the remote peer is no longer connected', async () => {
    const { remote, bus } = twoReplicas();
    const ghost = remote('ghost');
    const e = await failure(ghost.send('sum', [1]));
    expect([codeOf(e), (e as Error).message]).toEqual(['UNAVAILABLE', 'peer ghost is not connected to replica B']);
    expect(ghost.isConnected).toBe(false);
    const again = await failure(ghost.send('sum', [1]));
    expect(codeOf(again)).toBe('UNAVAILABLE');
    expect(bus.sent('call')).toHaveLength(1); // refused at once, nothing sent
  });

  it('replicaDown fails the calls to it at once (UNAVAILABLE) and cancels the calls served for it', async () => {
    const { A, B, remote, p1 } = twoReplicas();
    const peer = remote();
    let error: unknown;
    let received = 0;
    peer.send('forever', null).subscribe({ next: () => received++, error: (e) => (error = e) });
    await until(() => received >= 10, 'items');
    A.replicaDown('B');
    expect(codeOf(error)).toBe('UNAVAILABLE'); // at once, not after a timeout
    expect(peer.isConnected).toBe(false);
    expect(codeOf(await failure(peer.send('sum', [1])))).toBe('UNAVAILABLE');
    expect(p1.returned).toBe(0);
    B.replicaDown('A');
    expect(p1.returned).toBe(1);
    // B is back under the same id: a peer taken now works
    expect(await firstValueFrom(remote().send('sum', [2, 3]))).toBe(5);
  });

  it('linkDown fails the calls under way and cancels those served; new calls work again', async () => {
    const { A, B, remote, p1 } = twoReplicas();
    let received = 0;
    const errors: unknown[] = [];
    remote()
      .send('forever', null)
      .subscribe({ next: () => received++, error: (e) => errors.push(e) });
    await until(() => received >= 5, 'items');
    B.linkDown(new Error('ECONNRESET'));
    expect(p1.returned).toBe(1);
    A.linkDown();
    expect(errors.map(codeOf)).toEqual(['UNAVAILABLE']);
    expect((errors[0] as Error).message).toBe('cluster: replica A lost its link to the cluster engine');
    expect(await firstValueFrom(remote().send('sum', [1, 1]))).toBe(2);
  });

  it("the holder's link drops mid-call and comes back: the caller is told UNAVAILABLE then (never a hang), and the holder stopped serving", async () => {
    const { B, remote, p1, bus } = twoReplicas();
    let received = 0;
    let error: unknown;
    remote()
      .send('forever', null)
      .subscribe({ next: () => received++, error: (e) => (error = e) });
    await until(() => received >= 5, 'items');
    bus.cutOff.add('B'); // B can send nothing: its answer is owed
    B.linkDown(new Error('ECONNRESET'));
    expect(p1.returned).toBe(1);
    await new Promise((r) => setImmediate(r));
    expect(error).toBeUndefined();
    bus.cutOff.delete('B');
    B.linkUp();
    await until(() => error !== undefined, "the holder's owed answer");
    expect({ code: codeOf(error), message: (error as Error).message }).toEqual({
      code: 'UNAVAILABLE',
      message: 'cluster: replica B, which served it, lost its link to the cluster engine',
    });
  });

  it("the caller's link drops mid-call and comes back: the call failed at once, and the holder is told to stop once the link is back", async () => {
    const { A, remote, p1, bus } = twoReplicas();
    let received = 0;
    let error: unknown;
    remote()
      .send('forever', null)
      .subscribe({ next: () => received++, error: (e) => (error = e) });
    await until(() => received >= 5, 'items');
    bus.cutOff.add('A'); // A can send nothing: its cancel is owed (B still serves, under the credit it had)
    A.linkDown();
    expect(codeOf(error)).toBe('UNAVAILABLE');
    await new Promise((r) => setImmediate(r));
    expect(p1.returned).toBe(0);
    bus.cutOff.delete('A');
    A.linkUp();
    await until(() => p1.returned === 1, 'the owed cancel reached the holder');
    expect(bus.sent('cancel')).toHaveLength(1);
  });

  it('a link that can still send (only its subscriber dropped): the cancel goes at once', async () => {
    const { A, remote, p1 } = twoReplicas();
    let received = 0;
    remote()
      .send('forever', null)
      .subscribe({ next: () => received++, error: () => undefined });
    await until(() => received >= 5, 'items');
    A.linkDown();
    await until(() => p1.returned === 1, 'the cancel reached the holder');
  });

  it('close: the holder cancels what it serves; the caller fails its calls (and tells the holder), then refuses new ones', async () => {
    const { A, B, remote, p1, bus } = twoReplicas();
    let received = 0;
    const errors: unknown[] = [];
    const stream = () =>
      remote()
        .send('forever', null)
        .subscribe({ next: () => received++, error: (e) => errors.push(e) });
    stream();
    await until(() => received >= 5, 'items');
    B.close();
    expect(p1.returned).toBe(1);
    expect(errors).toEqual([]); // B closed says nothing: A learns it by replicaDown (or its own close)
    const B2 = new RemoteCalls('B', bus.link('B'), (id) => (id === 'p1' ? p1 : undefined));
    bus.nodes.set('B', B2);
    stream();
    await until(() => p1.calls.length === 2 && received >= 10, 'the second stream');
    A.close();
    expect(errors.map(codeOf)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
    await until(() => p1.returned === 2, 'the cancel of the second stream');
    expect(codeOf(await failure(remote().send('sum', [1])))).toBe('UNAVAILABLE');
    expect(codeOf(await failure(remote().emit('hello', 1)))).toBe('UNAVAILABLE');
    B2.close();
  });

  it('a link that rejects fails calls and emits with UNAVAILABLE', async () => {
    const { remote, bus } = twoReplicas();
    bus.down = true;
    const e = await failure(remote().send('sum', [1]));
    expect([codeOf(e), (e as Error).message]).toEqual(['UNAVAILABLE', 'the bus is down']);
    expect(codeOf(await failure(remote().emit('hello', 1)))).toBe('UNAVAILABLE');
    bus.down = false;
    expect(await firstValueFrom(remote().send('sum', [1]))).toBe(1);
  });

  it('garbage messages are reported and dropped, never thrown; the calls go on', async () => {
    const { A, B, remote, errors } = twoReplicas();
    const garbage: unknown[] = [42, null, [1], { t: 'nope', i: 1 }, { t: 'next', i: -1 }, { t: 'call', i: 1, k: 'sum' }, { t: 'credit', i: 1, n: 0 }, { t: 'error', i: 1, c: 5 }];
    for (const g of garbage) {
      expect(() => A.receive('B', g)).not.toThrow();
      expect(() => B.receive('A', g)).not.toThrow();
    }
    expect(() => A.receive(7 as unknown as string, { t: 'done', i: 1 })).not.toThrow();
    expect(errors.A).toHaveLength(garbage.length + 1);
    expect(errors.B).toHaveLength(garbage.length);
    expect(errors.A.every((e) => codeOf(e) === 'PROTOCOL_ERROR')).toBe(true);
    expect(errors.A[3]!.message).toBe('cluster: dropped a message from replica B: unknown type "nope"');
    expect(await firstValueFrom(remote().send('sum', [1, 2]))).toBe(3);
  });

  it('a request stream is refused at once with UNIMPLEMENTED, naming the limit; nothing is sent', async () => {
    const { remote, bus } = twoReplicas();
    async function* items() {
      yield 1;
    }
    for (const data of [of(1, 2), items(), new WsMsgpackRecord(of(1))]) {
      const e = await failure(remote().send('sum', data));
      expect(codeOf(e)).toBe('UNIMPLEMENTED');
      expect((e as Error).message).toMatch(/a request stream cannot be sent to a peer on another replica \(peer p1 is on replica B\)/);
    }
    expect(bus.log).toHaveLength(0);
  });

  it('emit completes once the holder handed it to its peer (with headers); to a gone peer it fails UNAVAILABLE', async () => {
    const { remote, p1 } = twoReplicas();
    const peer = remote();
    expect(await lastValueFrom(peer.emit('hello', new WsMsgpackRecord({ a: 1 }, { headers: { h: 1 } })).pipe(toArray()))).toEqual([undefined]);
    expect(p1.events).toEqual([{ pattern: 'hello', data: new WsMsgpackRecord({ a: 1 }, { headers: { h: 1 } }) }]);
    p1.isConnected = false;
    const e = await failure(peer.emit('hello', 2));
    expect([codeOf(e), (e as Error).message]).toEqual(['UNAVAILABLE', 'peer p1 is not connected to replica B']);
    expect(peer.isConnected).toBe(false);
    expect(p1.events).toHaveLength(1);
  });

  it('an emit the holder never acknowledges fails UNAVAILABLE after ackTimeout', async () => {
    const { remote, bus } = twoReplicas({ a: { ackTimeout: 20 } });
    bus.lose = (m) => m.t === 'ack';
    const e = await failure(remote().emit('hello', 1));
    expect([codeOf(e), (e as Error).message]).toEqual(['UNAVAILABLE', 'cluster: replica B did not acknowledge the event within 20 ms']);
  });

  it('join, leave and close reach the holder peer; the remote peer mirrors them', async () => {
    const { remote, p1, bus } = twoReplicas();
    const peer = remote();
    expect([peer.user, [...peer.rooms], peer.handshake]).toEqual(['ada', ['r1'], { url: '', headers: {}, remoteAddress: undefined }]);
    peer.join('a', 'b');
    peer.leave('a');
    expect([...peer.rooms]).toEqual(['r1', 'b']);
    expect(() => peer.join('')).toThrow(TypeError);
    await until(() => bus.sent('leave').length === 1 && p1.rooms.size === 1, 'the room changes');
    expect([...p1.rooms]).toEqual(['b']);
    peer.close(4000, 'bye');
    expect(peer.isConnected).toBe(false);
    await until(() => p1.closedWith !== undefined, 'the close');
    expect(p1.closedWith).toEqual([4000, 'bye']);
  });
});
