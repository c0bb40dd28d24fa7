import { Inject, Module, type DynamicModule, type FactoryProvider, type InjectionToken, type ModuleMetadata, type OptionalFactoryDependency, type Provider } from '@nestjs/common';
import type { WsMsgpackClientOptions } from './options.js';
import { WsMsgpackClient } from './ws-msgpack.client.js';

/** One client of {@link WsMsgpackClientModule.register}: its injection token and its (type-checked) options. */
export interface WsMsgpackClientRegistration extends WsMsgpackClientOptions {
  /** The injection token, as in `ClientsModule`: `@Inject('MATH') client: WsMsgpackClient`. */
  name: InjectionToken;
}

/** One client of {@link WsMsgpackClientModule.registerAsync}: options from a factory (`ConfigService` and the like). */
export interface WsMsgpackClientAsyncRegistration {
  /** The injection token. */
  name: InjectionToken;
  /** Modules whose providers the factory injects (e.g. `ConfigModule`). */
  imports?: ModuleMetadata['imports'];
  /** What the factory gets, in order (e.g. `[ConfigService]`). */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Makes the client's options (may be async). */
  useFactory: (...args: never[]) => WsMsgpackClientOptions | Promise<WsMsgpackClientOptions>;
  /** More providers the factory may inject. */
  extraProviders?: Provider[];
}

/** Options of the module itself. */
export interface WsMsgpackClientModuleExtras {
  /** Registers the clients globally (every module can inject them). Default false. */
  isGlobal?: boolean;
}

/** A client whose options are checked by TypeScript, closed when the app shuts down (as ClientsModule does). */
function create(options: WsMsgpackClientOptions): WsMsgpackClient {
  const client = new WsMsgpackClient(options);
  // ClientsModule's convention: the provider's onApplicationShutdown closes the client.
  (client as WsMsgpackClient & { onApplicationShutdown?: () => Promise<void> }).onApplicationShutdown = () => client.close();
  return client;
}

/**
 * `ClientsModule` for this transport, with options TypeScript checks (a typo such as `ulr` does
 * not compile) and a provider typed as {@link WsMsgpackClient} (`iterate()`, the typed `status`):
 *
 * ```ts
 * @Module({
 *   imports: [
 *     WsMsgpackClientModule.register({ name: 'MATH', url: 'ws://127.0.0.1:3001', timeout: 5000 }),
 *     WsMsgpackClientModule.registerAsync({
 *       name: 'HUB',
 *       imports: [ConfigModule],
 *       inject: [ConfigService],
 *       useFactory: (config: ConfigService) => ({ url: config.getOrThrow('HUB_URL') }),
 *     }),
 *   ],
 * })
 * export class AppModule {}
 *
 * constructor(@InjectWsMsgpackClient('MATH') private readonly math: WsMsgpackClient) {}
 * ```
 *
 * `ClientsModule.register([{ name, customClass: WsMsgpackClient, options }])` keeps working.
 */
@Module({})
export class WsMsgpackClientModule {
  /** Registers one client or several, each under its `name`. */
  static register(clients: WsMsgpackClientRegistration | readonly WsMsgpackClientRegistration[], extras: WsMsgpackClientModuleExtras = {}): DynamicModule {
    const list = Array.isArray(clients) ? clients : [clients as WsMsgpackClientRegistration];
    const providers: Provider[] = list.map(({ name, ...options }) => ({ provide: name, useFactory: () => create(options) }));
    return { module: WsMsgpackClientModule, global: extras.isGlobal ?? false, providers, exports: providers.map((p) => (p as FactoryProvider).provide) };
  }

  /** Registers clients whose options come from a factory, with its imports and injected providers. */
  static registerAsync(
    clients: WsMsgpackClientAsyncRegistration | readonly WsMsgpackClientAsyncRegistration[],
    extras: WsMsgpackClientModuleExtras = {},
  ): DynamicModule {
    const list = Array.isArray(clients) ? clients : [clients as WsMsgpackClientAsyncRegistration];
    const providers: Provider[] = [];
    const imports: NonNullable<ModuleMetadata['imports']> = [];
    for (const c of list) {
      imports.push(...(c.imports ?? []));
      providers.push(...(c.extraProviders ?? []));
      providers.push({
        provide: c.name,
        inject: c.inject ?? [],
        useFactory: async (...args: unknown[]) => create(await c.useFactory(...(args as never[]))),
      });
    }
    return { module: WsMsgpackClientModule, global: extras.isGlobal ?? false, imports, providers, exports: list.map((c) => c.name) };
  }
}

/** `@Inject(name)` for a client of {@link WsMsgpackClientModule}, so the parameter reads as what it is. */
export function InjectWsMsgpackClient(name: InjectionToken): PropertyDecorator & ParameterDecorator {
  return Inject(name);
}
