/**
 * Issue 16, item 4: the server through Nest's DI. Users kept a module-level singleton to broadcast
 * from a service or read `server.peers` in a health check; WsMsgpackServerModule provides the
 * server (forRoot, forRootAsync with HttpAdapterHost for the HTTP app's own port) and
 * `@InjectWsMsgpackServer()` injects it, in a hybrid app started with
 * `app.connectMicroservice({ strategy: app.get(WsMsgpackServer) })`.
 */
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Subject } from 'rxjs';
import { InjectWsMsgpackServer, WsMsgpackClient, WsMsgpackServer, WsMsgpackServerModule } from '../../src/index.js';
import { first, within } from '../support/helpers.js';

@Injectable()
class Notifier {
  constructor(@InjectWsMsgpackServer() readonly server: WsMsgpackServer) {}
  notify(text: string): number {
    return this.server.broadcast('notify', text);
  }
}

@Controller()
class AppController {
  constructor(
    private readonly notifier: Notifier,
    @InjectWsMsgpackServer() private readonly server: WsMsgpackServer,
  ) {}

  @Get('peers')
  peers(): { count: number } {
    return { count: this.server.peers.size };
  }

  @Get('notify')
  notify(): { sent: number } {
    return { sent: this.notifier.notify('hello') };
  }

  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

/** A service in another module, which does not import WsMsgpackServerModule (the module is global). */
@Injectable()
class Elsewhere {
  constructor(@InjectWsMsgpackServer() readonly server: WsMsgpackServer) {}
}
@Module({ providers: [Elsewhere], exports: [Elsewhere] })
class FeatureModule {}

const received = new Subject<string>();
@Controller()
class ListenerController {
  @EventPattern('notify')
  notified(@Payload() text: string): void {
    received.next(text);
  }
}

async function get(port: number, path: string): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return res.json();
}

describe('WsMsgpackServerModule.forRootAsync on the HTTP app port, injected with @InjectWsMsgpackServer()', () => {
  let app: INestApplication;
  let port: number;

  @Module({
    imports: [
      WsMsgpackServerModule.forRootAsync({
        inject: [HttpAdapterHost],
        useFactory: (host: HttpAdapterHost) => ({ httpServer: () => host.httpAdapter.getHttpServer() as HttpServer, path: '/rpc' }),
      }),
      FeatureModule,
    ],
    controllers: [AppController],
    providers: [Notifier],
  })
  class AppModule {}

  beforeAll(async () => {
    app = await NestFactory.create(AppModule, { logger: false });
    app.connectMicroservice({ strategy: app.get(WsMsgpackServer) });
    await within(app.startAllMicroservices(), 5000, 'microservices');
    await within(app.listen(0, '127.0.0.1'), 5000, 'listen');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });
  afterAll(() => app.close());

  it('one instance everywhere: app.get, the injected services, another module', () => {
    const server = app.get(WsMsgpackServer);
    expect(server).toBeInstanceOf(WsMsgpackServer);
    expect(app.get(Notifier).server).toBe(server);
    expect(app.get(Elsewhere).server).toBe(server);
  });

  it('serves calls on the HTTP port; a controller reads peers and a service broadcasts through DI', async () => {
    const listener = await NestFactory.create(
      (() => {
        @Module({ controllers: [ListenerController] })
        class ListenerModule {}
        return ListenerModule;
      })(),
      { logger: false },
    );
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}/rpc` });
    listener.connectMicroservice({ strategy: client.exposeHandlers() });
    await within(listener.startAllMicroservices(), 5000, 'listener start');
    await listener.init();
    try {
      await client.connect();
      expect(await first(client.send('echo', 'hi'))).toBe('hi');
      // The call was answered: the server holds the peer.
      expect(await get(port, '/peers')).toEqual({ count: 1 });
      const got = first(received);
      expect(await get(port, '/notify')).toEqual({ sent: 1 });
      expect(await within(got, 5000, 'the broadcast')).toBe('hello');
    } finally {
      await client.close();
      await listener.close();
    }
  });
});

describe('WsMsgpackServerModule.forRoot on its own port, with a name', () => {
  it('provides a server under the name; NestFactory.createMicroservice starts it', async () => {
    @Injectable()
    class UsesEdge {
      constructor(@InjectWsMsgpackServer('EDGE') readonly server: WsMsgpackServer) {}
    }
    @Module({ imports: [WsMsgpackServerModule.forRoot({ name: 'EDGE', port: 0, isGlobal: false })], controllers: [AppController], providers: [UsesEdge, Notifier] })
    class EdgeModule {}
    // Notifier injects the default token, which this module does not provide: Nest must say so.
    await expect(NestFactory.createApplicationContext(EdgeModule, { logger: false, abortOnError: false })).rejects.toThrow(/WsMsgpackServer/);

    @Module({ imports: [WsMsgpackServerModule.forRoot({ name: 'EDGE', port: 0, isGlobal: false })], providers: [UsesEdge] })
    class EdgeOnlyModule {}
    const ctx = await NestFactory.createApplicationContext(EdgeOnlyModule, { logger: false });
    const server = ctx.get<WsMsgpackServer>('EDGE');
    expect(ctx.get(UsesEdge).server).toBe(server);
    const app = await NestFactory.createMicroservice(EdgeOnlyModule, { strategy: server, logger: false });
    await within(app.listen(), 5000, 'listen');
    try {
      const { port } = server.address() as AddressInfo;
      const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${port}` });
      await client.connect();
      expect(server.connectionCount).toBe(1);
      await client.close();
    } finally {
      await app.close();
      await ctx.close();
    }
  });
});

describe('httpServer as a function', () => {
  it('is called when the server starts listening; one that gives no server fails listen() with a clear error', async () => {
    @Module({})
    class Empty {}
    const server = new WsMsgpackServer({ httpServer: () => undefined as unknown as HttpServer, path: '/rpc' });
    const app = await NestFactory.createMicroservice(Empty, { strategy: server, logger: false });
    try {
      await expect(within(app.listen(), 5000, 'listen')).rejects.toThrow(
        /^nestjs-ws-msgpack: option httpServer gave undefined when the server started listening, not an HTTP server$/,
      );
    } finally {
      await app.close();
    }
  });

  it('a function that throws fails listen() with its error, and leaves nothing behind (close() resolves)', async () => {
    @Module({})
    class Empty {}
    const server = new WsMsgpackServer({
      httpServer: () => {
        throw new Error('no HTTP app yet');
      },
      path: '/rpc',
    });
    const app = await NestFactory.createMicroservice(Empty, { strategy: server, logger: false });
    try {
      await expect(within(app.listen(), 5000, 'listen')).rejects.toThrow(/^no HTTP app yet$/);
      expect(() => server.unwrap()).toThrow(/Not initialized/); // no WebSocketServer was made
    } finally {
      await within(app.close(), 5000, 'close');
    }
  });
});
