import { Controller, Get, Inject, type INestApplication, Module, Query } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ClientsModule, ClientTCP, MessagePattern, Payload, Transport, type ClientProxy } from '@nestjs/microservices';
import { WsAdapter } from '@nestjs/platform-ws';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { firstValueFrom } from 'rxjs';
import WebSocket from 'ws';
import { WsMessagePattern, WsMsgpackClient, WsMsgpackServer } from '../../src/index.js';
import { errorOf, first, freePort, within } from '../support/helpers.js';

@Controller()
class MathController {
  @WsMessagePattern('ws.sum')
  sum(@Payload() data: number[]): number {
    return data.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('any.echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

@Controller('http')
class HttpController {
  constructor(@Inject('MATH') private readonly math: ClientProxy) {}

  @Get('sum')
  async sum(@Query('n') n: string): Promise<{ total: number }> {
    const numbers = n.split(',').map(Number);
    return { total: await firstValueFrom(this.math.send<number>('ws.sum', numbers)) };
  }
}

@WebSocketGateway({ path: '/gateway' })
class EventsGateway {
  @SubscribeMessage('ping')
  ping(@MessageBody() data: unknown): { event: string; data: unknown } {
    return { event: 'pong', data };
  }
}

function moduleFor(port: number): unknown {
  @Module({
    imports: [ClientsModule.register([{ name: 'MATH', customClass: WsMsgpackClient, options: { url: `ws://127.0.0.1:${port}/rpc` } }])],
    controllers: [MathController, HttpController],
    providers: [EventsGateway],
  })
  class HybridModule {}
  return HybridModule;
}

async function gatewayPing(port: number): Promise<unknown> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/gateway`);
  try {
    return await within(
      new Promise((resolve, reject) => {
        ws.once('error', reject);
        ws.once('open', () => ws.send(JSON.stringify({ event: 'ping', data: { n: 1 } })));
        ws.once('message', (m: Buffer) => resolve(JSON.parse(m.toString())));
      }),
      undefined,
      'gateway ping',
    );
  } finally {
    ws.terminate();
  }
}

describe.each([
  ['microservices started before listen()', 'before'],
  ['microservices started after listen()', 'after'],
])('hybrid app on one port: HTTP + WsAdapter gateway + this transport + TCP (%s)', (_title, order) => {
  let app: INestApplication;
  let port: number;
  let tcpPort: number;
  const clients: { close(): unknown }[] = [];

  beforeAll(async () => {
    port = await freePort();
    app = await NestFactory.create(moduleFor(port) as never, { logger: false });
    app.useWebSocketAdapter(new WsAdapter(app));
    app.connectMicroservice({ strategy: new WsMsgpackServer({ httpServer: app.getHttpServer(), path: '/rpc' }) }, { inheritAppConfig: true });
    const tcpMs = app.connectMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 } });
    if (order === 'before') {
      await within(app.startAllMicroservices());
      await within(app.listen(port, '127.0.0.1'));
    } else {
      await within(app.listen(port, '127.0.0.1'));
      await within(app.startAllMicroservices());
    }
    tcpPort = (tcpMs.unwrap<NetServer>().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await within(app.close());
  });

  it('an HTTP controller calls the microservice through the injected client', async () => {
    const res = await within(fetch(`http://127.0.0.1:${port}/http/sum?n=1,2,3,4`));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ total: 10 });
  });

  it('a WsMsgpackClient reaches the transport on the shared port and path', async () => {
    const c = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}/rpc` });
    clients.push(c);
    expect(await first(c.send('ws.sum', [5, 6]))).toBe(11);
    expect(await first(c.send('any.echo', 'hi'))).toBe('hi');
  });

  it('the WsAdapter gateway on another path still works', async () => {
    expect(await gatewayPing(port)).toEqual({ event: 'pong', data: { n: 1 } });
  });

  it('@WsMessagePattern handlers are not registered on the TCP transport; plain @MessagePattern ones are', async () => {
    const tcp = new ClientTCP({ host: '127.0.0.1', port: tcpPort });
    clients.push(tcp);
    expect(await errorOf(tcp.send('ws.sum', [1]))).toBe('There is no matching message handler defined in the remote service.');
    expect(await first(tcp.send('any.echo', 'tcp'))).toBe('tcp');
  });

  it('HTTP routes keep working', async () => {
    const res = await within(fetch(`http://127.0.0.1:${port}/http/nope`));
    expect(res.status).toBe(404);
  });
});
