import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
// In your own app: import { WsMsgpackServer } from 'nestjs-ws-msgpack';
import { WsMsgpackServer } from '../../src/index.js';
import { AppModule } from './app.module.js';
import { RpcServerRef } from './rpc-server.ref.js';

const HOST = '127.0.0.1';
const logger = new Logger('SampleServer');

/**
 * The HTTP controller's injected client needs the RPC URL when the module is built, which is
 * before `listen()`. So pick the port first: PORT from the environment, or a free one from the OS.
 */
async function choosePort(): Promise<number> {
  if (process.env.PORT) return Number(process.env.PORT);
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once('error', reject).listen(0, HOST, resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

const port = await choosePort();
const app = await NestFactory.create(AppModule.forRoot({ rpcUrl: `ws://${HOST}:${port}/rpc` }));

// Hybrid app: the WebSocket transport shares the HTTP server, on its own path.
const rpcServer = new WsMsgpackServer({ httpServer: app.getHttpServer() as Server, path: '/rpc' });
app.get(RpcServerRef).server = rpcServer; // handlers reach the connected peers through it (broadcast)
app.connectMicroservice({ strategy: rpcServer });
await app.startAllMicroservices();
await app.listen(port, HOST);

const actual = (app.getHttpServer() as Server).address() as AddressInfo;
// scripts/run-sample.mjs waits for this line.
logger.log(`ready: http://${HOST}:${actual.port} (RPC at ws://${HOST}:${actual.port}/rpc)`);

let closing = false;
const shutdown = async (signal: string): Promise<void> => {
  if (closing) return;
  closing = true;
  logger.log(`${signal} received, closing`);
  await app.close(); // the microservice, the HTTP server, and the injected client
  logger.log('closed');
  // Nothing is left on the event loop, so the process ends by itself.
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
