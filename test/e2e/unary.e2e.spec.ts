import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { WsMsgpackContext, WsMsgpackError, WsMsgpackRecordBuilder } from '../../src/index.js';
import { NO_MESSAGE_HANDLER } from '../../src/protocol.js';
import { errorOf, first, startService, type TestService } from '../support/helpers.js';

@Controller()
class MathController {
  @MessagePattern('sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'sum', v: 2 })
  sumObject(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 100);
  }

  @MessagePattern('asyncSum')
  async asyncSum(@Payload() data: number[]): Promise<number> {
    await new Promise((r) => setTimeout(r, 5));
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('fail')
  fail(): never {
    throw new RpcException('bad input');
  }

  @MessagePattern('failObject')
  failObject(): never {
    throw new RpcException({ code: 42, reason: 'nope' });
  }

  @MessagePattern('crash')
  crash(): never {
    throw new Error('secret internals');
  }

  @MessagePattern('headers')
  headers(@Ctx() ctx: WsMsgpackContext): unknown {
    return { headers: ctx.getHeaders(), pattern: ctx.getPattern(), aborted: ctx.getSignal().aborted };
  }
}

describe('unary calls', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [MathController] });
  });
  afterAll(() => svc.close());

  it('answers a string pattern', async () => {
    expect(await first(svc.client().send('sum', [1, 2, 3]))).toBe(6);
  });

  it('matches object patterns regardless of key order', async () => {
    const c = svc.client();
    expect(await first(c.send({ v: 2, cmd: 'sum' }, [1]))).toBe(101);
  });

  it('keeps resolving object patterns on repeated calls (resolution is cached), and misses stay misses', async () => {
    const c = svc.client();
    for (let i = 0; i < 3; i++) {
      expect(await first(c.send({ cmd: 'sum', v: 2 }, [i]))).toBe(100 + i);
      expect(await first(c.send({ v: 2, cmd: 'sum' }, [i]))).toBe(100 + i);
      expect(await errorOf(c.send({ cmd: 'sum', v: 3 }, [i]))).toMatchObject({ code: 'UNIMPLEMENTED' });
    }
  });

  it('answers async handlers', async () => {
    expect(await first(svc.client().send('asyncSum', [4, 5]))).toBe(9);
  });

  it('delivers RpcException payloads as Nest TCP does', async () => {
    const c = svc.client();
    expect(await errorOf(c.send('fail', {}))).toEqual({ status: 'error', message: 'bad input' });
    expect(await errorOf(c.send('failObject', {}))).toEqual({ code: 42, reason: 'nope' });
  });

  it('hides other exceptions behind Internal server error', async () => {
    expect(await errorOf(svc.client().send('crash', {}))).toEqual({ status: 'error', message: 'Internal server error' });
  });

  it("fails unknown patterns with UNIMPLEMENTED and Nest's message", async () => {
    const err = await errorOf(svc.client().send('nope', {}));
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(err).toMatchObject({ code: 'UNIMPLEMENTED', message: NO_MESSAGE_HANDLER });
  });

  it('carries headers from the record builder into the context', async () => {
    const rec = new WsMsgpackRecordBuilder({}).setHeaders({ tenant: 't1', n: 7 }).build();
    expect(await first(svc.client().send('headers', rec))).toEqual({ headers: { tenant: 't1', n: 7 }, pattern: 'headers', aborted: false });
  });
});
