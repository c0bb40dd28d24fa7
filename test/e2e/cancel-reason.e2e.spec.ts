/**
 * Issue 16, item 7: a handler's `signal.reason` after the caller's deadline could read CANCELLED.
 * The server told a deadline from a cancel only by timing (a CANCEL within 2 ms of its own
 * deadline), so a server that received the REQUEST late (a busy event loop: its deadline counts
 * from then) took the caller's deadline CANCEL for a plain cancel. CANCEL now carries the reason:
 * `[6, id, "DEADLINE_EXCEEDED"]`.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import { NEVER, Subject } from 'rxjs';
import { WsMsgpackErrorCode, WsSignal } from '../../src/index.js';
import { startService, within, type TestService } from '../support/helpers.js';
import { RawPeer } from '../support/raw-peer.js';

const reasons = new Subject<unknown>();

@Controller()
class SlowController {
  @MessagePattern('slow')
  slow(@WsSignal() signal: AbortSignal): typeof NEVER {
    signal.addEventListener('abort', () => reasons.next(signal.reason));
    return NEVER;
  }
}

describe("the reason a handler's signal gives (issue 16, item 7)", () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [SlowController] });
  });
  afterAll(() => svc.close());

  async function reasonOf(cancel: unknown[]): Promise<unknown> {
    const peer = await RawPeer.open(svc.url);
    try {
      // A deadline a minute away on the server's clock: only the CANCEL can say it has passed.
      peer.send([1, 1, 'slow', null, { t: 60_000 }]);
      const reason = new Promise((resolve) => reasons.subscribe({ next: resolve }));
      await new Promise((r) => setTimeout(r, 20)); // the handler is running
      peer.send(cancel);
      return await within(reason, 5000, 'the abort');
    } finally {
      peer.close();
    }
  }

  it('[6, id, "DEADLINE_EXCEEDED"] (the caller\'s deadline fired first): DEADLINE_EXCEEDED', async () => {
    expect(await reasonOf([6, 1, 'DEADLINE_EXCEEDED'])).toMatchObject({ code: WsMsgpackErrorCode.DEADLINE_EXCEEDED });
  });

  it('[6, id] before the deadline: CANCELLED', async () => {
    expect(await reasonOf([6, 1])).toMatchObject({ code: WsMsgpackErrorCode.CANCELLED });
  });

  it('an unknown reason is a plain cancel', async () => {
    expect(await reasonOf([6, 1, 'SOMETHING'])).toMatchObject({ code: WsMsgpackErrorCode.CANCELLED });
  });
});
