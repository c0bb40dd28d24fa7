import { Module, type DynamicModule } from '@nestjs/common';
import { ClientsModule } from '@nestjs/microservices';
import { WsMsgpackClient } from '../../src/index.js';
import { MATH_CLIENT } from '../shared.js';
import { BrowserController } from './browser.controller.js';
import { HttpController } from './http.controller.js';
import { RpcController } from './rpc.controller.js';
import { RpcServerRef } from './rpc-server.ref.js';
import { StatsService } from './stats.service.js';

@Module({})
export class AppModule {
  /** `rpcUrl`: where the injected client reaches the microservice (here: this same app). */
  static forRoot(options: { rpcUrl: string }): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ClientsModule.register([
          {
            name: MATH_CLIENT,
            customClass: WsMsgpackClient,
            options: { url: options.rpcUrl },
          },
        ]),
      ],
      controllers: [RpcController, HttpController, BrowserController],
      providers: [StatsService, RpcServerRef],
    };
  }
}
