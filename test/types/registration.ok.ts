// Must compile: the typed registration a Nest user writes (test/unit/types.spec.ts runs tsc on it).
import { Injectable, Module } from '@nestjs/common';
import { ClientsModule } from '@nestjs/microservices';
import type { Observable } from 'rxjs';
import { InjectWsMsgpackClient, WsMsgpackClient, WsMsgpackClientModule, WsMsgpackStatus } from '../../src/index.js';

class ConfigService {
  get(key: string): string {
    return key;
  }
}

@Module({ providers: [ConfigService], exports: [ConfigService] })
class ConfigModule {}

@Module({
  imports: [
    WsMsgpackClientModule.register({ name: 'MATH', url: 'ws://127.0.0.1:3001', timeout: 5000, reconnect: { maxDelay: 1000 } }),
    WsMsgpackClientModule.register([{ name: 'A', url: ['ws://a', 'ws://b'] }], { isGlobal: true }),
    WsMsgpackClientModule.registerAsync({
      name: 'HUB',
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({ url: config.get('HUB_URL'), waitForReady: false }),
    }),
    WsMsgpackClientModule.registerAsync({ name: 'LATER', useFactory: async () => ({ url: 'ws://x' }) }),
    // The customClass path keeps working.
    ClientsModule.register([{ name: 'LEGACY', customClass: WsMsgpackClient, options: { url: 'ws://127.0.0.1:3001' } }]),
  ],
})
export class AppModule {}

@Injectable()
export class MathService {
  constructor(@InjectWsMsgpackClient('MATH') private readonly math: WsMsgpackClient) {}

  sum(values: number[]): Observable<number> {
    return this.math.send<number, number[]>('sum', values); // Nest's generics
  }

  rows(): AsyncIterableIterator<{ id: number }> {
    return this.math.iterate<{ id: number }>('rows', null); // visible because the provider is a WsMsgpackClient
  }

  status(): Observable<WsMsgpackStatus> {
    return this.math.status; // one status type, the server's
  }
}
