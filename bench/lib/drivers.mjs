// Scenario drivers, run in the process that makes the calls: the client process, or for the
// server→client scenarios the server process (over the row's callPeer() adapter, which has echo
// and streamSync). They only use the row adapter's methods:
//   echo(obj) → Promise<obj>          bin(buffer) → Promise<bytes>
//   stream(count), streamSync(count) → Promise<received>  ticks(tag, after) → Promise<{ tUnsub, received }>
//   slow(tag, limit, durationMs) → Promise<{ consumed }>   close() → Promise
import { isDeepStrictEqual } from 'node:util';
import { now } from './clock.mjs';
import { SMALL, makeBinary } from './fixtures.mjs';
import { MemSampler } from './mem.mjs';

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

function checkEcho(result) {
  // gRPC (proto3) and JSON may return a fresh object; only the values matter.
  if (!isDeepStrictEqual({ ...result }, { ...SMALL })) throw new Error(`echo returned ${JSON.stringify(result)}`);
}

/** Sequential echo calls for `ms`; returns each call's latency. */
async function sequential(a, ms) {
  const lat = [];
  const end = performance.now() + ms;
  for (;;) {
    const s = performance.now();
    if (s >= end) break;
    await a.echo(SMALL);
    lat.push(performance.now() - s);
  }
  return lat;
}

/** (1) Sequential unary echo for `durationMs` (after `warmupMs`): calls/s, p50 and p99 latency. */
export async function unary(a, { durationMs, warmupMs }) {
  checkEcho(await a.echo(SMALL));
  await sequential(a, warmupMs);
  const t0 = performance.now();
  const lat = Float64Array.from(await sequential(a, durationMs));
  const elapsed = performance.now() - t0;
  lat.sort();
  return { callsPerSec: (lat.length * 1000) / elapsed, calls: lat.length, p50Ms: percentile(lat, 50), p99Ms: percentile(lat, 99) };
}

/** Keeps `width` echo calls outstanding until `ms` have passed; resolves with the calls completed. */
async function slidingWindow(a, ms, width) {
  const end = performance.now() + ms;
  let inFlight = 0;
  let done = 0;
  await new Promise((resolve, reject) => {
    const next = () => {
      inFlight++;
      a.echo(SMALL).then(() => {
        inFlight--;
        done++;
        if (performance.now() < end) next();
        else if (inFlight === 0) resolve();
      }, reject);
    };
    for (let i = 0; i < width; i++) next();
  });
  return done;
}

/** (2) A sliding window keeping `width` calls outstanding on one connection for `durationMs`: calls/s. */
export async function inflight(a, { durationMs, warmupMs, width }) {
  await slidingWindow(a, warmupMs, width);
  const t0 = performance.now();
  const calls = await slidingWindow(a, durationMs, width);
  return { callsPerSec: (calls * 1000) / (performance.now() - t0), calls };
}

/**
 * (3)-(6) One response stream of `count` items: items/s, and the count received is checked.
 * `call` picks the server handler: 'streamSync' (a synchronous Observable over in-memory data) or
 * 'stream' (ws-msgpack: an async generator; TCP, gRPC: an asynchronous push Observable).
 */
export async function stream(a, { count, warmup, call = 'stream' }) {
  const run = (n) => a[call](n);
  if (warmup) {
    const got = await run(warmup);
    if (got !== warmup) return { itemsPerSec: NaN, received: got, expected: warmup, wrongCount: true };
  }
  const t0 = performance.now();
  const received = await run(count);
  const elapsed = performance.now() - t0;
  return { itemsPerSec: (received * 1000) / elapsed, received, expected: count, wrongCount: received !== count, elapsedMs: elapsed };
}

let binaryPayload;
function sameBytes(result, expected) {
  if (!(result instanceof Uint8Array)) return false;
  return Buffer.from(result.buffer, result.byteOffset, result.byteLength).equals(expected);
}

/** (5) Sequential echo of `size` bytes: MB/s (10^6 bytes of payload echoed per second), bytes checked. */
export async function binary(a, { size, calls, warmup }) {
  if (binaryPayload?.length !== size) binaryPayload = makeBinary(size);
  const buf = binaryPayload;
  let intact = true;
  let got;
  for (let i = 0; i < warmup; i++) {
    got = await a.bin(buf);
    if (!sameBytes(got, buf)) intact = false;
  }
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) {
    got = await a.bin(buf);
    if (!sameBytes(got, buf)) intact = false;
  }
  const elapsed = performance.now() - t0;
  const what =
    got instanceof Uint8Array
      ? `${got.constructor.name}(${got.byteLength})`
      : typeof got === 'object' && got
        ? `object with keys ${Object.keys(got).slice(0, 3).join(',')}`
        : typeof got;
  return { mbPerSec: (size * calls) / 1000 / elapsed, intact, received: what };
}

/** (6) Subscribe to an endless stream, unsubscribe after `after` items (the orchestrator asks the server when it stopped). */
export async function cancel(a, { tag, after }) {
  const r = await a.ticks(tag, after);
  return { ...r, clientNow: now() };
}

/** (7) Slow consumer: ~1 item/ms for `durationMs`, then stop; the client's own memory growth too. */
export async function slow(a, { tag, limit, durationMs }) {
  const mem = new MemSampler();
  const { consumed } = await a.slow(tag, limit, durationMs);
  const m = mem.stop();
  return { consumed, clientRssGrowth: m.rssGrowth, clientHeapGrowth: m.heapGrowth };
}

/** (8) Opens `count` client instances (one connection each), `batch` at a time, each checked with one echo. */
export async function openMany(connect, count, batch) {
  const out = [];
  try {
    for (let i = 0; i < count; i += batch) {
      const group = await Promise.all(
        Array.from({ length: Math.min(batch, count - i) }, async () => {
          const a = await connect();
          checkEcho(await a.echo(SMALL));
          return a;
        }),
      );
      out.push(...group);
    }
  } catch (e) {
    await Promise.allSettled(out.map((a) => a.close()));
    throw new Error(`opened ${out.length} of ${count} connections: ${e?.message ?? e}`, { cause: e });
  }
  return out;
}

/** (8) Every connection calls sequentially for `durationMs`: total calls/s. */
export async function runMany(adapters, { durationMs }) {
  const end = performance.now() + durationMs;
  let calls = 0;
  const t0 = performance.now();
  await Promise.all(
    adapters.map(async (a) => {
      while (performance.now() < end) {
        await a.echo(SMALL);
        calls++;
      }
    }),
  );
  return { callsPerSec: (calls * 1000) / (performance.now() - t0), calls };
}
