import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { Observable } from 'rxjs';
import type { WsMsgpackClient } from '../client/ws-msgpack.client.js';
import { WsMsgpackStatus } from '../session/status.js';
import { WsMsgpackRecord } from '../peer/record.js';
import { WsMsgpackError } from '../protocol/errors.js';
import { PING_PATTERN } from '../protocol/constants.js';
import type { WsMsgpackServer } from '../server/ws-msgpack.server.js';

/** Default of {@link WsMsgpackHealthCheckOptions.timeout}: terminus's own default for its ping checks. */
const DEFAULT_TIMEOUT_MS = 1000;
/** How much later than the call's own deadline the check gives up by itself (a safety net; the deadline fires first). */
const GUARD_SLACK_MS = 250;

/** Options of {@link WsMsgpackHealthIndicator.isHealthy}. */
export interface WsMsgpackHealthCheckOptions {
  /**
   * How long the check may take, in ms: the keep-alive round trip on an open connection, or the
   * one connection attempt a client with no connection (never connected, or gave up) makes.
   * A client that is reconnecting waits only for the attempt under way (within this timeout), and
   * is down at once while its last attempt failed. A finite number > 0;
   * default 1000.
   */
  timeout?: number;
}

/**
 * `@nestjs/terminus` health indicator for this transport (`nestjs-ws-msgpack/terminus`).
 * Provide it next to `TerminusModule` and call it from a `HealthCheckService.check()`:
 *
 * ```ts
 * @Controller('health')
 * class HealthController {
 *   constructor(
 *     private readonly health: HealthCheckService,
 *     private readonly wsmp: WsMsgpackHealthIndicator,
 *     @InjectWsMsgpackClient('MATH') private readonly math: WsMsgpackClient,
 *   ) {}
 *
 *   @Get('ready')
 *   @HealthCheck()
 *   ready() {
 *     return this.health.check([() => this.wsmp.isHealthy('math', this.math)]);
 *   }
 * }
 *
 * @Module({
 *   imports: [TerminusModule, WsMsgpackClientModule.register({ name: 'MATH', url: 'ws://math:3001' })],
 *   controllers: [HealthController],
 *   providers: [WsMsgpackHealthIndicator],
 * })
 * class AppModule {}
 * ```
 */
@Injectable()
export class WsMsgpackHealthIndicator {
  constructor(@Inject(HealthIndicatorService) private readonly healthIndicatorService: HealthIndicatorService) {}

  /**
   * Whether `client` can reach its server now: a keep-alive call (`wsmp:ping`, answered by the
   * server's transport itself, before any handler, guard or drain) makes a round trip on the
   * client's own connection within `timeout`. Fail-fast, so a server that went away is reported
   * down at once rather than after the client's reconnect attempts:
   *
   * - connected: up when the round trip completes within `timeout` (a dead, half-open connection
   *   is down after `timeout`);
   * - reconnecting (the connection dropped, or the server is going away and the client moved on):
   *   the check waits for the reconnect attempt under way (within `timeout`), and is down at once
   *   while the last attempt failed (the client's fail-fast rule); up again once a reconnect succeeds;
   * - never connected yet, or gave up (`disconnected`): one connection attempt, bounded by
   *   `timeout` (a lazily connecting client is connected by its first health check);
   * - closed (`client.close()` was called, e.g. during shutdown): down at once, and the check does
   *   not open it again.
   *
   * The result is `{ [key]: { status: 'up', state: 'connected', roundTripMs } }`, or
   * `{ [key]: { status: 'down', state, message, code? } }` where `state` is the client's status
   * and `code` the `WsMsgpackErrorCode`, such as `UNAVAILABLE` or `DEADLINE_EXCEEDED`.
   *
   * @param key The key of the result (e.g. `'math'`).
   * @param client The client to check (e.g. one of `WsMsgpackClientModule.register`).
   * @param options `timeout` (ms, default 1000).
   * @throws TypeError when `options.timeout` is not a finite number > 0.
   */
  async isHealthy<const Key extends string>(key: Key, client: WsMsgpackClient, options: WsMsgpackHealthCheckOptions = {}): Promise<HealthIndicatorResult<Key>> {
    const timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeout !== 'number' || !Number.isFinite(timeout) || !(timeout > 0)) {
      throw new TypeError(`WsMsgpackHealthIndicator: options.timeout must be a finite number of milliseconds > 0 (got ${String(timeout)})`);
    }
    const check = this.healthIndicatorService.check(key);
    const before = currentStatus(client.status);
    if (before === WsMsgpackStatus.CLOSED) {
      return check.down({ state: before, message: 'the client was closed (close() was called)' });
    }
    const started = Date.now();
    try {
      await ping(client, timeout);
    } catch (e) {
      const state = currentStatus(client.status) ?? 'idle';
      const message = e instanceof Error ? e.message : String(e);
      return check.down(e instanceof WsMsgpackError ? { state, message, code: e.code } : { state, message });
    }
    return check.up({ state: WsMsgpackStatus.CONNECTED, roundTripMs: Date.now() - started });
  }

  /**
   * Readiness of this app's own `server`: up while it is listening and not shutting down. It goes
   * down as soon as `close()` (or `app.close()`) starts the drain, while calls under way are still
   * finishing, so a load balancer (a Kubernetes readiness probe) stops sending new clients before
   * the server stops listening; and it stays down once closed, or when `listen()` failed.
   *
   * The result is `{ [key]: { status: 'up', state: 'listening', connections } }`, or
   * `{ [key]: { status: 'down', state: 'not listening' | 'draining' | 'closed', message } }`.
   *
   * @param key The key of the result (e.g. `'rpc'`).
   * @param server The `WsMsgpackServer` given to `connectMicroservice` / `createMicroservice` as `strategy`.
   */
  isServerHealthy<const Key extends string>(key: Key, server: WsMsgpackServer): HealthIndicatorResult<Key> {
    const check = this.healthIndicatorService.check(key);
    const status = currentStatus(server.status);
    if (status === undefined) return check.down({ state: 'not listening', message: 'the server has not started listening' });
    if (status !== WsMsgpackStatus.CONNECTED) return check.down({ state: 'closed', message: 'the server is closed (or failed to listen)' });
    if (isDraining(server)) return check.down({ state: 'draining', message: 'the server is shutting down (draining the calls under way)' });
    return check.up({ state: 'listening', connections: server.connectionCount });
  }

  /**
   * The server's link to its cluster engine (the `cluster` option, e.g. Redis): up while
   * cross-replica operations work. Kept apart from {@link isServerHealthy} on purpose: with the
   * engine down a replica still serves its clients' calls (only cross-replica operations fail,
   * fast), so whether this check gates readiness, or only shows on a dashboard, is the app's choice.
   *
   * The result is `{ [key]: { status: 'up', state: 'ready', replica } }`, or
   * `{ [key]: { status: 'down', state: 'connecting' | 'down' | 'closed' | 'no cluster', replica?, message } }`.
   *
   * @param key The key of the result (e.g. `'cluster'`).
   * @param server The `WsMsgpackServer` created with the `cluster` option.
   */
  isClusterHealthy<const Key extends string>(key: Key, server: WsMsgpackServer): HealthIndicatorResult<Key> {
    const check = this.healthIndicatorService.check(key);
    const cluster = server.cluster;
    if (!cluster) return check.down({ state: 'no cluster', message: 'the server has no cluster option' });
    const { status, replica } = cluster;
    if (status === 'ready') return check.up({ state: status, replica });
    const message =
      status === 'down'
        ? 'the cluster engine is unreachable: cross-replica operations fail with UNAVAILABLE'
        : status === 'connecting'
          ? 'connecting to the cluster engine'
          : 'the cluster link is closed';
    return check.down({ state: status, replica, message });
  }
}

/** The latest value of a status Observable (Nest's is a ReplaySubject(1): it replays synchronously); undefined before the first. */
function currentStatus<S>(status: Observable<S>): S | undefined {
  let value: S | undefined;
  status.subscribe((s) => (value = s)).unsubscribe();
  return value;
}

/** Whether `close()` has started on the server (its drain is under way, or done). */
function isDraining(server: WsMsgpackServer): boolean {
  return server.closing;
}

/** A keep-alive call that does not wait for a reconnect: resolves when answered, rejects within `timeout` (+ slack). */
function ping(client: WsMsgpackClient, timeout: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => {
      sub.unsubscribe();
      reject(new Error(`no answer to the keep-alive call within ${timeout} ms`));
    }, timeout + GUARD_SLACK_MS);
    const sub = client.send<unknown>(PING_PATTERN, new WsMsgpackRecord(null, { timeout, waitForReady: false })).subscribe({
      error: (e: unknown) => {
        clearTimeout(guard);
        reject(e);
      },
      complete: () => {
        clearTimeout(guard);
        resolve();
      },
    });
  });
}
