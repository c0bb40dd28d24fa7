import { Controller, ParseIntPipe } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { WebSocket } from 'ws';
import { WsEventPattern, WsHeaders, WsMessagePattern, WsMsgpackContext, WsMsgpackRecordBuilder, WsSignal, WsSocket, WsUpgradeHeaders } from '../../src/index.js';
import { first, startService, until, type TestService } from '../support/helpers.js';

const events: unknown[] = [];

@Controller()
class ContextController {
  @WsMessagePattern('ctx')
  ctx(@Payload() data: unknown, @Ctx() ctx: WsMsgpackContext): unknown {
    return {
      data,
      pattern: ctx.getPattern(),
      headers: ctx.getHeaders(),
      signal: ctx.getSignal() instanceof AbortSignal,
      socketProtocol: ctx.getSocket().protocol,
      userAgent: ctx.getUpgradeHeaders()['user-agent'],
      remote: ctx.getRemoteAddress(),
      url: ctx.getRequest().url,
      callIdOdd: ctx.getCallId() % 2 === 1,
    };
  }

  @WsMessagePattern({ svc: 'params', v: 1 })
  params(
    @WsHeaders() all: Record<string, unknown>,
    @WsHeaders('tenant') tenant: unknown,
    @WsSignal() signal: AbortSignal,
    @WsSocket() socket: WebSocket,
    @WsUpgradeHeaders('User-Agent') ua: unknown,
    @Payload() data: number,
  ): unknown {
    return { all, tenant, aborted: signal.aborted, open: socket.readyState === 1, ua, data };
  }

  @WsMessagePattern('piped')
  piped(@WsHeaders('page', ParseIntPipe) page: number): unknown {
    return { page, type: typeof page };
  }

  @WsEventPattern('evt')
  evt(@Payload() data: unknown, @WsHeaders('trace') trace: unknown, @Ctx() ctx: WsMsgpackContext): void {
    events.push({ data, trace, pattern: ctx.getPattern(), callId: ctx.getCallId() });
  }
}

describe('context and parameter decorators', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [ContextController] }, { path: '/rpc' });
  });
  afterAll(() => svc.close());

  it('WsMsgpackContext exposes pattern, headers, signal, socket and the upgrade request', async () => {
    const c = svc.client({ headers: { 'user-agent': 'ctx-test/1' } });
    const rec = new WsMsgpackRecordBuilder({ q: 1 }).setHeaders({ h: 'v' }).build();
    expect(await first(c.send('ctx', rec))).toEqual({
      data: { q: 1 },
      pattern: 'ctx',
      headers: { h: 'v' },
      signal: true,
      socketProtocol: 'wsmp.v1',
      userAgent: 'ctx-test/1',
      remote: '127.0.0.1',
      url: '/rpc',
      callIdOdd: true,
    });
  });

  it('getPattern() JSON-encodes object patterns as Nest TCP does', async () => {
    const c = svc.client({ headers: { 'user-agent': 'ua' } });
    const rec = new WsMsgpackRecordBuilder(41).setHeaders({ tenant: 'acme', n: 1 }).build();
    expect(await first(c.send({ v: 1, svc: 'params' }, rec))).toEqual({
      all: { tenant: 'acme', n: 1 },
      tenant: 'acme',
      aborted: false,
      open: true,
      ua: 'ua',
      data: 41,
    });
  });

  it('param decorators compose on event handlers, and events carry headers', async () => {
    events.length = 0;
    const c = svc.client();
    c.emit('evt', new WsMsgpackRecordBuilder({ e: 1 }).setHeaders({ trace: 't-1' }).build());
    await until(() => events.length === 1, undefined, 'event');
    expect(events[0]).toEqual({ data: { e: 1 }, trace: 't-1', pattern: 'evt', callId: 0 });
  });

  it("parameter decorators take pipes, like Nest's own (@WsHeaders(name, ParseIntPipe))", async () => {
    const c = svc.client();
    expect(await first(c.send('piped', new WsMsgpackRecordBuilder({}).setHeaders({ page: '7' }).build()))).toEqual({ page: 7, type: 'number' });
    // The pipe's failure goes through Nest's exception handling like any pipe error.
    await expect(first(c.send('piped', new WsMsgpackRecordBuilder({}).setHeaders({ page: 'x' }).build()))).rejects.toEqual({
      status: 'error',
      message: 'Internal server error',
    });
  });

  it('headers default to an empty object', async () => {
    const got = (await first(svc.client().send('ctx', 1))) as { headers: unknown };
    expect(got.headers).toEqual({});
  });
});
