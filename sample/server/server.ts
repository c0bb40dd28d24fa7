import 'reflect-metadata';
import type { INestApplication, NestApplicationOptions } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
// In your own app: import { WsMsgpackServer } from 'nestjs-ws-msgpack';
import { WsMsgpackServer } from '../../src/index.js';
import { AppModule } from './app.module.js';

/** The running sample server (main.ts runs it as a process; test/e2e/sample-browser boots it in-process). */
export interface SampleServer {
  app: INestApplication;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `ws://127.0.0.1:PORT/rpc`, the transport. */
  rpcUrl: string;
  /** `http://127.0.0.1:PORT/browser`, the browser page (server/browser.controller.ts). */
  pageUrl: string;
  /** `app.close()`: the microservice, the HTTP server, and the injected client. */
  close(): Promise<void>;
}

export interface SampleServerOptions {
  /** Default: a free port from the OS. */
  port?: number;
  /** Default: 127.0.0.1. */
  host?: string;
  /** Nest's logger option (default: Nest's console logger). */
  logger?: NestApplicationOptions['logger'];
}

/**
 * The HTTP controller's injected client needs the RPC URL when the module is built, which is
 * before `listen()`. So pick the port first: the one given, or a free one from the OS.
 */
async function choosePort(host: string, port: number | undefined): Promise<number> {
  if (port) return port;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, host, resolve));
  const { port: free } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return free;
}

/** Boots the hybrid app: HTTP (with the browser page) and the WebSocket transport on one port. */
export async function startSampleServer(options: SampleServerOptions = {}): Promise<SampleServer> {
  const host = options.host ?? '127.0.0.1';
  const port = await choosePort(host, options.port);
  const app = await NestFactory.create(AppModule.forRoot({ rpcUrl: `ws://${host}:${port}/rpc` }), options.logger === undefined ? {} : { logger: options.logger });

  // Hybrid app: the WebSocket transport shares the HTTP server, on its own path (app.module.ts).
  app.connectMicroservice({ strategy: app.get(WsMsgpackServer) });
  await app.startAllMicroservices();
  await app.listen(port, host);

  const actual = (app.getHttpServer() as Server).address() as AddressInfo;
  const url = `http://${host}:${actual.port}`;
  return { app, url, rpcUrl: `ws://${host}:${actual.port}/rpc`, pageUrl: `${url}/browser`, close: () => app.close() };
}
