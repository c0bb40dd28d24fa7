import { Inject, Module, type DynamicModule, type InjectionToken, type ModuleMetadata, type OptionalFactoryDependency, type Provider } from '@nestjs/common';
import type { WsMsgpackClientOptions } from './options.js';
import { WsMsgpackClient } from './ws-msgpack.client.js';

/** One client of {@link WsMsgpackClientModule.register}: its injection token and its (type-checked) options. */
export interface WsMsgpackClientRegistration extends WsMsgpackClientOptions {
  /** The injection token, as in `ClientsModule`: `@Inject('MATH') client: WsMsgpackClient`. */
  name: InjectionToken;
}

/**
 * `T` when it has no key that {@link WsMsgpackClientOptions} lacks: what makes a typo (`timout`)
 * in a factory's returned object a compile error, which TypeScript does not check by itself for a
 * function's return value. The error names the key: `Type 'number' is not assignable to type
 * '"timout is not an option of WsMsgpackClientOptions"'`.
 */
export type WsMsgpackExactOptions<T> = [Exclude<keyof T, keyof WsMsgpackClientOptions>] extends [never]
  ? T
  : Omit<T, Exclude<keyof T, keyof WsMsgpackClientOptions>> & { [K in Exclude<keyof T, keyof WsMsgpackClientOptions>]: `${K & string} is not an option of WsMsgpackClientOptions` };

/** One client of {@link WsMsgpackClientModule.registerAsync}: options from a factory (`ConfigService` and the like). */
export interface WsMsgpackClientAsyncRegistration<T extends WsMsgpackClientOptions = WsMsgpackClientOptions> {
  /** The injection token. */
  name: InjectionToken;
  /** Modules whose providers the factory injects (e.g. `ConfigModule`). */
  imports?: ModuleMetadata['imports'];
  /** What the factory gets, in order (e.g. `[ConfigService]`). */
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  /** Makes the client's options (may be async). */
  useFactory: (...args: never[]) => WsMsgpackExactOptions<T> | Promise<WsMsgpackExactOptions<T>>;
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
    // The options as a value provider (not only inside a factory's closure): Nest's 'deep-hash'
    // module ids hash a factory as its source text, so two registrations differing only in their
    // options would otherwise become one module (the second silently getting the first's client).
    const providers: Provider[] = list.flatMap(({ name, ...options }) => {
      const token = optionsToken(name);
      return [
        { provide: token, useValue: options },
        { provide: name, useFactory: (o: WsMsgpackClientOptions) => create(o), inject: [token] },
      ];
    });
    return { module: WsMsgpackClientModule, global: extras.isGlobal ?? false, providers, exports: list.map((c) => c.name) };
  }

  /** Registers clients whose options come from a factory, with its imports and injected providers. */
  static registerAsync<T extends WsMsgpackClientOptions>(
    clients: WsMsgpackClientAsyncRegistration<T> | readonly WsMsgpackClientAsyncRegistration<T>[],
    extras: WsMsgpackClientModuleExtras = {},
  ): DynamicModule {
    const list = (Array.isArray(clients) ? clients : [clients]) as readonly WsMsgpackClientAsyncRegistration<T>[];
    const providers: Provider[] = [];
    const imports: NonNullable<ModuleMetadata['imports']> = [];
    for (const c of list) {
      imports.push(...(c.imports ?? []));
      providers.push(...(c.extraProviders ?? []));
      providers.push({
        provide: c.name,
        inject: c.inject ?? [],
        useFactory: async (...args: unknown[]) => create((await c.useFactory(...(args as never[]))) as WsMsgpackClientOptions),
      });
    }
    return { module: WsMsgpackClientModule, global: extras.isGlobal ?? false, imports, providers, exports: list.map((c) => c.name) };
  }
}

/** The token of a registered client's options. */
function optionsToken(name: InjectionToken): string {
  return `WsMsgpackClientOptions:${typeof name === 'function' ? name.name : String(name)}`;
}

/** `@Inject(name)` for a client of {@link WsMsgpackClientModule}, so the parameter reads as what it is. */
export function InjectWsMsgpackClient(name: InjectionToken): PropertyDecorator & ParameterDecorator {
  return Inject(name);
}
