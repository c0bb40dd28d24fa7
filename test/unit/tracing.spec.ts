// The tracing hooks without an SDK: what a call costs and carries when @opentelemetry/api is
// installed but no tracer provider is registered (the API's no-op), with and without a
// propagator; and the settings. (Spans with the SDK: test/e2e/tracing.e2e.spec.ts; the built
// package with the API present and absent: test/e2e/tracing-package.e2e.spec.ts.)
import { readFileSync } from 'node:fs';
import * as api from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { firstValueFrom, Observable, of } from 'rxjs';
import type { WsMsgpackCallOptions } from '../../src/connection/options.js';
import { configureWsMsgpackTracing } from '../../src/tracing/configure.js';
import { loadOtelApi, packageVersion } from '../../src/tracing/load.js';
import { activeTracing } from '../../src/tracing/tracing.js';
import { patternText, routeKey } from '../../src/protocol/patterns.js';

const REMOTE = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };

afterEach(() => {
  configureWsMsgpackTracing();
  api.propagation.disable();
  api.context.disable();
});

describe('tracing without an SDK (the API is a no-op)', () => {
  it('the optional API is found (from this file, in jest too)', () => {
    const loaded = loadOtelApi();
    expect(loaded).toBeDefined();
    expect(typeof loaded!.trace.getTracer).toBe('function');
    // The instrumentation scope's version is this package's own (found through its self-reference).
    expect(packageVersion()).toBe((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
  });

  it('a call goes through untouched: the same options object reaches the core, the response as it is', async () => {
    const tracing = activeTracing()!;
    const options: WsMsgpackCallOptions = { headers: { a: 1 } };
    let given: WsMsgpackCallOptions | undefined;
    const response = of(42);
    const traced = tracing.clientCall('p', options, (o) => {
      given = o;
      return response;
    });
    expect(await firstValueFrom(traced)).toBe(42);
    expect(given).toBe(options);
  });

  it('a call the peer made starts no span when it carries no trace context', () => {
    expect(activeTracing()!.serverCall('p', {})).toBeUndefined();
    expect(activeTracing()!.serverCall('p', REMOTE)).toBeUndefined(); // no propagator: nothing extracted
  });

  it('with a propagator, an incoming trace passes through: the handler runs in it, and its own calls carry it', async () => {
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const tracing = activeTracing()!;
    const server = tracing.serverCall('p', REMOTE);
    expect(server).toBeDefined();
    const sent = await server!.run(async () => {
      await Promise.resolve();
      let headers: unknown;
      await firstValueFrom(
        tracing.clientCall('downstream', { headers: { x: 'y' } }, (o) => {
          headers = o.headers;
          return of(null);
        }),
      );
      return headers;
    });
    // The no-op span keeps the caller's span context: the same trace and parent go on.
    expect(sent).toEqual({ x: 'y', traceparent: REMOTE.traceparent });
  });

  it('headers that are no strings are ignored by the extraction', () => {
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    expect(activeTracing()!.serverCall('p', { traceparent: 42 })).toBeUndefined();
    expect(activeTracing()!.serverCall('p', { traceparent: [REMOTE.traceparent] })).toBeDefined();
  });

  it('iterate(): nothing starts before the first next(), and return() first means it never does', async () => {
    const tracing = activeTracing()!;
    let started = 0;
    const it = tracing.clientIterate('p', {}, () => {
      started++;
      return (async function* () {
        yield 1;
      })();
    });
    expect(started).toBe(0);
    expect(await it.return!()).toEqual({ value: undefined, done: true });
    expect(await it.next()).toEqual({ value: undefined, done: true });
    expect(started).toBe(0);
    const it2 = tracing.clientIterate<number>('p', {}, () => {
      started++;
      return (async function* () {
        yield 1;
        yield 2;
      })();
    });
    const got: number[] = [];
    for await (const n of it2) got.push(n);
    expect(got).toEqual([1, 2]);
    expect(started).toBe(1);
  });

  it('an error of the response reaches the subscriber unchanged', async () => {
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const boom = new Error('boom');
    const traced = activeTracing()!.clientCall('p', {}, () => new Observable((s) => s.error(boom)));
    await expect(firstValueFrom(traced)).rejects.toBe(boom);
  });
});

describe('configureWsMsgpackTracing', () => {
  it('enabled: false turns tracing off; no argument restores the default', () => {
    expect(activeTracing()).toBeDefined();
    configureWsMsgpackTracing({ enabled: false });
    expect(activeTracing()).toBeUndefined();
    configureWsMsgpackTracing();
    expect(activeTracing()).toBeDefined();
  });

  it('api: the given module is used, not the one this package loads', async () => {
    const injected: unknown[] = [];
    const propagation = { extract: api.propagation.extract.bind(api.propagation), inject: (_ctx: unknown, carrier: unknown) => injected.push(carrier) };
    const given = { ...api, propagation } as unknown as typeof api;
    const call = () => firstValueFrom(activeTracing()!.clientCall('p', { headers: { a: 1 } }, () => of(1)));
    await call(); // the loaded module: the wrapper sees nothing
    expect(injected).toHaveLength(0);
    configureWsMsgpackTracing({ api: given });
    await call();
    expect(injected).toHaveLength(1);
  });

  it('checks its options', () => {
    expect(() => configureWsMsgpackTracing({ enabled: 1 as unknown as boolean })).toThrow(/enabled must be a boolean/);
    expect(() => configureWsMsgpackTracing({ tracerProvider: { getTracer: 1 } as never })).toThrow(/tracerProvider/);
    expect(() => configureWsMsgpackTracing({ api: { trace: {}, context: {}, propagation: {} } })).toThrow(/options\.api/);
  });
});

describe('patternText', () => {
  it('strings as they are, anything else as JSON', () => {
    expect(patternText('a.b')).toBe('a.b');
    expect(patternText({ cmd: 'x', v: 1 })).toBe('{"cmd":"x","v":1}');
    expect(patternText(7)).toBe('7');
    expect(patternText(undefined)).toBe('undefined');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(patternText(circular)).toBe('[object Object]');
  });

  it('routeKey: the same with object keys sorted (one route whatever the order)', () => {
    expect(routeKey({ v: 1, cmd: 'x' })).toBe(routeKey({ cmd: 'x', v: 1 }));
    expect(routeKey({ v: 1, cmd: 'x' })).toBe('{"cmd":"x","v":1}');
    expect(routeKey('a.b')).toBe('a.b');
    expect(routeKey(7)).toBe('7');
  });
});
