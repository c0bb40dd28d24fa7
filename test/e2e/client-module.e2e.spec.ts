/**
 * WsMsgpackClientModule as a Nest user registers it: register() and registerAsync() with an
 * injected config provider, the client injected typed, calls and iterate() through it, and the
 * client closed when the app closes.
 */
import { Controller, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { from, lastValueFrom, type Observable } from 'rxjs';
import { InjectWsMsgpackClient, WsMsgpackClient, WsMsgpackClientModule, WsMsgpackStatus } from '../../src/index.js';
import { startService, until, within, type TestService } from '../support/helpers.js';

@Controller()
class MathController {
  @MessagePattern('sum')
  sum(@Payload() values: number[]): number {
    return values.reduce((a, b) => a + b, 0);
  }

  @MessagePattern('range')
  range(@Payload() n: number): Observable<number> {
    return from(Array.from({ length: n }, (_, i) => i));
  }
}

let svc: TestService;
beforeAll(async () => {
  svc = await startService({ controllers: [MathController] });
});
afterAll(async () => {
  await svc.close();
});

/** A config provider the async registration injects (what @nestjs/config's ConfigService is to users). */
@Injectable()
class Config {
  static url = '';
  get(key: 'MATH_URL'): string {
    return key === 'MATH_URL' ? Config.url : '';
  }
}

@Module({ providers: [Config], exports: [Config] })
class ConfigModule {}

@Injectable()
class MathService {
  constructor(
    @InjectWsMsgpackClient('MATH') readonly math: WsMsgpackClient,
    @InjectWsMsgpackClient('MATH_ASYNC') readonly mathAsync: WsMsgpackClient,
  ) {}
}

describe('WsMsgpackClientModule', () => {
  it('register() and registerAsync() provide WsMsgpackClients that call, iterate and close with the app', async () => {
    Config.url = svc.url;
    @Module({
      imports: [
        WsMsgpackClientModule.register({ name: 'MATH', url: svc.url, timeout: 5000 }),
        WsMsgpackClientModule.registerAsync({
          name: 'MATH_ASYNC',
          imports: [ConfigModule],
          inject: [Config],
          useFactory: async (config: Config) => ({ url: config.get('MATH_URL') }),
        }),
      ],
      providers: [MathService],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { logger: false });
    await within(app.init());
    const { math, mathAsync } = app.get(MathService);
    expect(math).toBeInstanceOf(WsMsgpackClient);
    expect(mathAsync).toBeInstanceOf(WsMsgpackClient);
    const statuses: WsMsgpackStatus[] = [];
    math.status.subscribe((s) => statuses.push(s));
    expect(await within(lastValueFrom(math.send<number>('sum', [1, 2, 3])))).toBe(6);
    const rows: number[] = [];
    for await (const r of mathAsync.iterate<number>('range', 4)) rows.push(r);
    expect(rows).toEqual([0, 1, 2, 3]);
    await within(app.close());
    await until(() => statuses.includes(WsMsgpackStatus.CLOSED), undefined, 'the client closed with the app');
  });

  it('register() with a list, global: every module can inject the clients', async () => {
    @Injectable()
    class Consumer {
      constructor(@InjectWsMsgpackClient('B') readonly b: WsMsgpackClient) {}
    }
    @Module({ providers: [Consumer], exports: [Consumer] })
    class FeatureModule {}
    @Module({
      imports: [
        WsMsgpackClientModule.register(
          [
            { name: 'A', url: svc.url },
            { name: 'B', url: svc.url },
          ],
          { isGlobal: true },
        ),
        FeatureModule,
      ],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { logger: false });
    try {
      await within(app.init());
      expect(await within(lastValueFrom(app.get(Consumer).b.send<number>('sum', [2, 2])))).toBe(4);
    } finally {
      await within(app.close());
    }
  });

  it("two registrations with one name and different options stay two clients, also with Nest's 'deep-hash' module ids", async () => {
    @Injectable()
    class UsesA {
      constructor(@InjectWsMsgpackClient('SAME') readonly client: WsMsgpackClient) {}
    }
    @Injectable()
    class UsesB {
      constructor(@InjectWsMsgpackClient('SAME') readonly client: WsMsgpackClient) {}
    }
    @Module({ imports: [WsMsgpackClientModule.register({ name: 'SAME', url: svc.url, timeout: 1111 })], providers: [UsesA], exports: [UsesA] })
    class FeatureA {}
    @Module({ imports: [WsMsgpackClientModule.register({ name: 'SAME', url: 'ws://127.0.0.1:1', timeout: 2222 })], providers: [UsesB], exports: [UsesB] })
    class FeatureB {}
    @Module({ imports: [FeatureA, FeatureB] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { logger: false, moduleIdGeneratorAlgorithm: 'deep-hash' });
    try {
      await within(app.init());
      const a = app.get(UsesA).client;
      const b = app.get(UsesB).client;
      expect(a).not.toBe(b);
      expect(await within(lastValueFrom(a.send<number>('sum', [1, 1])))).toBe(2);
    } finally {
      await within(app.close());
    }
  });

  it('a bad option still fails at boot with the option named (for JavaScript callers)', async () => {
    @Module({ imports: [WsMsgpackClientModule.register({ name: 'BAD', url: svc.url, connectTimeout: -1 })] })
    class AppModule {}
    await expect(NestFactory.create(AppModule, { logger: false, abortOnError: false })).rejects.toThrow(/option connectTimeout/);
  });
});
