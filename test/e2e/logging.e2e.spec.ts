/**
 * Issue 16, item 7: a listening server logged nothing (Nest's own transports say where they
 * listen), and there was no way to see calls go by. The server now logs its address once, and
 * `logCalls` logs one line per ended call at debug (or verbose) level; both through Nest's
 * Logger, so the app's log levels decide.
 */
import { Controller, Module, type INestMicroservice, type LoggerService, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NEVER } from 'rxjs';
import { WsMsgpackClient, WsMsgpackRecordBuilder, WsMsgpackServer, type WsMsgpackServerOptions } from '../../src/index.js';
import { errorOf, first, until, within } from '../support/helpers.js';

@Controller()
class LogController {
  @MessagePattern('ok')
  ok(@Payload() n: number): number {
    return n + 1;
  }

  @MessagePattern('fails')
  fails(): never {
    throw new Error('no');
  }

  @MessagePattern('hangs')
  hangs(): typeof NEVER {
    return NEVER;
  }
}

@Module({ controllers: [LogController] })
class LogModule {}

/** A logger that records what Nest's Logger hands it, by level, with the context. */
class Recorder implements LoggerService {
  readonly lines: { level: LogLevel; message: string; context: string }[] = [];
  private add(level: LogLevel, message: unknown, rest: unknown[]): void {
    this.lines.push({ level, message: String(message), context: String(rest.at(-1) ?? '') });
  }
  log(m: unknown, ...rest: unknown[]): void {
    this.add('log', m, rest);
  }
  error(m: unknown, ...rest: unknown[]): void {
    this.add('error', m, rest);
  }
  warn(m: unknown, ...rest: unknown[]): void {
    this.add('warn', m, rest);
  }
  debug(m: unknown, ...rest: unknown[]): void {
    this.add('debug', m, rest);
  }
  verbose(m: unknown, ...rest: unknown[]): void {
    this.add('verbose', m, rest);
  }
}

async function boot(options: WsMsgpackServerOptions, logger: LoggerService | LogLevel[]): Promise<{ app: INestMicroservice; server: WsMsgpackServer; url: string }> {
  const server = new WsMsgpackServer({ port: 0, ...options });
  const app = await NestFactory.createMicroservice(LogModule, { strategy: server, logger });
  await within(app.listen(), 5000, 'listen');
  return { app, server, url: `ws://127.0.0.1:${server.address()!.port}` };
}

describe('where the server listens, logged once', () => {
  it('standalone: "Listening on ws://host:port/path" at log level, context WsMsgpackServer', async () => {
    const rec = new Recorder();
    const { app, server } = await boot({ path: '/rpc' }, rec);
    try {
      const lines = rec.lines.filter((l) => l.context === 'WsMsgpackServer');
      expect(lines).toEqual([{ level: 'log', message: `Listening on ws://127.0.0.1:${server.address()!.port}/rpc`, context: 'WsMsgpackServer' }]);
    } finally {
      await app.close();
    }
  });

  it('on a shared HTTP server: the path, and the address once the HTTP server listens', async () => {
    const http = createServer();
    await within(new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r())), 5000, 'http listen');
    const rec = new Recorder();
    const server = new WsMsgpackServer({ httpServer: http, path: '/rpc' });
    const app = await NestFactory.createMicroservice(LogModule, { strategy: server, logger: rec });
    await within(app.listen(), 5000, 'listen');
    try {
      const port = (http.address() as AddressInfo).port;
      expect(rec.lines.filter((l) => l.context === 'WsMsgpackServer').map((l) => l.message)).toEqual([
        `Accepting WebSocket upgrades on path /rpc of the HTTP server (listening on 127.0.0.1:${port})`,
      ]);
    } finally {
      await app.close();
      http.close();
    }
  });
});

describe('logCalls', () => {
  it('off by default: no line per call', async () => {
    const rec = new Recorder();
    const { app, url } = await boot({}, rec);
    const client = new WsMsgpackClient({ url });
    try {
      expect(await first(client.send('ok', 1))).toBe(2);
      expect(rec.lines.filter((l) => /^call /.test(l.message))).toEqual([]);
    } finally {
      await client.close();
      await app.close();
    }
  });

  it('true: a debug line per ended call, with its id, pattern, peer, outcome and duration', async () => {
    const rec = new Recorder();
    const { app, url, server } = await boot({ logCalls: true }, rec);
    const client = new WsMsgpackClient({ url });
    try {
      expect(await first(client.send('ok', 1))).toBe(2);
      await errorOf(client.send('fails', 1));
      await errorOf(client.send('missing', 1));
      const sub = client.send('hangs', 1).subscribe({ error: () => {} });
      await until(() => server.connectionCount === 1, 5000, 'connected');
      await new Promise((r) => setTimeout(r, 20));
      sub.unsubscribe();
      await until(() => rec.lines.filter((l) => /^call /.test(l.message)).length === 4, 5000, 'four call lines');
      const calls = rec.lines.filter((l) => /^call /.test(l.message));
      expect(calls.every((l) => l.level === 'debug' && l.context === 'WsMsgpackServer')).toBe(true);
      const peer = [...server.peers][0]!.id;
      expect(calls.map((l) => l.message)).toEqual([
        expect.stringMatching(new RegExp(`^call 1 "ok" from peer ${peer}: ok in \\d+\\.\\d ms$`)),
        expect.stringMatching(new RegExp(`^call 3 "fails" from peer ${peer}: error APPLICATION_ERROR in \\d+\\.\\d ms$`)),
        `call 5 "missing" from peer ${peer}: error UNIMPLEMENTED (no handler)`,
        expect.stringMatching(new RegExp(`^call 7 "hangs" from peer ${peer}: CANCELLED in \\d+\\.\\d ms$`)),
      ]);
    } finally {
      await client.close();
      await app.close();
    }
  });

  it("'verbose' logs at verbose level", async () => {
    const rec = new Recorder();
    const second = await boot({ logCalls: 'verbose' }, rec);
    const c2 = new WsMsgpackClient({ url: second.url });
    try {
      expect(await first(c2.send('ok', 1))).toBe(2);
      await until(() => rec.lines.some((l) => /^call /.test(l.message)), 5000, 'the call line');
      expect(rec.lines.find((l) => /^call /.test(l.message))!.level).toBe('verbose');
    } finally {
      await c2.close();
      await second.app.close();
    }
  });

  it('a peer-chosen pattern is cut short in the call line (as in the unhandled-event line)', async () => {
    const rec = new Recorder();
    const { app, url } = await boot({ logCalls: true }, rec);
    const client = new WsMsgpackClient({ url });
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
    const { app, url } = await boot({ logCalls: true }, rec);
    const client = new WsMsgpackClient({ url });
    try {
      await errorOf(client.send('hangs', new WsMsgpackRecordBuilder(1).setTimeout(50).build()));
      await until(() => rec.lines.some((l) => l.message.startsWith('call ')), 5000, 'call line');
      expect(rec.lines.find((l) => l.message.startsWith('call '))!.message).toMatch(/: DEADLINE_EXCEEDED in/);
    } finally {
      await client.close();
      await app.close();
    }
  });

  it('a bad value is refused at construction', () => {
    expect(() => new WsMsgpackServer({ logCalls: 'info' as never })).toThrow(/option logCalls must be true, false, 'debug' or 'verbose', got "info"/);
  });
});
