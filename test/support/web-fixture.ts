/**
 * The Nest service the browser-client tests call (from Node over a standard WebSocket, and from
 * real Chromium): ordinary handlers as Nest users write them, with probes that let a test see
 * what the server side did (a producer stopped, a handler aborted).
 */
import { Controller, Injectable, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { Ctx, EventPattern, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { finalize, from, interval, lastValueFrom, map, reduce, tap, type Observable } from 'rxjs';
import { bearerToken, WsMsgpackContext, WsPeer, WsSignal, type WsMsgpackPeer, type WsMsgpackServerOptions } from '../../src/index.js';
import { startService, type TestService } from './helpers.js';
import { codeOf, Probes } from './streams.js';

/** Users by bearer token. */
export const TOKENS: Record<string, { name: string; role: 'admin' | 'user' }> = {
  'token-admin': { name: 'ada', role: 'admin' },
  'token-user': { name: 'bob', role: 'user' },
};

/** What the handlers saw, shared with the tests. */
export const webSeen = { probes: new Probes(), events: [] as unknown[] };

@Injectable()
class AdminOnly implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return context.switchToRpc().getContext<WsMsgpackContext>().getUser<{ role: string }>()?.role === 'admin';
  }
}

@Controller()
export class WebFixtureController {
  @MessagePattern('sum')
  sum(@Payload() numbers: number[]): number {
    return numbers.reduce((a, b) => a + b, 0);
  }

  @MessagePattern({ cmd: 'range' })
  range(@Payload() { n }: { n: number }): Observable<number> {
    return from(Array.from({ length: n }, (_, i) => i));
  }

  /** Request stream: the sum of what the caller streamed. */
  @MessagePattern('total')
  total(@Payload() items: Observable<number>): Promise<number> {
    return lastValueFrom(items.pipe(reduce((a, b) => a + b, 0)));
  }

  /** Bidirectional: every item doubled, as it arrives. */
  @MessagePattern('double')
  double(@Payload() items: Observable<number>): Observable<number> {
    return items.pipe(map((x) => x * 2));
  }

  /** Endless ticks; the probe named by `tag` records items produced and the finalize. */
  @MessagePattern('ticks')
  ticks(@Payload() tag: string): Observable<number> {
    const probe = webSeen.probes.get(tag);
    probe.started++;
    return interval(5).pipe(
      tap(() => probe.produced++),
      finalize(() => probe.finalized++),
    );
  }

  /** Bytes back with their length appended, and a Date a day later (value mapping both ways). */
  @MessagePattern('bytes')
  bytes(@Payload() data: Uint8Array): { isBytes: boolean; bytes: Uint8Array } {
    const out = new Uint8Array(data.length + 1);
    out.set(data);
    out[data.length] = data.length & 0xff;
    return { isBytes: data instanceof Uint8Array, bytes: out };
  }

  @MessagePattern('tomorrow')
  tomorrow(@Payload() d: Date): { isDate: boolean; next: Date } {
    return { isDate: d instanceof Date, next: new Date(d.getTime() + 86_400_000) };
  }

  @MessagePattern('fail')
  fail(): never {
    throw new RpcException({ status: 'error', message: 'nope', reason: 'test' });
  }

  /** Slow unless aborted: the probe records the abort. */
  @MessagePattern('slow')
  slow(@Payload() tag: string, @WsSignal() signal: AbortSignal): Promise<string> {
    const probe = webSeen.probes.get(tag).watch(signal);
    probe.started++;
    return new Promise<string>((resolve) => {
      const t = setTimeout(() => resolve('slow done'), 60_000);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        probe.finalized++;
        resolve('aborted');
      });
    });
  }

  @UseGuards(AdminOnly)
  @MessagePattern('admin.whoami')
  whoami(@Ctx() ctx: WsMsgpackContext): string {
    return ctx.getUser<{ name: string }>()!.name;
  }

  /** The server calls the client's `confirm` handler and returns its answer. */
  @MessagePattern('ask.client')
  async askClient(@Payload() question: string, @WsPeer() peer: WsMsgpackPeer): Promise<unknown> {
    try {
      return await lastValueFrom(peer.send('confirm', question));
    } catch (e) {
      return { failed: codeOf(e) ?? String(e) };
    }
  }

  /** The server pulls a stream from the client's `countdown` handler and returns the items. */
  @MessagePattern('pull.client')
  async pullClient(@Payload() n: number, @WsPeer() peer: WsMsgpackPeer): Promise<unknown[]> {
    return lastValueFrom(peer.send<unknown>('countdown', n).pipe(reduce((all, x) => [...all, x], [] as unknown[])));
  }

  /** The server emits an event to the client. */
  @MessagePattern('notify.client')
  notifyClient(@Payload() text: string, @WsPeer() peer: WsMsgpackPeer): string {
    peer.emit('notice', { text });
    return 'sent';
  }

  @EventPattern('log')
  log(@Payload() v: unknown): void {
    webSeen.events.push(v);
  }
}

/**
 * The fixture service: authenticates with `bearerToken` (a browser's subprotocol entry or an
 * Authorization header); without a token the connection is anonymous.
 */
export function startWebService(options: WsMsgpackServerOptions = {}): Promise<TestService> {
  return startService(
    { controllers: [WebFixtureController], providers: [AdminOnly] },
    {
      authenticate: (req) => {
        const token = bearerToken(req);
        if (token === undefined) return { name: 'anonymous', role: 'guest' };
        return TOKENS[token]; // unknown token -> 401
      },
      ...options,
    },
  );
}
