// The optional peer dependency @opentelemetry/api, through the built package (dist/esm and
// dist/cjs), in child processes: an installed copy of the package in a temporary app whose
// node_modules has the package's dependencies and, or not, the OpenTelemetry packages.
//
// - absent: both builds load, a call works, and no trace header is sent;
// - present: both builds find it from the package's own location (the working directory is
//   elsewhere, so the fallback to it cannot be what worked), the trace context travels in the
//   call headers, and a CLIENT and a SERVER span of one trace are exported.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBuilt } from '../support/dist.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** What the package needs at run time (its dependencies and peers), linked from this checkout. */
const RUNTIME = ['@nestjs/common', '@nestjs/core', '@nestjs/microservices', 'rxjs', 'reflect-metadata', 'ws', '@msgpack/msgpack'];
/** The OpenTelemetry packages the "present" app uses (the API, and the SDK as an app registers it). */
const OTEL = ['@opentelemetry/api', '@opentelemetry/sdk-trace-base', '@opentelemetry/core', '@opentelemetry/context-async-hooks'];

/**
 * The app: one server handler echoing the call headers, one client call; prints a JSON line
 * with the headers the handler got and the exported spans (when OpenTelemetry is there).
 * `LOAD(id)` is `require` (CommonJS) or `await import` (ES module).
 */
function appSource(kind: 'cjs' | 'esm'): string {
  const load = kind === 'cjs' ? 'require' : 'await import';
  const body = `
  const lib = ${load}('nestjs-ws-msgpack');
  const { firstValueFrom, timeout } = ${load}('rxjs');
  let otel;
  try {
    const api = ${load}('@opentelemetry/api');
    const sdk = ${load}('@opentelemetry/sdk-trace-base');
    const { W3CTraceContextPropagator } = ${load}('@opentelemetry/core');
    const { AsyncLocalStorageContextManager } = ${load}('@opentelemetry/context-async-hooks');
    const exporter = new sdk.InMemorySpanExporter();
    const provider = new sdk.BasicTracerProvider({ spanProcessors: [new sdk.SimpleSpanProcessor(exporter)] });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    api.trace.setGlobalTracerProvider(provider);
    otel = { exporter, provider };
  } catch (e) {
    if (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_MODULE_NOT_FOUND') throw e;
  }
  const server = new lib.WsMsgpackServer({ port: 0, host: '127.0.0.1' });
  server.addHandler('echo', async (_data, ctx) => ({ ...ctx.getHeaders() }), false);
  await new Promise((resolve, reject) => server.listen((err) => (err ? reject(err) : resolve())));
  const client = new lib.WsMsgpackClient({ url: 'ws://127.0.0.1:' + server.address().port });
  try {
    const headers = await firstValueFrom(client.send('echo', null).pipe(timeout(5000)));
    let spans = [];
    if (otel) {
      for (let i = 0; i < 100 && otel.exporter.getFinishedSpans().length < 2; i++) await new Promise((r) => setTimeout(r, 10));
      spans = otel.exporter.getFinishedSpans().map((s) => ({
        name: s.name, kind: s.kind, traceId: s.spanContext().traceId, spanId: s.spanContext().spanId,
        parent: s.parentSpanContext && s.parentSpanContext.spanId, scope: s.instrumentationScope.name, version: s.instrumentationScope.version,
      }));
    }
    console.log(JSON.stringify({ otel: !!otel, headers, spans }));
  } finally {
    await client.close();
    await server.close();
    if (otel) await otel.provider.shutdown();
  }`;
  return kind === 'cjs' ? `'use strict';\n(async () => {${body}\n})().catch((e) => { console.error(e); process.exit(1); });\n` : `${body}\n`;
}

interface AppResult {
  otel: boolean;
  headers: Record<string, unknown>;
  spans: { name: string; kind: number; traceId: string; spanId: string; parent?: string; scope: string; version?: string }[];
}

function run(script: string, cwd: string): Promise<AppResult> {
  return new Promise((resolve, reject) => {
    // No NODE_OPTIONS/NODE_PATH of the test runner's: the child resolves as an app would.
    const env = { ...process.env, NODE_OPTIONS: '', NODE_PATH: '' };
    execFile(process.execPath, [script], { cwd, env, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${script} failed: ${err.message}\n${stderr}`));
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as AppResult);
      } catch {
        reject(new Error(`${script} printed no result: ${stdout}\n${stderr}`));
      }
    });
  });
}

/** A temporary app: node_modules/nestjs-ws-msgpack (a copy of package.json + dist), the runtime packages linked, and `extra` linked. */
function makeApp(base: string, name: string, extra: readonly string[]): string {
  const app = join(base, name);
  const pkg = join(app, 'node_modules', 'nestjs-ws-msgpack');
  mkdirSync(pkg, { recursive: true });
  cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
  cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
  for (const dep of [...RUNTIME, ...extra]) {
    const target = join(app, 'node_modules', dep);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(root, 'node_modules', dep), target, 'dir');
  }
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `tracing-${name}`, private: true }));
  writeFileSync(join(app, 'app.cjs'), appSource('cjs'));
  writeFileSync(join(app, 'app.mjs'), appSource('esm'));
  return app;
}

describe('the optional @opentelemetry/api through the built package (ESM and CJS)', () => {
  let base: string;
  let absent: string;
  let present: string;
  /** A working directory with no node_modules: resolving from it finds nothing. */
  let elsewhere: string;

  beforeAll(() => {
    ensureBuilt();
    base = mkdtempSync(join(tmpdir(), 'wsmp-tracing-'));
    absent = makeApp(base, 'absent', []);
    present = makeApp(base, 'present', OTEL);
    elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere);
  }, 150_000);

  afterAll(() => {
    if (base) rmSync(base, { recursive: true, force: true });
  });

  for (const kind of ['cjs', 'esm'] as const) {
    it(`${kind}: without @opentelemetry/api the package loads, calls work, no trace header is sent`, async () => {
      const result = await run(join(absent, `app.${kind === 'cjs' ? 'cjs' : 'mjs'}`), absent);
      expect(result).toEqual({ otel: false, headers: {}, spans: [] });
    });

    it(`${kind}: with @opentelemetry/api (found from the package, not the working directory) one trace spans both sides`, async () => {
      const result = await run(join(present, `app.${kind === 'cjs' ? 'cjs' : 'mjs'}`), elsewhere);
      expect(result.otel).toBe(true);
      const client = result.spans.find((s) => s.kind === 2); // SpanKind.CLIENT
      const server = result.spans.find((s) => s.kind === 1); // SpanKind.SERVER
      expect(client).toMatchObject({ name: 'echo', scope: 'nestjs-ws-msgpack', version: expect.any(String) });
      expect(server).toMatchObject({ name: 'echo', traceId: client!.traceId, parent: client!.spanId });
      expect(result.headers).toEqual({ traceparent: `00-${client!.traceId}-${client!.spanId}-01` });
    });
  }
});
