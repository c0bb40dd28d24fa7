// eslint-disable-next-line @typescript-eslint/ban-ts-comment -- see the next line
// @ts-nocheck -- type-checked in the fresh apps (run.mjs drops this line): the repo's typecheck runs before dist/ exists
// The client side of the fresh app: the typed client module, a service using the client, and a
// terminus health check with the package's indicator.
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { HealthCheckService, TerminusModule, type HealthCheckResult } from '@nestjs/terminus';
import { InjectWsMsgpackClient, WsMsgpackClient, WsMsgpackClientModule, type WsMsgpackServer } from 'nestjs-ws-msgpack';
import { WsMsgpackHealthIndicator } from 'nestjs-ws-msgpack/terminus';
import { lastValueFrom, toArray } from 'rxjs';

@Injectable()
export class MathService {
  constructor(@InjectWsMsgpackClient('MATH') private readonly math: WsMsgpackClient) {}

  sum(values: number[]): Promise<number> {
    return lastValueFrom(this.math.send<number, number[]>('sum', values));
  }

  /** The stream as an Observable (send) ... */
  squaresSent(n: number): Promise<number[]> {
    return lastValueFrom(this.math.send<number, number>('squares', n).pipe(toArray()));
  }

  /** ... and pulled with backpressure (iterate). */
  async squaresIterated(n: number): Promise<number[]> {
    const out: number[] = [];
    for await (const v of this.math.iterate<number, number>('squares', n)) out.push(v);
    return out;
  }
}

@Injectable()
export class HealthService {
  /** The app's own microservice server, for the readiness check (set by main). */
  static server: WsMsgpackServer | undefined;

  constructor(
    private readonly health: HealthCheckService,
    private readonly wsmp: WsMsgpackHealthIndicator,
    @InjectWsMsgpackClient('MATH') private readonly math: WsMsgpackClient,
  ) {}

  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.wsmp.isHealthy('math', this.math, { timeout: 1000 }), () => this.wsmp.isServerHealthy('rpc', HealthService.server!)]);
  }
}

@Module({})
export class ClientAppModule {
  static forUrl(url: string): DynamicModule {
    return {
      module: ClientAppModule,
      imports: [TerminusModule.forRoot({ logger: false }), WsMsgpackClientModule.register({ name: 'MATH', url, timeout: 5000 })],
      providers: [MathService, HealthService, WsMsgpackHealthIndicator],
    };
  }
}
