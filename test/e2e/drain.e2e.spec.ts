import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { finalize, interval, type Observable } from 'rxjs';
import { WsSignal } from '../../src/index.js';
import { errorOf, first, startService, until, WAIT_MS, within } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';
import WebSocket from 'ws';
import { codeOf, gate, newTag, Probes } from '../support/streams.js';

/** Opens plain sockets to `url` until one is refused (the server has begun to close); resolves with the refusal. */
async function refusedOnceClosing(url: string): Promise<string> {
  for (const deadline = Date.now() + WAIT_MS; Date.now() < deadline;) {
    const outcome = await new Promise<string | undefined>((resolve) => {
      const ws = new WebSocket(url, ['wsmp.v1']);
      ws.once('open', () => (ws.terminate(), resolve(undefined)));
      ws.once('error', (e) => resolve(e.message));
    });
    if (outcome !== undefined) return outcome;
  }
  throw new Error('new connections were still accepted');
}

const probes = new Probes();
const release = { gate: gate() };

@Controller()
class DrainController {
  /** Finishes when the test lets it. */
  @MessagePattern('work')
  async work(@Payload() tag: string): Promise<string> {
    probes.get(tag).started++;
    await release.gate.promise;
    probes.get(tag).completed++;
    return `done ${tag}`;
  }

  @MessagePattern('endless')
  endless(@Payload() tag: string, @WsSignal() signal: AbortSignal): Observable<number> {
    const p = probes.get(tag).watch(signal);
    p.started++;
    return interval(5).pipe(finalize(() => p.finalized++));
  }

  @MessagePattern('echo')
  echo(@Payload() v: unknown): unknown {
    return v;
  }
}

describe('graceful shutdown: close() drains', () => {
  it('a call under way finishes during the drain; close() resolves after it', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('work');
      const answer = first(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      let closed = false;
      const closing = svc.app.close().then(() => (closed = true));
      // The drain is under way once new connections are refused; the held call's connection stays.
      await refusedOnceClosing(svc.url);
      expect({ connections: svc.server.connectionCount, closed }).toEqual({ connections: 1, closed: false });
      release.gate.open();
      expect(await answer).toBe(`done ${tag}`);
      await within(closing, WAIT_MS, 'close after the drain');
    } finally {
      await client.close();
    }
  });

  it('what is still running after drainTimeout is cancelled: finalize runs, the caller gets UNAVAILABLE', async () => {
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 100 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('endless');
      const call = errorOf(client.send('endless', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'stream running');
      await within(svc.app.close(), WAIT_MS, 'close');
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      expect(probes.get(tag).finalized).toBe(1);
      expect(probes.get(tag).abortCode).toBe('UNAVAILABLE');
    } finally {
      await client.close();
    }
  });

  it('drainTimeout 0 cancels at once', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 0 });
    const client = svc.client({ reconnect: false });
    try {
      const tag = newTag('work0');
      const call = errorOf(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      await within(svc.app.close(), WAIT_MS, 'close');
      expect(codeOf(await call)).toBe('UNAVAILABLE');
      expect(probes.get(tag).completed).toBe(0);
    } finally {
      release.gate.open();
      await client.close();
    }
  });

  it('on the wire: GOING_AWAY first (a connection-level ERROR), new REQUESTs refused with UNAVAILABLE, then close 1001', async () => {
    release.gate = gate();
    const svc = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const peer = await RawPeer.open(svc.url);
    try {
      const tag = newTag('wire');
      peer.send([1, 1, 'work', tag]);
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'handler running');
      const closing = svc.app.close();
      expect(await peer.next((f) => f[0] === 5 && f[1] === 0)).toEqual([5, 0, 'GOING_AWAY', 'server shutting down', { drainTimeout: 4000 }]);
      peer.send([1, 3, 'echo', 'late']);
      expect(await peer.next((f) => f[1] === 3)).toEqual([5, 3, 'UNAVAILABLE', 'the connection is going away: server shutting down']);
      release.gate.open();
      expect(await peer.next((f) => f[1] === 1)).toEqual([4, 1, `done ${tag}`]);
      expect(await peer.whenClosed()).toEqual({ code: 1001, reason: 'server shutting down' });
      await within(closing, WAIT_MS, 'close');
    } finally {
      peer.close();
    }
  });

  it('a client told GOING_AWAY starts new calls on another replica at once, while the old call finishes', async () => {
    release.gate = gate();
    const a = await startService({ controllers: [DrainController] }, { drainTimeout: 4000 });
    const b = await startService({ controllers: [DrainController] });
    const client = a.client({ url: [a.url, b.url] });
    try {
      const tag = newTag('replica');
      const old = first(client.send('work', tag));
      await until(() => probes.get(tag).started === 1, WAIT_MS, 'call on a');
      const closing = a.app.close();
      await until(() => b.server.connectionCount === 1, WAIT_MS, 'the client opened b');
      expect(await first(client.send('echo', 'on b'))).toBe('on b');
      expect(a.server.connectionCount).toBe(1); // a is still draining its call
      release.gate.open();
      expect(await old).toBe(`done ${tag}`);
      await within(closing, WAIT_MS, 'a closed');
    } finally {
      await client.close();
      await b.close();
    }
  });
});
