import { Logger } from '@nestjs/common';
import { startSampleServer } from './server.js';

const logger = new Logger('SampleServer');

const server = await startSampleServer({ port: process.env.PORT ? Number(process.env.PORT) : undefined });
// scripts/run-sample.mjs waits for this line.
logger.log(`ready: ${server.url} (RPC at ${server.rpcUrl})`);
logger.log(`browser page: ${server.pageUrl}`);

let closing = false;
const shutdown = async (signal: string): Promise<void> => {
  if (closing) return;
  closing = true;
  logger.log(`${signal} received, closing`);
  await server.close(); // the microservice, the HTTP server, and the injected client
  logger.log('closed');
  // Nothing is left on the event loop, so the process ends by itself.
};
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
