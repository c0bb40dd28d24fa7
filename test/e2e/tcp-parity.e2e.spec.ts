import {
  type ArgumentsHost,
  Catch,
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
  Module,
  type RpcExceptionFilter,
  UseFilters,
  UseGuards,
  UseInterceptors,
  ValidationPipe,
  type INestMicroservice,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientTCP, EventPattern, MessagePattern, Payload, RpcException, Transport, type ClientProxy } from '@nestjs/microservices';
import { IsInt, IsString, Min } from 'class-validator';
import type { AddressInfo } from 'node:net';
import { from, map, type Observable, throwError } from 'rxjs';
import { WsMsgpackClient, WsMsgpackServer } from '../../src/index.js';
import { all, errorOf, first, until, within } from '../support/helpers.js';

class CreateUserDto {
  @IsString() name!: string;
  @IsInt() @Min(0) age!: number;
}

class TeapotError extends Error {}

@Catch(TeapotError)
class TeapotFilter implements RpcExceptionFilter<TeapotError> {
  catch(exception: TeapotError, _host: ArgumentsHost): Observable<never> {
    return throwError(() => ({ status: 'error', message: `filtered: ${exception.message}`, teapot: true }));
  }
}

@Injectable()
class TokenGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    return (ctx.switchToRpc().getData() as { token?: string }).token === 'let-me-in';
  }
}

@Injectable()
class WrapInterceptor implements NestInterceptor {
  intercept(_ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((value: unknown) => ({ wrapped: value })));
  }
}

const notifications: unknown[] = [];

/** A controller written for Transport.TCP: nothing here knows about this transport. */
@Controller()
class TcpStyleController {
  @MessagePattern({ cmd: 'sum' })
  sum(@Payload() data: number[]): number {
    return (data || []).reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'asyncSum' })
  async asyncSum(@Payload() data: number[]): Promise<number> {
    return (data || []).reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'streamSum' })
  streamSum(@Payload() data: number[]): Observable<number> {
    return from(data);
  }

  @EventPattern('notification')
  notify(@Payload() data: unknown): void {
    notifications.push(data);
  }

  @MessagePattern('rpcError')
  rpcError(): never {
    throw new RpcException('forbidden fruit');
  }

  @MessagePattern('rpcErrorObject')
  rpcErrorObject(): Observable<never> {
    return throwError(() => new RpcException({ code: 'E42', details: [1, 2] }));
  }

  @MessagePattern('guarded')
  @UseGuards(TokenGuard)
  guarded(): string {
    return 'secret';
  }

  @MessagePattern('intercepted')
  @UseInterceptors(WrapInterceptor)
  intercepted(@Payload() data: number): number {
    return data * 2;
  }

  @MessagePattern('validate')
  validate(@Payload(new ValidationPipe()) dto: CreateUserDto): string {
    return `${dto.name}:${dto.age}`;
  }

  @MessagePattern('validateRpc')
  validateRpc(@Payload(new ValidationPipe({ exceptionFactory: (errors) => new RpcException(errors.map((e) => e.property)) })) dto: CreateUserDto): string {
    return `${dto.name}:${dto.age}`;
  }

  @MessagePattern('transform')
  transform(@Payload(new ValidationPipe({ transform: true })) dto: CreateUserDto): boolean {
    return dto instanceof CreateUserDto;
  }

  @MessagePattern('teapot')
  @UseFilters(new TeapotFilter())
  teapot(): never {
    throw new TeapotError('short and stout');
  }

  @MessagePattern('void')
  nothing(): void {}
}

@Module({ controllers: [TcpStyleController] })
class TcpStyleModule {}

describe('a Nest app written for Transport.TCP behaves the same on this transport', () => {
  let tcpApp: INestMicroservice;
  let wsApp: INestMicroservice;
  let tcp: ClientTCP;
  let ws: WsMsgpackClient;

  beforeAll(async () => {
    tcpApp = await NestFactory.createMicroservice(TcpStyleModule, { transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: false });
    await within(tcpApp.listen());
    const tcpPort = (tcpApp.unwrap<import('node:net').Server>().address() as AddressInfo).port;
    const server = new WsMsgpackServer({ port: 0 });
    wsApp = await NestFactory.createMicroservice(TcpStyleModule, { strategy: server, logger: false });
    await within(wsApp.listen());
    tcp = new ClientTCP({ host: '127.0.0.1', port: tcpPort });
    ws = new WsMsgpackClient({ url: `ws://127.0.0.1:${server.address()!.port}` });
  });

  afterAll(async () => {
    await tcp.close();
    await ws.close();
    await within(Promise.all([tcpApp.close(), wsApp.close()]));
  });

  /** Runs `call` against both transports and returns [tcp, ws] outcomes. */
  async function both(pattern: unknown, data: unknown): Promise<[unknown, unknown]> {
    const outcome = async (c: Pick<ClientProxy, 'send'>): Promise<unknown> => {
      try {
        return { values: await all(c.send(pattern, data)) };
      } catch (e) {
        return { error: e };
      }
    };
    return [await outcome(tcp), await outcome(ws)];
  }

  it.each([
    ['sum', { cmd: 'sum' }, [1, 2, 3]],
    ['asyncSum', { cmd: 'asyncSum' }, [4, 5]],
    ['streamSum (several values)', { cmd: 'streamSum' }, [1, 2, 3]],
    ['RpcException(string)', 'rpcError', {}],
    ['RpcException(object) via throwError', 'rpcErrorObject', {}],
    ['guard denies', 'guarded', { token: 'nope' }],
    ['guard allows', 'guarded', { token: 'let-me-in' }],
    ['interceptor', 'intercepted', 21],
    ['ValidationPipe accepts', 'validate', { name: 'ada', age: 36 }],
    ['ValidationPipe rejects (default: BadRequestException)', 'validate', { name: 'ada', age: -1 }],
    ['ValidationPipe rejects with RpcException', 'validateRpc', { name: 7, age: 'x' }],
    ['ValidationPipe transform', 'transform', { name: 'ada', age: 1 }],
    ['exception filter', 'teapot', {}],
    ['void handler', 'void', {}],
  ])('%s', async (_name, pattern, data) => {
    const [viaTcp, viaWs] = await both(pattern, data);
    expect(viaWs).toEqual(viaTcp);
  });

  it('snapshot of what both deliver for RpcException and a guard', async () => {
    expect(await errorOf(ws.send('rpcError', {}))).toEqual({ status: 'error', message: 'forbidden fruit' });
    expect(await errorOf(ws.send('guarded', {}))).toEqual({ status: 'error', message: 'Forbidden resource' });
    expect(await first(ws.send('intercepted', 2))).toEqual({ wrapped: 4 });
  });

  it('delivers events (emit) like TCP', async () => {
    notifications.length = 0;
    await within(new Promise((resolve, reject) => tcp.emit('notification', { via: 'tcp' }).subscribe({ complete: () => resolve(undefined), error: reject })));
    await within(new Promise((resolve, reject) => ws.emit('notification', { via: 'ws' }).subscribe({ complete: () => resolve(undefined), error: reject })));
    await until(() => notifications.length === 2, undefined, 'both notifications');
    expect(notifications).toEqual(expect.arrayContaining([{ via: 'tcp' }, { via: 'ws' }]));
  });

  it('unknown patterns fail with the same message', async () => {
    const tcpErr = await errorOf(tcp.send('missing', {}));
    const wsErr = await errorOf(ws.send('missing', {}));
    expect(tcpErr).toBe('There is no matching message handler defined in the remote service.');
    expect((wsErr as Error).message).toBe(tcpErr);
  });
});
