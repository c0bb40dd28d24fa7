import 'reflect-metadata';
import { type INestApplication, type INestMicroservice, Module, type Type, type ModuleMetadata } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { firstValueFrom, lastValueFrom, type Observable, toArray, timeout as rxTimeout } from 'rxjs';
import { WsMsgpackClient, WsMsgpackServer, type WsMsgpackClientOptions, type WsMsgpackServerOptions } from '../../src/index.js';

/** Bound for every wait in the tests: a hang fails fast instead of stalling the suite. */
export const WAIT_MS = 5000;

/** Rejects if `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms = WAIT_MS, what = 'operation'): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

/** First value of an Observable, bounded. */
export function first<T>(o: Observable<T>, ms = WAIT_MS): Promise<T> {
  return firstValueFrom(o.pipe(rxTimeout(ms)));
}

/** Every value of an Observable, bounded. */
export function all<T>(o: Observable<T>, ms = WAIT_MS): Promise<T[]> {
  return lastValueFrom(o.pipe(toArray(), rxTimeout(ms)));
}

/** The error an Observable fails with (fails the test if it completes instead). */
export async function errorOf(o: Observable<unknown>, ms = WAIT_MS): Promise<unknown> {
  try {
    await lastValueFrom(o.pipe(rxTimeout(ms)));
  } catch (e) {
    return e;
  }
  throw new Error('expected the Observable to error, but it completed');
}

/** Resolves when `predicate()` is true, polling each macrotask; rejects after `ms`. */
export async function until(predicate: () => boolean, ms = WAIT_MS, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** A standalone microservice on 127.0.0.1, port 0. */
export interface TestService {
  app: INestMicroservice;
  server: WsMsgpackServer;
  url: string;
  client(options?: Partial<WsMsgpackClientOptions>): WsMsgpackClient;
  close(): Promise<void>;
}

/** Boots a Nest microservice with `controllers`/`providers` on this transport. */
export async function startService(metadata: ModuleMetadata, serverOptions: WsMsgpackServerOptions = {}, setup?: (app: INestMicroservice) => void): Promise<TestService> {
  @Module(metadata)
  class TestModule {}
  const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1', ...serverOptions });
  const app = await NestFactory.createMicroservice(TestModule, { strategy: server, logger: false });
  setup?.(app);
  await within(app.listen(), WAIT_MS, 'microservice listen');
  const addr = server.address();
  if (!addr) throw new Error('no address');
  const url = `ws://127.0.0.1:${addr.port}${serverOptions.path ?? ''}`;
  const clients: WsMsgpackClient[] = [];
  return {
    app,
    server,
    url,
    client(options = {}) {
      const c = new WsMsgpackClient({ url, ...options });
      clients.push(c);
      return c;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await within(app.close(), WAIT_MS, 'app.close');
    },
  };
}

/** Boots an HTTP app (express) with the given module and returns it listening on 127.0.0.1:0. */
export async function startHttpApp(module: Type<unknown>, setup?: (app: INestApplication) => Promise<void> | void): Promise<{ app: INestApplication; port: number }> {
  const app = await NestFactory.create(module, { logger: false });
  await setup?.(app);
  await within(app.listen(0, '127.0.0.1'), WAIT_MS, 'http listen');
  const addr = app.getHttpServer().address() as { port: number };
  return { app, port: addr.port };
}

/** A free TCP port on 127.0.0.1 (for apps whose clients need the URL before boot). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A client-side Nest app whose handlers the server can call, over its WsMsgpackClient's connection. */
export interface TestClientApp {
  app: INestApplication;
  client: WsMsgpackClient;
  close(): Promise<void>;
}

/** Name of the ClientsModule entry of {@link startClientApp}. */
export const HUB = 'HUB';

/**
 * Boots a client app as users write one: `ClientsModule.register` of a WsMsgpackClient named
 * {@link HUB}, ordinary controllers, and `app.connectMicroservice({ strategy: client.exposeHandlers() })`.
 */
export async function startClientApp(metadata: ModuleMetadata, clientOptions: WsMsgpackClientOptions, setup?: (app: INestApplication) => void): Promise<TestClientApp> {
  const { ClientsModule } = await import('@nestjs/microservices');
  @Module({ ...metadata, imports: [...(metadata.imports ?? []), ClientsModule.register([{ name: HUB, customClass: WsMsgpackClient, options: clientOptions }])] })
  class ClientAppModule {}
  const app = await NestFactory.create(ClientAppModule, { logger: false });
  const client = app.get<WsMsgpackClient>(HUB);
  app.connectMicroservice({ strategy: client.exposeHandlers() });
  setup?.(app);
  await within(app.startAllMicroservices(), WAIT_MS, 'client app microservices');
  await within(app.init(), WAIT_MS, 'client app init');
  return {
    app,
    client,
    async close() {
      await within(app.close(), WAIT_MS, 'client app close');
    },
  };
}
