import { Controller, Module, type LoggerService, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern } from '@nestjs/microservices';
import { NEVER } from 'rxjs';
import { WsMsgpackClient, WsMsgpackRecordBuilder, WsMsgpackServer } from '../../src/index.js';
import { errorOf, until, within } from '../support/helpers.js';

@Controller()
class LogController {
  @MessagePattern('hangs')
  hangs(): typeof NEVER {
    return NEVER;
  }
}

@Module({ controllers: [LogController] })
class LogModule {}

class Recorder implements LoggerService {
  readonly lines: { level: LogLevel; message: string }[] = [];
  log(m: unknown): void {
    this.lines.push({ level: 'log', message: String(m) });
  }
  error(m: unknown): void {
    this.lines.push({ level: 'error', message: String(m) });
  }
  warn(m: unknown): void {
    this.lines.push({ level: 'warn', message: String(m) });
  }
  debug(m: unknown): void {
    this.lines.push({ level: 'debug', message: String(m) });
  }
  verbose(m: unknown): void {
    this.lines.push({ level: 'verbose', message: String(m) });
  }
}

describe('logCalls: peer-chosen patterns, deadlines', () => {
  it('a peer-chosen pattern is cut short in the call line (as in the unhandled-event line)', async () => {
    const rec = new Recorder();
    const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1', logCalls: true });
    const app = await NestFactory.createMicroservice(LogModule, { strategy: server, logger: rec });
    await within(app.listen());
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${server.address()!.port}` });
    try {
      await errorOf(client.send('x'.repeat(200_000), 1));
      await until(() => rec.lines.some((l) => l.message.startsWith('call ')), 5000, 'call line');
      const line = rec.lines.find((l) => l.message.startsWith('call '))!;
      expect(line.message.length).toBeLessThan(1000);
    } finally {
      await client.close();
      await app.close();
    }
  });

  it('a call ended by its deadline is logged DEADLINE_EXCEEDED', async () => {
    const rec = new Recorder();
    const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1', logCalls: true });
    const app = await NestFactory.createMicroservice(LogModule, { strategy: server, logger: rec });
    await within(app.listen());
    const client = new WsMsgpackClient({ url: `ws://127.0.0.1:${server.address()!.port}` });
    try {
      await errorOf(client.send('hangs', new WsMsgpackRecordBuilder(1).setTimeout(50).build()));
      await until(() => rec.lines.some((l) => l.message.startsWith('call ')), 5000, 'call line');
      expect(rec.lines.find((l) => l.message.startsWith('call '))!.message).toMatch(/: DEADLINE_EXCEEDED in/);
    } finally {
      await client.close();
      await app.close();
    }
  });
});
