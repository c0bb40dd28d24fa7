/**
 * Issue 16, item 3: a handler that calls a peer which does not answer calls (a client exposing no
 * handlers) failed its own caller with only `Internal server error`: Nest's default RPC exception
 * filter replaces whatever is not an RpcException. A transport error (WsMsgpackError) now reaches
 * the original caller typed, with its code, whether the handler awaited the peer's answer, returned
 * the peer's Observable, or pulled it; custom exception filters still see the WsMsgpackError itself.
 */
import { ArgumentsHost, Catch, Controller, UseFilters, type RpcExceptionFilter } from '@nestjs/common';
import { MessagePattern, RpcException } from '@nestjs/microservices';
import { firstValueFrom, Observable, throwError } from 'rxjs';
import { WsMsgpackClient, WsMsgpackError, WsMsgpackErrorCode, WsPeer, type WsMsgpackPeer } from '../../src/index.js';
import { errorOf, startService, type TestService } from '../support/helpers.js';

@Catch(WsMsgpackError)
class SeesTransportErrors implements RpcExceptionFilter<WsMsgpackError> {
  catch(exception: WsMsgpackError, _host: ArgumentsHost): Observable<unknown> {
    return throwError(() => ({ status: 'error', message: `filtered ${exception.code}` }));
  }
}

@Controller()
class RelayController {
  @MessagePattern('relay.await')
  async relayAwait(@WsPeer() caller: WsMsgpackPeer): Promise<unknown> {
    return await firstValueFrom(caller.send('client.add', { a: 1, b: 2 }));
  }

  @MessagePattern('relay.return')
  relayReturn(@WsPeer() caller: WsMsgpackPeer): Observable<unknown> {
    return caller.send('client.add', { a: 1, b: 2 });
  }

  @MessagePattern('relay.generator')
  async *relayGenerator(@WsPeer() caller: WsMsgpackPeer): AsyncGenerator<unknown> {
    yield await firstValueFrom(caller.send('client.add', { a: 1, b: 2 }));
  }

  @MessagePattern('relay.filtered')
  @UseFilters(new SeesTransportErrors())
  relayFiltered(@WsPeer() caller: WsMsgpackPeer): Observable<unknown> {
    return caller.send('client.add', { a: 1, b: 2 });
  }

  @MessagePattern('plain.error')
  plain(): never {
    throw new Error('a secret detail');
  }

  @MessagePattern('rpc.error')
  rpc(): never {
    throw new RpcException({ status: 'error', message: 'told on purpose' });
  }
}

describe('transport errors inside handlers reach the caller typed (issue 16, item 3)', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ controllers: [RelayController] });
  });
  afterAll(() => svc.close());

  it.each(['relay.await', 'relay.return', 'relay.generator'])('%s: the peer exposes no handlers: the caller gets UNIMPLEMENTED, typed', async (pattern) => {
    const err = await errorOf(svc.client().send(pattern, {}), 5000);
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(err).toMatchObject({ code: WsMsgpackErrorCode.UNIMPLEMENTED });
  });

  it('a custom filter catching WsMsgpackError still sees it', async () => {
    expect(await errorOf(svc.client().send('relay.filtered', {}), 5000)).toEqual({ status: 'error', message: 'filtered UNIMPLEMENTED' });
  });

  it('other errors are untouched: a plain Error is still "Internal server error", an RpcException its error', async () => {
    expect(await errorOf(svc.client().send('plain.error', {}), 5000)).toEqual({ status: 'error', message: 'Internal server error' });
    expect(await errorOf(svc.client().send('rpc.error', {}), 5000)).toEqual({ status: 'error', message: 'told on purpose' });
  });
});

describe('a relayed UNAVAILABLE does not tell the caller about this side (review of issue 16)', () => {
  let svc: TestService;
  @Controller()
  class Relay {
    @MessagePattern('relay.down')
    async down(): Promise<unknown> {
      const downstream = new WsMsgpackClient({ url: 'ws://127.0.0.1:1/internal', reconnect: false });
      try {
        return await firstValueFrom(downstream.send('x', 1));
      } finally {
        await downstream.close();
      }
    }
  }
  beforeAll(async () => {
    svc = await startService({ controllers: [Relay] });
  });
  afterAll(() => svc.close());

  it('code UNAVAILABLE, a message of its own, no details (no internal address, no socket error)', async () => {
    const err = (await errorOf(svc.client().send('relay.down', {}), 5000)) as WsMsgpackError;
    expect(err).toBeInstanceOf(WsMsgpackError);
    expect(err.code).toBe(WsMsgpackErrorCode.UNAVAILABLE);
    expect(err.message).toBe('a service this call depends on is unavailable');
    expect(err.details).toBeUndefined();
  });
});
