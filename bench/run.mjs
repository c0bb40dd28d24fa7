#!/usr/bin/env node
// Benchmark harness: nestjs-ws-msgpack against Nest's TCP and gRPC transports and a raw
// ws + msgpack baseline. See bench/README.md.
//
//   npm run bench                       full run (5 rounds, about 12 minutes)
//   npm run bench -- --quick            CI smoke run (under 60 s, exits 0 unless ws-msgpack or raw fail)
//   npm run bench -- --only=unary,cancel --rows=ws-msgpack,raw
//
// This process only orchestrates: every row runs its server and its client in two separate child
// processes (lib/server-host.mjs, lib/client-host.mjs). The client process makes the calls and
// measures them, except in the server→client scenarios (s2c-*), where the server process does.
// Nothing here asserts timings.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allExited, Host, killAll } from './lib/proc.mjs';
import { ensureDist as ensureBuilt, machine as machineInfo } from './lib/env.mjs';
import { now } from './lib/clock.mjs';
import { markdownTable, parseBenchArgs, short, textTable } from './lib/cli.mjs';
import { fmt, median, num, ratioText } from './lib/stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
const ALL_ROWS = ['ws-msgpack', 'nest-tcp', 'nest-grpc', 'raw'];
const BASELINE = 'raw';
/** Rows whose failures (errors, wrong counts, mangled bytes, a producer that never stops) fail the run. */
const MUST_PASS = ['ws-msgpack', 'raw'];
/** Rows whose server can call handlers its clients expose (the server→client scenarios). */
const SERVER_CALLS = ['ws-msgpack'];

// ------------------------------------------------------------------------------------ arguments

const HELP = `usage: npm run bench -- [--quick] [--only=SCENARIO,...] [--rows=ROW,...] [--rounds=N] [--build] [--quiet]

  --quick     small sizes, 1-2 rounds, under 60 s (the CI smoke test)
  --only=     scenarios: ${'unary,inflight,sync100k,sync1m,stream100k,stream1m,binary,cancel,slow,conns,s2c-unary,s2c-inflight,s2c-sync100k'}
              (or their numbers 1-13); an s2c-* scenario is compared with its counterpart only if both run
  --rows=     rows: ${ALL_ROWS.join(',')}
  --rounds=N  rounds for every scenario (default: 5 full, 1-2 quick)
  --build     run \`npm run build\` first (otherwise only checks that dist/ exists and is newer than src/)
  --quiet     do not echo the children's stderr
  --budget=S  total time limit in seconds (default 57 quick, 1500 full); no new measurement starts
              after 77% of it, and one still running near the end is cut off and reported as skipped
  --cpu-prof  write V8 CPU profiles of every child to .bench-out/ (open them in Chrome DevTools)`;

const args = parseBenchArgs(process.argv.slice(2), HELP, { lists: ['rows'] });
const QUICK = args.quick;
const rows = args.rows ?? ALL_ROWS;
for (const r of rows) {
  if (!ALL_ROWS.includes(r)) {
    console.error(`unknown row ${r} (rows: ${ALL_ROWS.join(', ')})`);
    process.exit(2);
  }
}

// ------------------------------------------------------------------------------------ scenarios

const rate = (unit) => fmt.rate(unit);
const count = (n) => num(n);

/**
 * Each scenario: how to measure it (`kind`), its parameters in full / quick mode, and the metrics
 * it reports (one table line each). `lower: true` marks a metric where lower is better; `ratio:
 * false` one whose ratio to raw is not meaningful (memory growth, counts).
 */
function defineScenarios(q) {
  // `call` 'streamSync': every row's handler returns a synchronous Observable over in-memory data
  // (what Nest users write); 'stream': ws-msgpack's async generator, the others' async push source.
  const stream = (name, call, n, warmup, rounds, timeoutMs) => ({
    name,
    kind: 'run',
    driver: 'stream',
    rounds,
    timeoutMs,
    params: { call, count: n, warmup },
    title:
      call === 'streamSync'
        ? `response stream of ${count(n)} {i, name}, sync Observable`
        : `response stream of ${count(n)} {i, name}, async generator (TCP, gRPC: async Observable)`,
    metrics: [{ label: 'items/s', value: (r) => r.itemsPerSec, format: rate('/s'), perTimeout: n }],
  });
  const list = [
    {
      name: 'unary',
      kind: 'run',
      driver: 'unary',
      rounds: q ? 2 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: { durationMs: q ? 400 : 2000, warmupMs: q ? 200 : 700 },
      title: 'unary echo, sequential',
      metrics: [
        { label: 'calls/s', value: (r) => r.callsPerSec, format: rate('/s') },
        { label: 'p50 latency', value: (r) => r.p50Ms, format: fmt.ms, lower: true },
        { label: 'p99 latency', value: (r) => r.p99Ms, format: fmt.ms, lower: true },
      ],
    },
    {
      name: 'inflight',
      kind: 'run',
      driver: 'inflight',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: { durationMs: q ? 400 : 2000, warmupMs: q ? 200 : 700, width: 100 },
      title: '100 calls in flight, one connection',
      metrics: [{ label: 'calls/s', value: (r) => r.callsPerSec, format: rate('/s') }],
    },
    // Quick sizes are small: four stream scenarios must fit the CI budget, and the TCP and gRPC rows
    // need over a second for 30,000 items (TCP's sync streams grow faster than linearly).
    stream('sync100k', 'streamSync', q ? 10_000 : 100_000, q ? 2000 : 20_000, q ? 1 : 5, q ? 15_000 : 60_000),
    stream('sync1m', 'streamSync', q ? 30_000 : 1_000_000, q ? 0 : 50_000, q ? 1 : 3, q ? 15_000 : 60_000),
    stream('stream100k', 'stream', q ? 10_000 : 100_000, q ? 2000 : 20_000, q ? 1 : 5, q ? 15_000 : 60_000),
    stream('stream1m', 'stream', q ? 30_000 : 1_000_000, q ? 0 : 50_000, q ? 1 : 3, q ? 15_000 : 60_000),
    {
      name: 'binary',
      kind: 'run',
      driver: 'binary',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: { size: 1 << 20, calls: q ? 8 : 40, warmup: q ? 2 : 5 },
      title: '1 MiB binary echo, sequential',
      metrics: [{ label: 'MB/s', value: (r) => r.mbPerSec, format: rate(' MB/s') }],
    },
    {
      name: 'cancel',
      kind: 'cancel',
      rounds: q ? 1 : 5,
      params: { after: 20, repeats: q ? 3 : 5, stopWaitMs: q ? 1000 : 2000 },
      title: 'cancel an endless stream after 20 items',
      metrics: [{ label: 'time until the producer stops', value: (r) => r.stopMs, format: fmt.ms, lower: true }],
    },
    {
      name: 'slow',
      kind: 'slow',
      fresh: true,
      rounds: q ? 1 : 5,
      params: { durationMs: q ? 600 : 3000, limit: q ? 20_000 : 200_000 },
      title: 'slow consumer (~1 item/ms) of 1 KiB items',
      metrics: [
        { label: 'server peak RSS growth', value: (r) => r.serverRssGrowth, format: fmt.mb, lower: true, ratio: false },
        { label: 'items produced ahead of the consumer', value: (r) => r.ahead, format: count, lower: true, ratio: false },
        { label: 'client peak RSS growth', value: (r) => r.clientRssGrowth, format: fmt.mb, lower: true, ratio: false },
      ],
    },
    {
      name: 'conns',
      kind: 'conns',
      fresh: true,
      rounds: q ? 1 : 5,
      params: { count: q ? 200 : 1000, batch: 50, durationMs: q ? 600 : 3000 },
      title: `${count(q ? 200 : 1000)} connections, one client instance each`,
      metrics: [
        { label: 'calls/s', value: (r) => r.callsPerSec, format: rate('/s') },
        { label: 'server heap + buffers per connection', value: (r) => r.serverHeapPerConn, format: fmt.kib, lower: true, ratio: false },
        { label: 'server RSS growth, all connected', value: (r) => r.serverRssConnected, format: fmt.mb, lower: true, ratio: false },
      ],
    },
  ];
  // Server→client: the same measurement as `base` (driver, parameters, rounds, timeout, metrics),
  // but the server process makes the calls to handlers the client app exposes, and measures them.
  // Each is measured next to `base` on the same row in every round (see main()); the ws-msgpack
  // cell also shows the median of the per-round ratios to `base` ("× c→s"). Appended to the list,
  // so that scenarios 1-10 keep their numbers; the table shows each right below its counterpart.
  const serverToClient = (baseName) => {
    const base = list.find((s) => s.name === baseName);
    return {
      ...base,
      name: `s2c-${base.name}`,
      caller: 'server',
      counterpart: base.name,
      supported: SERVER_CALLS,
      na: 'no server-initiated calls',
      title: `${base.title}, server→client`,
      // Quick mode: one round (it is a smoke test; the ratio needs the full run's rounds anyway).
      rounds: q ? 1 : base.rounds,
    };
  };
  list.push(serverToClient('unary'), serverToClient('inflight'), serverToClient('sync100k'));
  return list;
}

let scenarios = defineScenarios(QUICK);
if (args.only) {
  const wanted = new Set(args.only.map((s) => (/^\d+$/.test(s) ? scenarios[Number(s) - 1]?.name : s)));
  for (const w of wanted) {
    if (!scenarios.some((s) => s.name === w)) {
      console.error(`unknown scenario ${w} (scenarios: ${scenarios.map((s) => s.name).join(', ')})`);
      process.exit(2);
    }
  }
  scenarios = scenarios.filter((s) => wanted.has(s.name));
}
if (args.rounds) for (const s of scenarios) s.rounds = args.rounds;

// ------------------------------------------------------------------------------------ time limits

const START = performance.now();
/** After this, no new measurement starts (the rest are reported as skipped). */
const SOFT_BUDGET_MS = args.budget ? args.budget * 770 : QUICK ? 44_000 : 15 * 60_000;
/** The watchdog: past this the run is cut short, children killed, partial results written, exit 1. */
const HARD_LIMIT_MS = args.budget ? args.budget * 1000 : QUICK ? 57_000 : 25 * 60_000;
const elapsedMs = () => performance.now() - START;
/** A measurement still running this long before the hard limit is cut off (see withCutoff). */
const CUTOFF_MARGIN_MS = 5000;

// ------------------------------------------------------------------------------------ environment

const ensureDist = () => ensureBuilt(ROOT, { build: args.build });
const machine = () => machineInfo(ROOT, ['nestjs-ws-msgpack', '@nestjs/core', '@nestjs/microservices', 'ws', '@msgpack/msgpack', '@grpc/grpc-js', '@grpc/proto-loader', 'rxjs']);

// ------------------------------------------------------------------------------------ processes

const hostOptions = {
  cwd: ROOT,
  onStderr: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  execArgv: args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, '.bench-out')}`, '--cpu-prof-name={name}.cpuprofile'] : [],
};
const pairs = new Map(); // row → { server, client, dirty }

async function startPair(row) {
  const server = Host.start('server', row, hostOptions);
  const client = Host.start('client', row, hostOptions);
  const [s, c] = await Promise.allSettled([server, client]);
  if (s.status === 'rejected' || c.status === 'rejected') {
    if (s.status === 'fulfilled') s.value.kill();
    if (c.status === 'fulfilled') c.value.kill();
    throw s.status === 'rejected' ? s.reason : c.reason;
  }
  const pair = { row, server: s.value, client: c.value, dirty: false, peerId: undefined };
  try {
    // peerId: the server's id for the client's main connection (rows that expose client handlers).
    ({ peerId: pair.peerId } = await pair.client.request('connect', { port: pair.server.port }, 30_000));
  } catch (e) {
    killPair(pair);
    throw e;
  }
  return pair;
}

function killPair(pair) {
  if (!pair) return;
  // A graceful exit first (a CPU profile is only written then), SIGKILL if that takes over 2 s.
  pair.server.stop();
  pair.client.stop();
  if (pairs.get(pair.row) === pair) pairs.delete(pair.row);
}

function killAllPairs() {
  for (const p of [...pairs.values()]) killPair(p);
}

/** The row's long-lived pair, restarted when it died or was left dirty (a producer still running). */
async function getPair(row) {
  const p = pairs.get(row);
  if (p && !p.dirty && !p.server.exited && !p.client.exited) return p;
  killPair(p);
  const fresh = await startPair(row);
  pairs.set(row, fresh);
  return fresh;
}

// ------------------------------------------------------------------------------------ measurements

/**
 * One driver run in the process that makes the calls: the client (client→server), or for the
 * server→client scenarios the server, calling the client's main connection (`peerId`).
 */
async function measureRun(sc, row) {
  const p = await getPair(row);
  try {
    await Promise.all([p.server.request('gc', {}, 10_000), p.client.request('gc', {}, 10_000)]);
    if (sc.caller === 'server') return await p.server.request('run', { scenario: sc.driver, params: sc.params, peerId: p.peerId }, sc.timeoutMs);
    return await p.client.request('run', { scenario: sc.driver, params: sc.params }, sc.timeoutMs);
  } catch (e) {
    p.dirty = true;
    throw e;
  }
}

async function measureCancel(sc, row, round) {
  const { after, repeats, stopWaitMs } = sc.params;
  const p = await getPair(row);
  const samples = [];
  try {
    for (let k = 0; k < repeats; k++) {
      const tag = `cancel-${row}-${round}-${k}`;
      const r = await p.client.request('run', { scenario: 'cancel', params: { tag, after } }, 15_000);
      const ev = await p.server.waitEvent((m) => m.type === 'probe-stop' && m.tag === tag, r.tUnsub + stopWaitMs - now());
      const rep = await p.server.request('probe', { tag, since: r.tUnsub }, 10_000);
      await p.server.request('forget', { tag }, 10_000);
      if (!ev) {
        killPair(p); // its producer is still running: stop it now, the row restarts when next used
        return { neverStops: true, waitedMs: stopWaitMs, producedAfter: rep.producedAfter, samples };
      }
      samples.push({ stopMs: ev.t - r.tUnsub, producedAfter: rep.producedAfter });
    }
  } catch (e) {
    p.dirty = true;
    throw e;
  }
  return { stopMs: median(samples.map((s) => s.stopMs)), producedAfter: median(samples.map((s) => s.producedAfter)), samples };
}

async function measureSlow(sc, row, round) {
  const { durationMs, limit } = sc.params;
  const p = await startPair(row);
  try {
    const tag = `slow-${row}-${round}`;
    await p.client.request('gc', {}, 10_000);
    await p.server.request('mem-begin', {}, 10_000);
    const r = await p.client.request('run', { scenario: 'slow', params: { tag, limit, durationMs } }, durationMs + 60_000);
    const rep = await p.server.request('probe', { tag }, 10_000);
    const mem = await p.server.request('mem-end', {}, 10_000);
    return {
      consumed: r.consumed,
      produced: rep.produced,
      ahead: rep.produced - r.consumed,
      limit,
      producedAll: rep.produced >= limit,
      serverRssGrowth: mem.rssGrowth,
      serverHeapGrowth: mem.heapGrowth,
      clientRssGrowth: r.clientRssGrowth,
      clientHeapGrowth: r.clientHeapGrowth,
    };
  } finally {
    killPair(p);
  }
}

async function measureConns(sc, row) {
  const { count: n, batch, durationMs } = sc.params;
  const p = await startPair(row);
  try {
    await p.server.request('mem-begin', {}, 10_000);
    const open = await p.client.request('conns-open', { count: n, batch }, QUICK ? 20_000 : 120_000);
    const connected = await p.server.request('mem', { gc: true }, 10_000);
    const run = await p.client.request('conns-run', { durationMs }, durationMs + 60_000);
    const mem = await p.server.request('mem-end', {}, 10_000);
    await p.client.request('conns-close', {}, 20_000).catch(() => {});
    return {
      callsPerSec: run.callsPerSec,
      calls: run.calls,
      openMs: open.openMs,
      serverRssConnected: connected.rss - mem.baseline.rss,
      serverRssPerConn: (connected.rss - mem.baseline.rss) / n,
      // After a full GC: the JS heap plus Buffers/ArrayBuffers (socket read buffers live there).
      serverHeapPerConn: (connected.heapUsed + connected.external - mem.baseline.heapUsed - mem.baseline.external) / n,
      serverPeakRssGrowth: mem.rssGrowth,
    };
  } finally {
    killPair(p);
  }
}

const MEASURE = { run: measureRun, cancel: measureCancel, slow: measureSlow, conns: measureConns };

/** One line of progress per measurement. */
function describe(sc, r) {
  if (r.na) return `n/a: ${r.na}`;
  if (r.skipped) return `skipped (${r.skipped})`;
  if (r.error) return `ERROR ${r.error}`;
  if (r.neverStops) return `never stops (${num(r.producedAfter)} items produced in the ${r.waitedMs} ms after the unsubscribe)`;
  const parts = sc.metrics.map((m) => `${m.label} ${m.format(m.value(r))}`);
  if (r.wrongCount) parts.push(`WRONG COUNT ${num(r.received)} of ${num(r.expected)}`);
  if (r.intact === false) parts.push(`MANGLED (received ${r.received})`);
  if (r.producedAfter !== undefined) parts.push(`${num(r.producedAfter)} items after the unsubscribe`);
  if (r.ahead !== undefined) parts.push(`consumed ${num(r.consumed)}, produced ${num(r.produced)}`);
  if (r.openMs !== undefined) parts.push(`opened in ${num(r.openMs)} ms, server peak RSS ${fmt.mb(r.serverPeakRssGrowth)}`);
  return parts.join(', ');
}

// ------------------------------------------------------------------------------------ summary

/** A result that has a usable value for metric m (errors, skips and wrong counts have none). */
function valueOf(r, m) {
  if (!r || r.na || r.error || r.skipped || r.wrongCount || r.neverStops) return undefined;
  const v = m.value(r);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Medians and ratios per metric and row. `counterpartRounds`: the rounds of the client→server
 * scenario a server→client one is compared with (round k with round k, the same row).
 */
function summarize(sc, roundsData, counterpartRounds) {
  const out = {};
  for (const m of sc.metrics) {
    const perRow = {};
    for (const row of rows) {
      const results = roundsData.map((rd) => rd.results[row]).filter(Boolean);
      const values = results.map((r) => valueOf(r, m)).filter((v) => v !== undefined);
      const ratios =
        m.ratio === false || !rows.includes(BASELINE)
          ? []
          : roundsData
              .map((rd) => {
                const v = valueOf(rd.results[row], m);
                const b = valueOf(rd.results[BASELINE], m);
                return v !== undefined && b ? v / b : undefined;
              })
              .filter((v) => v !== undefined);
      const toCounterpart =
        m.ratio === false || !counterpartRounds
          ? []
          : roundsData
              .map((rd) => {
                const v = valueOf(rd.results[row], m);
                const c = valueOf(counterpartRounds.find((d) => d.round === rd.round)?.results[row], m);
                return v !== undefined && c ? v / c : undefined;
              })
              .filter((v) => v !== undefined);
      perRow[row] = {
        median: median(values),
        ratio: median(ratios),
        ratioToCounterpart: median(toCounterpart),
        na: results.length > 0 && results.every((r) => r.na) ? results[0].na : undefined,
        rounds: results.length,
        failed: results.filter((r) => r.error || r.timedOut).length,
        skipped: results.filter((r) => r.skipped && !r.timedOut).length,
        timedOut: results.find((r) => r.timedOut)?.timeoutMs,
        errors: [...new Set(results.filter((r) => r.error).map((r) => r.error))],
        wrongCount: results.filter((r) => r.wrongCount).map((r) => `${num(r.received)} of ${num(r.expected)}`),
        mangled: results.some((r) => r.intact === false),
        received: results.find((r) => r.intact === false)?.received,
        neverStops: results.filter((r) => r.neverStops),
        producedAfter: median(results.filter((r) => !r.neverStops && !r.error).map((r) => r.producedAfter)),
        producedAll: results.some((r) => r.producedAll),
      };
    }
    out[m.label] = perRow;
  }
  return out;
}

function cellText(sc, m, s) {
  if (!s || s.rounds === 0) return '–';
  if (s.na) return `n/a: ${s.na}`;
  if (s.timedOut && s.median === undefined) {
    const bound = m.perTimeout ? `: < ${m.format(m.perTimeout / (s.timedOut / 1000))}` : '';
    return `timed out after ${s.timedOut / 1000} s${bound}`;
  }
  if (s.skipped === s.rounds) return 'skipped (time budget)';
  if (s.failed === s.rounds - s.skipped) return `error: ${short(s.errors[0])}`;
  if (s.neverStops.length) {
    const after = median(s.neverStops.map((r) => r.producedAfter));
    return `never stops (${num(after)} items in ${s.neverStops[0].waitedMs / 1000} s)`;
  }
  if (s.wrongCount.length && s.median === undefined) return `wrong count: ${s.wrongCount[0]}`;
  let text = m.format(s.median);
  if (m.ratio !== false && rows.includes(BASELINE)) text += ratioText(s.ratio);
  if (s.ratioToCounterpart !== undefined) text += ratioText(s.ratioToCounterpart).replace(/×\)$/, '× c→s)');
  if (sc.name === 'cancel' && s.producedAfter !== undefined) text += `, ${num(s.producedAfter)} item${s.producedAfter === 1 ? '' : 's'} after`;
  if (m.label.startsWith('items produced ahead') && s.producedAll) text += ' (all)';
  if (s.mangled) text = `mangled: ${s.received} (${text})`;
  if (s.wrongCount.length) text += ` [wrong count: ${s.wrongCount[0]}]`;
  if (s.failed) text += ` [${s.failed} of ${s.rounds} rounds failed: ${short(s.errors[0], 40)}]`;
  return text;
}

function tableRows(done) {
  const lines = [];
  for (const { sc, summary } of done) {
    for (const m of sc.metrics) {
      lines.push({
        label: `${sc.title}: ${m.label}${m.lower ? ' ↓' : ''}`,
        cells: rows.map((row) => cellText(sc, m, summary[m.label][row])),
      });
    }
  }
  return lines;
}

function headerLines(info, dist, done) {
  const m = info;
  const rounds = done.map(({ sc }) => `${sc.name} ${sc.rounds}`).join(', ');
  return [
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}; Node ${m.node}; ${m.date}`,
    `Mode: ${QUICK ? 'quick' : 'full'}${args.only ? ` (only ${args.only.join(',')})` : ''}; rounds: ${rounds}`,
    `Code: nestjs-ws-msgpack ${m.versions['nestjs-ws-msgpack']} at ${m.commit ?? '?'}${m.srcChanges ? ' + uncommitted src/ changes' : ''}, dist built ${dist.builtAt}${dist.staleVsSrc ? ' (OLDER THAN src/)' : ''}; @nestjs/microservices ${m.versions['@nestjs/microservices']}, @grpc/grpc-js ${m.versions['@grpc/grpc-js']}, ws ${m.versions.ws}, @msgpack/msgpack ${m.versions['@msgpack/msgpack']}`,
  ];
}

const LEGEND =
  'Median over rounds; (×) = median of the per-round ratios to `raw` (each round runs every row once, in rotated order). ' +
  '↓ = lower is better. Server and client run in separate processes on the same machine.';
const LEGEND_S2C =
  ' server→client: the server process makes the calls (to handlers the client app exposes) and measures them, as the client process does for ' +
  'the client→server scenarios; (× c→s) = median of the per-round ratios to the client→server counterpart, measured on the same row right before or after it (alternately) in each round.';
const legend = () => LEGEND + (done.some(({ sc }) => sc.counterpart) ? LEGEND_S2C : '');

// ------------------------------------------------------------------------------------ main

const done = [];
let info;
let dist;
let finished = false;

function writeResults(partialNote) {
  const lines = tableRows(done);
  const name = QUICK ? 'quick' : args.only || args.rows ? 'partial' : 'latest';
  const dir = path.join(BENCH, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const head = headerLines(info, dist, done);
  const md = ['## Benchmark results', '', ...head.map((h) => `${h}  `), ...(partialNote ? [`**${partialNote}**  `] : []), '', markdownTable(rows, lines), '', legend(), ''].join(
    '\n',
  );
  const json = {
    machine: info,
    dist,
    mode: QUICK ? 'quick' : 'full',
    args: process.argv.slice(2),
    rows,
    baseline: BASELINE,
    durationS: elapsedMs() / 1000,
    note: partialNote,
    scenarios: done.map(({ sc, roundsData, summary }) => ({
      name: sc.name,
      title: sc.title,
      caller: sc.caller ?? 'client',
      counterpart: sc.counterpart,
      params: sc.params,
      rounds: roundsData,
      medians: summary,
    })),
  };
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, `${name}.md`), md);
  console.log(`\n${head.join('\n')}${partialNote ? `\n${partialNote}` : ''}\n\n${textTable(rows, lines)}\n\n${legend()}`);
  console.log(`\nwrote ${path.relative(ROOT, path.join(dir, `${name}.json`))} and ${name}.md (${(elapsedMs() / 1000).toFixed(1)} s)`);
}

/** Failures of the rows that must work: the transport under test and the baseline. */
function mustPassFailures() {
  const out = [];
  for (const { sc, roundsData } of done) {
    for (const rd of roundsData) {
      for (const row of MUST_PASS) {
        const r = rd.results[row];
        if (!r || r.skipped) continue;
        if (r.error) out.push(`${sc.name} round ${rd.round} ${row}: ${r.error}`);
        if (r.wrongCount) out.push(`${sc.name} round ${rd.round} ${row}: received ${r.received} of ${r.expected} items`);
        if (r.intact === false) out.push(`${sc.name} round ${rd.round} ${row}: binary echo came back mangled`);
        if (r.neverStops) out.push(`${sc.name} round ${rd.round} ${row}: the producer did not stop after the unsubscribe`);
      }
    }
  }
  return out;
}

function shutdown(code) {
  killAll();
  process.exit(code);
}

const watchdog = setTimeout(() => {
  if (finished) return;
  console.error(`\nWATCHDOG: the benchmark did not finish within ${HARD_LIMIT_MS / 1000} s; killing the children`);
  killAll();
  try {
    writeResults(`Cut short by the watchdog after ${HARD_LIMIT_MS / 1000} s: incomplete.`);
  } catch (e) {
    console.error('could not write partial results:', e);
  }
  shutdown(1);
}, HARD_LIMIT_MS);

process.on('exit', () => killAll());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    shutdown(130);
  });
}

const CUT = Symbol('cut');

/**
 * Runs a measurement, but gives up on it `ms` from now: its processes are killed and the result is
 * "skipped (time budget)", so the watchdog never has to fire on a merely slow machine.
 */
async function withCutoff(measurement, ms) {
  let timer;
  measurement.catch(() => {}); // settles after the kill below; nobody waits for it then
  const result = await Promise.race([measurement, new Promise((resolve) => (timer = setTimeout(() => resolve(CUT), Math.max(0, ms))))]);
  clearTimeout(timer);
  if (result !== CUT) return result;
  killAll();
  pairs.clear();
  return { skipped: 'time budget' };
}

/** Recomputes an entry's summary (after every measurement, so that the watchdog writes what is known). */
function resummarize(entry) {
  entry.summary = summarize(entry.sc, entry.roundsData, entry.counterpart?.roundsData);
}

/**
 * The scenarios in run order: each one followed by the server→client scenarios that are
 * compared with it (its `counterpart`), as one group whose rounds interleave. A server→client
 * scenario whose counterpart does not run forms a group of its own.
 */
function scenarioGroups(list) {
  const names = new Set(list.map((sc) => sc.name));
  return list.filter((sc) => !sc.counterpart || !names.has(sc.counterpart)).map((sc) => [sc, ...list.filter((c) => c.counterpart === sc.name)]);
}

async function main() {
  dist = ensureDist();
  info = machine();
  console.log(`nestjs-ws-msgpack benchmark (${QUICK ? 'quick' : 'full'}): rows ${rows.join(', ')}; scenarios ${scenarios.map((s) => s.name).join(', ')}`);
  console.log(`${info.cpu}, ${info.cores} cores, Node ${info.node}; benchmarking ${path.relative(ROOT, dist.entry)} (built ${dist.builtAt})\n`);

  // Start the long-lived pairs together: startup is a good part of a quick run.
  if (scenarios.some((s) => !s.fresh)) {
    const started = await Promise.allSettled(rows.map(async (row) => pairs.set(row, await startPair(row))));
    started.forEach((s, i) => s.status === 'rejected' && console.log(`  ${rows[i]}: could not start: ${s.reason?.message}`));
  }

  for (const group of scenarioGroups(scenarios)) {
    if (group[0].fresh) killAllPairs(); // fresh processes per measurement; nothing else running meanwhile
    const entries = [];
    for (const sc of group) {
      const counterpart = entries.find((e) => e.sc.name === sc.counterpart);
      const entry = { sc, roundsData: [], summary: undefined, counterpart };
      entries.push(entry);
      done.push(entry);
      const pairing = counterpart ? `; ${sc.supported.join(', ')} only, each measured next to ${counterpart.sc.name} on the same row and round` : '';
      console.log(`${entry === entries[0] ? '' : 'and '}${sc.title} (${sc.name}, ${sc.rounds} round${sc.rounds === 1 ? '' : 's'}${pairing})`);
    }
    // Round by round, row by row. A server→client scenario is measured right after its
    // client→server counterpart on the same row and in the same round (right before it in rounds
    // 2, 4, …), so that the two see the machine in the same state and neither always goes first.
    for (let round = 0; round < Math.max(...group.map((sc) => sc.rounds)); round++) {
      const order = rows.map((_, i) => rows[(i + round) % rows.length]);
      const active = entries.filter((e) => round < e.sc.rounds);
      const rds = new Map(active.map((e) => [e, { round: round + 1, order, results: {} }]));
      for (const [e, rd] of rds) e.roundsData.push(rd);
      const sequence = round % 2 === 0 ? active : [...active].reverse();
      for (const row of order) {
        for (const entry of sequence) {
          const { sc, roundsData } = entry;
          const rd = rds.get(entry);
          if (sc.supported && !sc.supported.includes(row)) {
            rd.results[row] = { na: sc.na }; // not measured, and not printed
            continue;
          }
          let result;
          const earlier = roundsData.slice(0, -1).find((d) => d.results[row]?.timedOut);
          if (elapsedMs() > SOFT_BUDGET_MS || HARD_LIMIT_MS - CUTOFF_MARGIN_MS - elapsedMs() < 1000) {
            result = { skipped: 'time budget' };
          } else if (earlier) {
            // A row that timed out once is not run again in this scenario: it would only burn the budget.
            result = { skipped: `timed out in round ${earlier.round}`, timedOut: true, timeoutMs: earlier.results[row].timeoutMs };
          } else {
            const t0 = performance.now();
            try {
              result = await withCutoff(MEASURE[sc.kind](sc, row, round), HARD_LIMIT_MS - CUTOFF_MARGIN_MS - elapsedMs());
            } catch (e) {
              result = e?.timeout ? { error: e.message, timedOut: true, timeoutMs: e.timeoutMs } : { error: e?.message ?? String(e) };
              killPair(pairs.get(row));
            }
            result.wallMs = Math.round(performance.now() - t0);
          }
          rd.results[row] = result;
          for (const e of entries) resummarize(e); // a companion's ratios depend on its counterpart's results
          const label = entry === entries[0] ? '' : `${sc.name} `;
          console.log(`  round ${round + 1} ${label}${row.padEnd(10)} ${describe(sc, result)}${result.wallMs !== undefined ? ` [${(result.wallMs / 1000).toFixed(1)} s]` : ''}`);
        }
      }
      for (const e of entries) resummarize(e); // the n/a cells recorded after the last measurement too
    }
  }
  killAllPairs();
  await allExited(3000);
  finished = true;
  clearTimeout(watchdog);
  const skipped = done.some(({ roundsData }) => roundsData.some((rd) => Object.values(rd.results).some((r) => r.skipped === 'time budget')));
  writeResults(skipped ? `Some measurements were skipped: the ${SOFT_BUDGET_MS / 1000} s time budget ran out.` : undefined);
  const failures = mustPassFailures();
  if (failures.length) {
    console.log(`\nFAILED: ${MUST_PASS.join(' and ')} must work in every scenario:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => shutdown(code),
  (e) => {
    console.error('benchmark harness failed:', e);
    shutdown(1);
  },
);
