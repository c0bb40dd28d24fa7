import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { isDeepStrictEqual, inspect } from 'node:util';
import { count, firstValueFrom, from, lastValueFrom, take, takeUntil, tap, timer, toArray, type Observable } from 'rxjs';
// In your own app: import { ... } from 'nestjs-ws-msgpack';
import { WsMsgpackClient, WsMsgpackError, WsMsgpackRecordBuilder } from '../../src/index.js';
import type { AuditEvent, DivRequest, Price, RepeatRequest, Row, SleepRequest, Stats } from '../shared.js';
import { agentLog, AgentModule } from './agent.controller.js';

/**
 * A Node process calling the sample server with WsMsgpackClient, and answering the server's calls
 * with the handlers of a small Nest microservice (agent.controller.ts) served over the same
 * connection. Every answer is checked, so the sample doubles as a smoke test: exit code 1 on any
 * surprise.
 *
 * Usage: node dist-sample/sample/client/main.js [rpcUrl] [httpUrl]
 */
const rpcUrl = process.argv[2] ?? 'ws://127.0.0.1:3000/rpc';
const httpUrl = process.argv[3] ?? new URL(rpcUrl).origin.replace(/^ws/, 'http');

// `?agent` tells the sample server that this client takes calls (its connected hook welcomes it).
const client = new WsMsgpackClient({ url: `${rpcUrl}?agent` });

function show(value: unknown): string {
  return inspect(value, { depth: 4, breakLength: Infinity });
}

function print(name: string, result: unknown): void {
  console.log(`${name} → ${typeof result === 'string' ? result : show(result)}`);
}

function expectEqual(what: string, actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

/** The error an Observable fails with; throws if it succeeds instead. */
async function errorOf(o: Observable<unknown>): Promise<unknown> {
  try {
    const value = await lastValueFrom(o);
    throw new Error(`expected an error, got ${show(value)}`, { cause: 'unexpected-success' });
  } catch (e) {
    if (e instanceof Error && e.cause === 'unexpected-success') throw e;
    return e;
  }
}

/** Resolves with what `get` returns once it returns something (bounded: events arrive a few ms later). */
async function until<T>(what: string, get: () => T | undefined, tries = 100): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${what} never came`);
}

let closeAgent: () => Promise<void> = async () => {};

/** Asks the server for its counters until `ok` holds (bounded: the server may lag a few ms). */
async function statsUntil(what: string, ok: (s: Stats) => boolean, tries = 50): Promise<Stats> {
  let stats: Stats | undefined;
  for (let i = 0; i < tries; i++) {
    stats = await firstValueFrom(client.send<Stats>('stats', {}));
    if (ok(stats)) return stats;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`server never reported ${what}; last stats: ${show(stats)}`);
}

async function* words(): AsyncGenerator<string> {
  yield 'hello';
  yield 'rpc';
}

async function main(): Promise<void> {
  console.log(`connecting to ${rpcUrl}`);
  // The handlers the server may call, served over this client's connection; listen() connects.
  const agent = await NestFactory.createMicroservice(AgentModule, { strategy: client.exposeHandlers(), logger: false });
  await agent.listen();
  closeAgent = () => agent.close();

  // 0. The server's connected hook called welcome() before any call of ours was dispatched.
  //    (This call is dispatched only once that hook has returned, so the welcome is logged by now.)
  const myId = await firstValueFrom(client.send<string>('whoami-id', {}));
  expectEqual('welcome', agentLog[0], `welcome: hello, client ${myId.slice(0, 8)}`);
  print('server → client welcome on connect', agentLog[0]);

  // 1. Unary call.
  const third = await firstValueFrom(client.send<number, DivRequest>('div', { a: 1, b: 3 }));
  print('div(1, 3)', third);
  expectEqual('div(1, 3)', third, 1 / 3);

  // 2. Domain error: the RpcException's payload arrives as the error, unchanged.
  const divError = await errorOf(client.send<number, DivRequest>('div', { a: 1, b: 0 }));
  print('div(1, 0)', { error: divError });
  expectEqual('div(1, 0) error', divError, { code: 'DIV_BY_ZERO', message: 'division by zero' });

  // 3. Cancellation: sleep 3 s, but stop listening after 1 s; unsubscribing cancels it on the server.
  const CANCELLED = Symbol('cancelled');
  const started = Date.now();
  const slept = await lastValueFrom(client.send<string, SleepRequest>('sleep', { seconds: 3 }).pipe(takeUntil(timer(1000))), { defaultValue: CANCELLED });
  const elapsed = Date.now() - started;
  print('sleep(3)', slept === CANCELLED ? `cancelled after ${elapsed} ms` : slept);
  if (slept !== CANCELLED) throw new Error(`sleep(3): expected to cancel it, got ${show(slept)}`);
  if (elapsed > 2500) throw new Error(`sleep(3): cancelling took ${elapsed} ms`);
  const afterCancel = await statsUntil('the aborted sleep', (s) => s.sleepAborts === 1);
  print('stats.sleepAborts', afterCancel.sleepAborts);

  // 4. Request stream: the numbers go one by one; one answer comes back.
  const total = await firstValueFrom(client.send<number>('sum', from([1, 2, 3, 4])));
  print('sum(1, 2, 3, 4)', total);
  expectEqual('sum', total, 10);

  // 4b. A request stream the server pulls with for-await: our generator is asked for rows at most
  //     one credit window (256) ahead of the server's loop, however many there are.
  let produced = 0;
  async function* manyRows(): AsyncGenerator<Row> {
    for (let id = 0; id < 5000; id++) {
      produced++;
      yield { id, name: `row-${id}` };
    }
  }
  const imported = await firstValueFrom(client.send<{ rows: number }>('import', manyRows()));
  print('import (5,000 rows, pulled by the server)', `${imported.rows} rows imported`);
  expectEqual('import', [imported, produced], [{ rows: 5000 }, 5000]);

  // 4c. The same from an rxjs pipeline on the server: wsConcatMap paces us like for-await does.
  let sentRx = 0;
  async function* rowsRx(): AsyncGenerator<Row> {
    for (let id = 0; id < 2000; id++) {
      sentRx++;
      yield { id, name: `row-${id}` };
    }
  }
  const importedRx = await firstValueFrom(client.send<number>('import.rx', rowsRx()));
  print('import.rx (2,000 rows through wsConcatMap)', `${importedRx} rows stored`);
  expectEqual('import.rx', [importedRx, sentRx], [2000, 2000]);

  // 5. Response stream: print each item as it arrives.
  const repeated = await lastValueFrom(
    client.send<string, RepeatRequest>('repeat', { word: 'bla...', count: 4 }).pipe(
      tap((word) => print('repeat item', word)),
      toArray(),
    ),
  );
  expectEqual('repeat', repeated, ['bla...', 'bla...', 'bla...', 'bla...']);

  // The same stream pulled with for-await: the server's generator runs at most one credit window
  // ahead of this loop (end-to-end backpressure), and `break` would cancel it on the server.
  const pulled: string[] = [];
  for await (const word of client.iterate<string, RepeatRequest>('repeat', { word: 'pull', count: 3 })) {
    print('repeat (iterate) item', word);
    pulled.push(word);
  }
  expectEqual('repeat (iterate)', pulled, ['pull', 'pull', 'pull']);

  // 6. Both ways: an async generator in, a stream out.
  const upper = await lastValueFrom(
    client.send<string>('uppercase', words()).pipe(
      tap((word) => print('uppercase item', word)),
      toArray(),
    ),
  );
  expectEqual('uppercase', upper, ['HELLO', 'RPC']);

  // 7. An endless stream: take 5, which unsubscribes, which tears the producer down on the server.
  const ticks = await lastValueFrom(client.send<number>('interval', {}).pipe(take(5), toArray()));
  print('interval, first 5', ticks);
  expectEqual('interval', ticks, [0, 1, 2, 3, 4]);
  const afterInterval = await statsUntil('the interval teardown', (s) => s.intervalTeardowns === 1);
  print('stats.intervalTeardowns', afterInterval.intervalTeardowns);

  // 7b. The stream TCP users write: `return from(rows)` with an object pattern; 100,000 rows
  //     arrive in order with default options (what credit does not cover yet waits in a buffer).
  let expectedId = 0;
  const rows = await lastValueFrom(
    client.send<Row>({ cmd: 'rows' }, { count: 100_000 }).pipe(
      tap((row) => {
        if (row.id !== expectedId++) throw new Error(`rows: row ${expectedId - 1} arrived as ${show(row)}`);
      }),
      count(),
    ),
  );
  print('rows (from(rows), 100,000)', `${rows} rows, in order`);
  expectEqual('rows', rows, 100_000);

  // 7c. Overflow 'latest': 1,000 prices at once to a reader pulling one at a time (window 1).
  //     Only the newest waits, so the reader gets the first price and then the last one.
  const quotes: number[] = [];
  const latest = new WsMsgpackRecordBuilder({ count: 1000 }).setWindow(1).setOverflow('latest').build();
  for await (const quote of client.iterate<Price>('prices', latest)) quotes.push(quote.tick);
  print("prices with overflow 'latest'", `ticks ${show(quotes)}`);
  expectEqual('prices', quotes, [1, 1000]);

  // 7d. An async generator that throws midway: its exception filter maps the error.
  const stock: string[] = [];
  const stockError = await errorOf(client.send<string>('inventory', {}).pipe(tap((item) => stock.push(item))));
  print('inventory', { items: stock, error: stockError });
  expectEqual('inventory', [stock, stockError], [['apples', 'pears'], { code: 'OUT_OF_STOCK', sku: 'plums' }]);

  // 7e. Loopback (wsrpc_aiohttp): the server calls this client's multiply() inside our call.
  const product = await firstValueFrom(client.send<number>('multiply_loopback', { a: 6, b: 7 }));
  print('multiply_loopback(6, 7)', product);
  expectEqual('multiply_loopback', product, 42);

  // 7f. Broadcast: the server emits 'news' to every connected agent; our @EventPattern('news') gets it.
  const reached = await firstValueFrom(client.send<number>('announce', 'the sample works'));
  const news = await until('the broadcast', () => agentLog.find((l) => l.startsWith('news:')));
  print(`announce → broadcast to ${reached} client(s)`, news);
  expectEqual('broadcast', news, 'news: the sample works');

  // 8. Call headers, read on the server with @WsHeaders('x-tenant').
  const tenant = await firstValueFrom(client.send<string>('whoami', new WsMsgpackRecordBuilder({}).setHeaders({ 'x-tenant': 'acme' }).build()));
  print('whoami [x-tenant: acme]', tenant);
  expectEqual('whoami', tenant, 'tenant acme');

  // 9. Deadline: a 2 s sleep with a 200 ms deadline fails with DEADLINE_EXCEEDED, and the server's
  //    handler is aborted too.
  const deadlineError = await errorOf(client.send('sleep', new WsMsgpackRecordBuilder({ seconds: 2 }).setTimeout(200).build()));
  if (!(deadlineError instanceof WsMsgpackError) || deadlineError.code !== 'DEADLINE_EXCEEDED') {
    throw new Error(`sleep(2) with deadline: expected WsMsgpackError DEADLINE_EXCEEDED, got ${show(deadlineError)}`);
  }
  print('sleep(2) with a 200 ms deadline', `${deadlineError.name} ${deadlineError.code}: ${deadlineError.message}`);
  const afterDeadline = await statsUntil('the sleep aborted by its deadline', (s) => s.sleepAborts === 2);
  print('stats.sleepAborts', afterDeadline.sleepAborts);

  // 10. Event: fire and forget; the server counts it.
  const event: AuditEvent = { user: 'alice', action: 'login' };
  await lastValueFrom(client.emit('audit', event), { defaultValue: undefined });
  const afterAudit = await statsUntil('the audit event', (s) => s.audits === 1);
  print('emit audit → stats', { audits: afterAudit.audits, lastAudit: afterAudit.lastAudit });
  expectEqual('lastAudit', afterAudit.lastAudit, event);

  // 11. Binary: a Buffer goes out as msgpack bin and comes back byte for byte.
  const bytes = Buffer.from([0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, ...Buffer.from('msgpack')]);
  const echoed = await firstValueFrom(client.send<Uint8Array>('echo', bytes));
  print('echo(Buffer)', `${echoed.byteLength} bytes, ${Buffer.from(echoed).toString('hex')}`);
  if (!(echoed instanceof Uint8Array) || !Buffer.from(echoed).equals(bytes)) {
    throw new Error(`echo: expected ${bytes.toString('hex')}, got ${show(echoed)}`);
  }

  // 12. The hybrid app's HTTP route, which calls the microservice with its Nest-injected client.
  const ok = await fetch(`${httpUrl}/http/div?a=10&b=4`);
  const okBody: unknown = await ok.json();
  print('GET /http/div?a=10&b=4', `${ok.status} ${JSON.stringify(okBody)}`);
  expectEqual('GET /http/div?a=10&b=4', [ok.status, okBody], [200, { a: 10, b: 4, result: 2.5 }]);
  const bad = await fetch(`${httpUrl}/http/div?a=1&b=0`);
  const badBody: unknown = await bad.json();
  print('GET /http/div?a=1&b=0', `${bad.status} ${JSON.stringify(badBody)}`);
  expectEqual('GET /http/div?a=1&b=0', [bad.status, badBody], [400, { code: 'DIV_BY_ZERO', message: 'division by zero' }]);

  console.log('all calls returned what they should');
}

try {
  await main();
} catch (e) {
  console.error('sample client failed:', e);
  process.exitCode = 1;
} finally {
  await closeAgent();
  await client.close();
}
