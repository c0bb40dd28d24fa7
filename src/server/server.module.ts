import { Inject, Module, type DynamicModule, type InjectionToken, type ModuleMetadata, type OptionalFactoryDependency, type Provider } from '@nestjs/common';
import type { WsMsgpackServerOptions } from './options.js';
import { WsMsgpackServer } from './ws-msgpack.server.js';

/** Options of {@link WsMsgpackServerModule} itself, beside the server's. */
export interface WsMsgpackServerModuleExtras {
  /**
   * The injection token. Defaults to the {@link WsMsgpackServer} class, so
   * `app.get(WsMsgpackServer)` and `@InjectWsMsgpackServer()` find it; give one per server when an
   * app runs several.
   */
  name?: InjectionToken;
  /** Whether every module can inject the server without importing this module. Defaults to true (one server per app). */
  isGlobal?: boolean;
}

/** {@link WsMsgpackServerModule.forRootAsync}: the server's options from a factory (`ConfigService`, `HttpAdapterHost`). */
export interface WsMsgpackServerAsyncOptions extends WsMsgpackServerModuleExtras {
  /** Modules whose providers the factory injects (e.g. `ConfigModule`). */
  imports?: ModuleMetadata['imports'];
  /** What the factory gets, in order (e.g. `[ConfigService, HttpAdapterHost]`). */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Makes the server's options (may be async). */
  useFactory: (...args: never[]) => WsMsgpackServerOptions | Promise<WsMsgpackServerOptions>;
  /** More providers the factory may inject. */
  extraProviders?: Provider[];
}

/**
 * The server as a provider, so services inject it (broadcast, `peers`, `topics`) instead of
 * importing a module-level instance; the app still starts it as a microservice:
 *
 * ```ts
 * @Module({ imports: [WsMsgpackServerModule.forRoot({ port: 3001 })], providers: [Notifier] })
 * export class AppModule {}
 *
 * @Injectable()
 * export class Notifier {
 *   constructor(@InjectWsMsgpackServer() private readonly server: WsMsgpackServer) {}
 *   notify(event: unknown) { this.server.broadcast('notify', event); }
 * }
 *
 * const app = await NestFactory.create(AppModule);
 * app.connectMicroservice({ strategy: app.get(WsMsgpackServer) });
 * await app.startAllMicroservices();
 * ```
 *
 * The server is made once, when the module is instantiated; it listens from
 * `startAllMicroservices()` (or `NestFactory.createMicroservice(AppModule, { strategy: ... })`
 * with an application context) and is closed with the app. On the HTTP app's own port, use
 * {@link WsMsgpackServerModule.forRootAsync} with `HttpAdapterHost`.
 */
@Module({})
export class WsMsgpackServerModule {
  /** Provides one server made from `options`. */
  static forRoot(options: WsMsgpackServerOptions & WsMsgpackServerModuleExtras = {}): DynamicModule {
    const { name, isGlobal, ...serverOptions } = options;
    const token = name ?? WsMsgpackServer;
    // The options as a value provider, not a factory's closure: Nest's module ids hash a factory as
    // its source text, so two servers differing only in options would otherwise become one module.
    const optionsToken = `WsMsgpackServerOptions:${tokenName(token)}`;
    return {
      module: WsMsgpackServerModule,
      global: isGlobal ?? true,
      providers: [
        { provide: optionsToken, useValue: serverOptions },
        { provide: token, useFactory: (o: WsMsgpackServerOptions) => new WsMsgpackServer(o), inject: [optionsToken] },
      ],
      exports: [token],
    };
  }

  /**
   * Provides one server whose options a factory makes. On the HTTP app's own port:
   *
   * ```ts
   * WsMsgpackServerModule.forRootAsync({
   *   inject: [HttpAdapterHost],
   *   // A function: the HTTP server does not exist yet when the module is instantiated.
   *   useFactory: (host: HttpAdapterHost) => ({ httpServer: () => host.httpAdapter.getHttpServer(), path: '/rpc' }),
   * })
   * ```
   */
  static forRootAsync(options: WsMsgpackServerAsyncOptions): DynamicModule {
    const token = options.name ?? WsMsgpackServer;
    return {
      module: WsMsgpackServerModule,
      global: options.isGlobal ?? true,
      imports: options.imports ?? [],
      providers: [
        ...(options.extraProviders ?? []),
        {
          provide: token,
          inject: options.inject ?? [],
          useFactory: async (...args: unknown[]) => new WsMsgpackServer(await options.useFactory(...(args as never[]))),
        },
      ],
      exports: [token],
    };
  }
}

function tokenName(token: InjectionToken): string {
  return typeof token === 'function' ? token.name : String(token);
}

/**
 * `@Inject()` for the server of {@link WsMsgpackServerModule}: `@InjectWsMsgpackServer()` (the
 * default token) or `@InjectWsMsgpackServer('EDGE')` for one registered with a `name`.
 */
export function InjectWsMsgpackServer(name: InjectionToken = WsMsgpackServer): PropertyDecorator & ParameterDecorator {
  return Inject(name);
}
