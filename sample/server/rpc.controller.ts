import { Controller, Logger, UseFilters } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { count, finalize, firstValueFrom, from, interval, map, range, reduce, throwError, timeout, type Observable } from 'rxjs';
// In your own app: import { ... } from 'nestjs-ws-msgpack';
import {
  InjectWsMsgpackServer,
  WS_PEER_CONNECTED,
  WsEventPattern,
  WsHeaders,
  WsMessagePattern,
  WsMsgpackServer,
  WsPeer,
  WsSignal,
  wsConcatMap,
  type WsMsgpackPeer,
  type WsRequestStream,
} from '../../src/index.js';
import type { AuditEvent, DivRequest, PageAnswer, Price, Quote, QuotesRequest, RepeatRequest, Row, SleepRequest, Stats } from '../shared.js';
import { OutOfStockError, OutOfStockFilter } from './out-of-stock.filter.js';
import { StatsService } from './stats.service.js';

/** Rows already in memory, as a Nest TCP handler would return them. */
const ROWS: Row[] = Array.from({ length: 100_000 }, (_, id) => ({ id, name: `row-${id}` }));

/** How long `ask-page` waits for the page (a human clicking Yes or No). */
const PAGE_ANSWER_MS = 60_000;

/** The RPC handlers: unary, cancellable, request/response/bidirectional streams, headers, events. */
@Controller()
export class RpcController {
  private readonly logger = new Logger(RpcController.name);

  constructor(
    private readonly stats: StatsService,
    @InjectWsMsgpackServer() private readonly server: WsMsgpackServer, // WsMsgpackServerModule (app.module.ts)
  ) {}

  /**
   * A client connected: welcome it (simplerpc's on_connect). Its own calls wait until this returns.
   * Only agents (clients that expose handlers, marked `?agent`) take welcomes.
   */
  @WsEventPattern(WS_PEER_CONNECTED)
  async onConnect(@WsPeer() peer: WsMsgpackPeer): Promise<void> {
    if (!peer.handshake.url.includes('agent')) return;
    const answer = await firstValueFrom(peer.send<string>('welcome', `hello, client ${peer.id.slice(0, 8)}`));
    this.logger.log(`welcomed ${peer.id.slice(0, 8)}: ${answer}`);
  }

  /** wsrpc_aiohttp's multiply_loopback: the server asks the calling client to do the work. */
  @WsMessagePattern('multiply_loopback')
  multiplyLoopback(@Payload() { a, b }: { a: number; b: number }, @WsPeer() caller: WsMsgpackPeer): Observable<number> {
    return caller.send<number>('multiply', { a, b });
  }

  /** Broadcast an event to every connected client; answers how many it reached. */
  @WsMessagePattern('announce')
  announce(@Payload() text: string): number {
    return this.server.broadcast('news', text, (peer) => peer.handshake.url.includes('agent'));
  }

  /** Unary: one request, one answer; a domain error travels as the RpcException's payload. */
  @WsMessagePattern('div')
  div(@Payload() { a, b }: DivRequest): number {
    if (b === 0) throw new RpcException({ code: 'DIV_BY_ZERO', message: 'division by zero' });
    return a / b;
  }

  /**
   * Long-running and cancellable: the AbortSignal fires when the caller unsubscribes, when the
   * call's deadline passes, or when the connection drops.
   */
  @WsMessagePattern('sleep')
  sleep(@Payload() { seconds }: SleepRequest, @WsSignal() signal: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve(`done sleeping ${seconds} s`);
      }, seconds * 1000);
      const onAbort = (): void => {
        clearTimeout(timer);
        this.stats.sleepAborts++;
        const reason = describeReason(signal.reason);
        this.logger.log(`sleep aborted (${reason})`);
        // The call is already over, so nobody receives this; rejecting just ends the handler.
        // (An RpcException, because Nest's exception handler logs a stack trace for other errors.)
        reject(new RpcException({ code: reason, message: 'sleep aborted' }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Request stream: the client sends numbers one by one; the answer is their total. */
  @WsMessagePattern('sum')
  sum(@Payload() numbers$: Observable<number>): Observable<number> {
    return numbers$.pipe(reduce((total, n) => total + n, 0));
  }

  /**
   * Request stream, pulled: `for await` takes one row at a time, and the client sends no faster
   * than this loop (credit follows it). The answer is how many rows there were, and the most the
   * client's source ran ahead of the loop.
   */
  @WsMessagePattern('import')
  async importRows(@Payload() rows: WsRequestStream<Row>): Promise<{ rows: number }> {
    let n = 0;
    for await (const row of rows) {
      if (row.id !== n) throw new RpcException({ code: 'OUT_OF_ORDER', message: `row ${row.id} came as number ${n}` });
      n++;
      if (n % 100 === 0) await new Promise((resolve) => setTimeout(resolve, 1)); // a slow insert, now and then
    }
    return { rows: n };
  }

  /**
   * Request stream, subscribed: `wsConcatMap` (first in the pipe) takes the next row only once the
   * previous one is stored, so the client sends no faster than this handler works, as with
   * `for await`. rxjs's `concatMap` would let rows pile up inside it instead.
   */
  @WsMessagePattern('import.rx')
  importRowsRx(@Payload() rows: WsRequestStream<Row>): Observable<number> {
    return rows.pipe(
      wsConcatMap((row) => new Promise<Row>((resolve) => setTimeout(() => resolve(row), row.id % 100 === 0 ? 1 : 0))),
      count(),
    );
  }

  /** Response stream from an async generator: `word`, `count` times. */
  @WsMessagePattern('repeat')
  async *repeat(@Payload() { word, count }: RepeatRequest): AsyncGenerator<string> {
    for (let i = 0; i < count; i++) yield word;
  }

  /** Bidirectional: every incoming word goes back upper-cased as soon as it arrives. */
  @WsMessagePattern('uppercase')
  uppercase(@Payload() words$: Observable<string>): Observable<string> {
    return words$.pipe(map((word) => word.toUpperCase()));
  }

  /** An endless stream; `finalize` runs when the client stops listening. */
  @WsMessagePattern('interval')
  interval(): Observable<number> {
    return interval(10).pipe(
      finalize(() => {
        this.stats.intervalTeardowns++;
        this.logger.log('interval producer torn down');
      }),
    );
  }

  /**
   * The browser page's live stream: an endless Observable, one quote every `everyMs`. When the
   * page unsubscribes (its Cancel button), the transport unsubscribes here and `finalize` runs:
   * the timer is gone, nothing more is produced.
   */
  @MessagePattern('quotes')
  quotes(@Payload() { symbol, everyMs }: QuotesRequest, @WsPeer() peer: WsMsgpackPeer): Observable<Quote> {
    const every = Number.isFinite(everyMs) ? Math.min(5000, Math.max(20, everyMs!)) : 300;
    const who = `quotes ${symbol} for ${peer.id.slice(0, 8)}`;
    this.stats.quoteStreams++;
    this.logger.log(`${who}: streaming one every ${every} ms`);
    let price = 100;
    let produced = 0;
    return interval(every).pipe(
      map((): Quote => {
        price = Math.max(1, price + Math.random() - 0.5);
        return { symbol, tick: ++produced, price: Math.round(price * 100) / 100, at: new Date() };
      }),
      finalize(() => {
        this.stats.quoteStops++;
        this.logger.log(`${who}: producer stopped after ${produced} quotes (the caller cancelled or left)`);
      }),
    );
  }

  /**
   * Server → browser: calls the calling page's `browser.confirm` handler (`client.handle()` in
   * the page) over the page's own connection, and answers with what it said. If the page does not
   * answer in time, `timeout` unsubscribes, which cancels the call to the page (its handler's
   * AbortSignal fires).
   */
  @MessagePattern('ask-page')
  askPage(@Payload() { question }: { question: string }, @WsPeer() page: WsMsgpackPeer): Observable<PageAnswer> {
    const started = Date.now();
    const who = `page ${page.id.slice(0, 8)}`;
    this.logger.log(`asking ${who}: ${question}`);
    return page.send<boolean>('browser.confirm', question).pipe(
      timeout({
        first: PAGE_ANSWER_MS,
        with: () => throwError(() => new RpcException({ code: 'NO_ANSWER', message: `the page did not answer within ${PAGE_ANSWER_MS / 1000} s` })),
      }),
      map((answer) => {
        const ms = Date.now() - started;
        this.logger.log(`${who} answered ${answer ? 'yes' : 'no'} after ${ms} ms`);
        return { question, answer, ms };
      }),
    );
  }

  /**
   * The stream Nest TCP users write: a synchronous Observable over data in memory, an object
   * pattern, @Payload(). Items beyond the client's credit wait in a byte-bounded buffer.
   */
  @MessagePattern({ cmd: 'rows' })
  rows(@Payload() { count }: { count: number }): Observable<Row> {
    return from(ROWS.slice(0, count));
  }

  /** A burst of prices, faster than anyone reads them: with overflow 'latest', slow readers get the newest. */
  @WsMessagePattern('prices')
  prices(@Payload() { count }: { count: number }): Observable<Price> {
    return range(1, count).pipe(map((tick) => ({ symbol: 'ACME', tick, price: 100 + tick / 100 })));
  }

  /** An async generator that fails midway: the exception filter maps its error, as for an Observable. */
  @WsMessagePattern('inventory')
  @UseFilters(OutOfStockFilter)
  async *inventory(): AsyncGenerator<string> {
    yield 'apples';
    yield 'pears';
    throw new OutOfStockError('plums');
  }

  /** The caller's peer id (the id the server knows it by). */
  @WsMessagePattern('whoami-id')
  whoamiId(@WsPeer() peer: WsMsgpackPeer): string {
    return peer.id;
  }

  /** Reads one call header set with WsMsgpackRecordBuilder#setHeaders. */
  @WsMessagePattern('whoami')
  whoami(@WsHeaders('x-tenant') tenant: string | undefined): string {
    return `tenant ${tenant ?? '(none)'}`;
  }

  /** Binary data: msgpack carries bytes as-is (received as a Buffer), so this echoes them back. */
  @WsMessagePattern('echo')
  echo(@Payload() bytes: Uint8Array): Uint8Array {
    return bytes;
  }

  /** Fire-and-forget event: no answer goes back. */
  @WsEventPattern('audit')
  audit(@Payload() event: AuditEvent): void {
    this.stats.audits++;
    this.stats.lastAudit = event;
    this.logger.log(`audit event: ${event.user} ${event.action}`);
  }

  @WsMessagePattern('stats')
  getStats(): Stats {
    return this.stats.snapshot();
  }
}

function describeReason(reason: unknown): string {
  const code = (reason as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(reason);
}
