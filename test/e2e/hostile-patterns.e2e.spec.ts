/**
 * The raw-socket attack on issue 16's changes, each finding as a regression test:
 * 1. unhandled-event patterns kept whole in the once-per-pattern set (a 100-character slice
 *    holds its parent string): one connection grew the heap without bound, to an OOM crash;
 * 2. map patterns with one huge string passed the value count and were JSON-encoded whole, on
 *    every event (and again for the log line);
 * 3. a peer's ERROR (any code string, message, details) reached other callers through a relaying handler;
 * 4. newlines and terminal escapes in a pattern reached the log as sent;
 * 5. one peer could fill the set of logged patterns, blinding the log for good.
 */
import { jest } from '@jest/globals';
import { Controller, Logger } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { firstValueFrom } from 'rxjs';
import { WsMsgpackError, WsMsgpackErrorCode, WsPeer, type WsMsgpackPeer } from '../../src/index.js';
import { errorOf, first, startService, until, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

@Controller()
class TargetController {
  @MessagePattern('whoami')
  whoami(@WsPeer() peer: WsMsgpackPeer): string {
    return peer.id;
  }

  @MessagePattern('relayTo')
  async relayTo(@Payload() to: string, @WsPeer() me: WsMsgpackPeer): Promise<unknown> {
    const target = [...this.peers()].find((p) => p.id === to) ?? me;
    return await firstValueFrom(target.send('answer', 1));
  }

  peers: () => Iterable<WsMsgpackPeer> = () => [];
}

const MB = 1024 * 1024;

describe('peer-chosen patterns and relayed errors from hostile peers (raw sockets)', () => {
  let svc: TestService;
  const spyErrors = () => jest.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
  let errors: ReturnType<typeof spyErrors>;
  beforeAll(async () => {
    svc = await startService({ controllers: [TargetController] }, { maxPayload: 64 * MB });
  });
  beforeEach(() => {
    errors = spyErrors();
  });
  afterEach(() => errors.mockRestore());
  afterAll(() => svc.close());

  const noHandlerLines = (): string[] => errors.mock.calls.map((a) => String(a[0])).filter((m) => m.includes('no matching event handler'));

  it('1, 2: distinct huge patterns (strings, maps holding one huge string) are neither kept nor encoded whole: heap bounded', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      global.gc?.();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < 20; i++) {
        peer.send([2, `${i}`.padEnd(2 * MB, 'x'), null]); // a 2 MiB string pattern
        peer.send([2, { k: `${i}`.padEnd(2 * MB, '\u0001') }, null]); // a map: JSON would be 12 MiB
      }
      // The events were handled (a call on the same connection is answered after them).
      peer.send([1, 1, 'whoami', null]);
      await peer.next((f) => f[0] === 4 && f[1] === 1, 'the answer');
      global.gc?.();
      const grown = process.memoryUsage().heapUsed - before;
      expect(grown).toBeLessThan(16 * MB); // before the fix: > 80 MB (each 2 MiB pattern kept)
      // Logged as unreadable (never encoded), once, without the pattern.
      expect(noHandlerLines().filter((m) => m.includes('(a pattern over 4,096 characters'))).toHaveLength(1);
      expect(noHandlerLines().every((m) => m.length < 300)).toBe(true);
    } finally {
      peer.close();
    }
  });

  it('4: a pattern with newlines and terminal escapes is logged quoted and escaped', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      peer.send([2, 'x\n[Nest] 1 - LOG [Auth] admin login OK\u001b[2J', null]);
      peer.send([1, 1, 'whoami', null]);
      await peer.next((f) => f[0] === 4 && f[1] === 1, 'the answer');
      const line = noHandlerLines().find((m) => m.includes('admin login'))!;
      expect(line).toContain('"x\\n[Nest] 1 - LOG [Auth] admin login OK\\u001b[2J"');
      expect(line.includes('\n') || line.includes('\u001b')).toBe(false);
    } finally {
      peer.close();
    }
  });

  it('5: a burst of distinct patterns logs at most 10 lines a second, then one summary; memory of patterns bounded', async () => {
    const peer = await RawPeer.open(svc.url);
    try {
      for (let i = 0; i < 3000; i++) peer.send([2, `burst.${i}`, null]);
      peer.send([1, 1, 'whoami', null]);
      await peer.next((f) => f[0] === 4 && f[1] === 1, 'the answer');
      await until(() => noHandlerLines().some((m) => /more such frames/.test(m)), 5000, 'the summary line');
      const lines = noHandlerLines();
      expect(lines.length).toBeLessThanOrEqual(22); // two windows at most in a slow run, each 10 + a summary
      // After the burst, a real misrouted pattern is still logged (the set forgets, the window passes).
      await new Promise((r) => setTimeout(r, 1100));
      peer.send([2, 'orders.created', null]);
      peer.send([1, 3, 'whoami', null]);
      await peer.next((f) => f[0] === 4 && f[1] === 3, 'the answer');
      await until(() => noHandlerLines().some((m) => m.includes('"orders.created"')), 5000, 'the real one logged');
    } finally {
      peer.close();
    }
  });

  it("3: a peer's ERROR relayed by a handler: its code only if this transport defines it, never its message or details", async () => {
    const attacker = await RawPeer.open(svc.url);
    const client = svc.client();
    try {
      attacker.send([1, 1, 'whoami', null]);
      const id = (await attacker.next((f) => f[0] === 4 && f[1] === 1, 'whoami'))[2] as string;
      const ctrl = svc.app.get(TargetController);
      ctrl.peers = () => svc.server.peers;
      const answers: unknown[][] = [
        [5, 0, 'PERMISSION_DENIED', 'Log in again at https://evil.example', { hint: 'phish' }],
        [5, 0, 'RESOURCE_EXHAUSTED', 'retry via wss://evil.example', { retryAt: 'wss://evil.example' }],
        [5, 0, 'UNIMPLEMENTED', 'There is no handler, go to https://evil.example', { x: 'y'.repeat(100_000) }],
        [5, 0, 42, { not: 'a string' }],
      ];
      const got: unknown[] = [];
      for (const answer of answers) {
        const pending = errorOf(client.send('relayTo', id), 5000);
        const req = await attacker.next((f) => f[0] === 1 && f[2] === 'answer', 'the relayed call');
        attacker.send([answer[0], req[1], ...answer.slice(2)]);
        got.push(await pending);
      }
      expect(got[0]).toEqual({ status: 'error', message: 'Internal server error' }); // an invented code
      expect(got[1]).toBeInstanceOf(WsMsgpackError);
      expect(got[1]).toMatchObject({ code: WsMsgpackErrorCode.RESOURCE_EXHAUSTED, message: 'a call this one depends on failed with RESOURCE_EXHAUSTED' });
      expect((got[1] as WsMsgpackError).details).toBeUndefined();
      expect(got[2]).toMatchObject({ code: WsMsgpackErrorCode.UNIMPLEMENTED, message: 'a call this one depends on failed with UNIMPLEMENTED' });
      expect((got[2] as WsMsgpackError).details).toBeUndefined();
      expect(got[3]).toMatchObject({ code: WsMsgpackErrorCode.PROTOCOL_ERROR, message: 'a call this one depends on failed with PROTOCOL_ERROR' });
      expect(await first(client.send('whoami', null))).toEqual(expect.any(String)); // all well after
    } finally {
      attacker.close();
    }
  });
});
