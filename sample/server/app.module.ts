import { Module, type DynamicModule } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { ClientsModule } from '@nestjs/microservices';
import type { Server } from 'node:http';
import { WsMsgpackClient, WsMsgpackServerModule } from '../../src/index.js';
import { MATH_CLIENT } from '../shared.js';
import { BrowserController } from './browser.controller.js';
import { HttpController } from './http.controller.js';
import { RpcController } from './rpc.controller.js';
import { StatsService } from './stats.service.js';

@Module({})
export class AppModule {
  /** `rpcUrl`: where the injected client reaches the microservice (here: this same app). */
  static forRoot(options: { rpcUrl: string }): DynamicModule {
    return {
      module: AppModule,
      imports: [
        // The server through DI (services inject it to broadcast); main starts it with
        // app.connectMicroservice({ strategy: app.get(WsMsgpackServer) }). Hybrid: on the HTTP app's
        // port, so httpServer is a function (the HTTP server does not exist yet when modules are made).
        WsMsgpackServerModule.forRootAsync({
          inject: [HttpAdapterHost],
          useFactory: (host: HttpAdapterHost) => ({ httpServer: () => host.httpAdapter.getHttpServer() as Server, path: '/rpc' }),
        }),
        ClientsModule.register([
          {
            name: MATH_CLIENT,
            customClass: WsMsgpackClient,
            options: { url: options.rpcUrl },
          },
        ]),
      ],
      controllers: [RpcController, HttpController, BrowserController],
      providers: [StatsService],
    };
  }
}
