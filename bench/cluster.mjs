#!/usr/bin/env node
// Cluster benchmark: replicas of one server on Redis (nestjs-ws-msgpack/redis), each in its own
// process, against the same work on one replica. See bench/README.md#replicas-on-redis.
//
//   npm run bench:cluster                     full run (5 rounds, about 5 minutes on 2 cores)
//   npm run bench:cluster -- --quick          smoke run (small sizes, 1 round, under a minute)
//   npm run bench:cluster -- --only=unary,broadcast --rounds=3
//
// This process only orchestrates. It starts a real redis-server on a free port (lib/redis.mjs),
// three replicas A, B and C (lib/replica-host.mjs: the ws-msgpack row's server with
// `cluster: redisCluster({ url })`), and the clients: for the calls, two client processes
// (lib/client-host.mjs, the ws-msgpack row's client app, exposing its handlers), one connected to
// A and one to B; for the broadcast, three processes of 1,000 receivers in all (lib/peers-host.mjs).
// Replica A makes every call and every broadcast and measures it. Each measurement runs in both
// placements, "one replica" (the client on A itself; all receivers on A) and "across replicas"
// (the client on B: every message through Redis; receivers spread over A, B and C), back to back
// in every round. Nothing here asserts timings.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { allExited, Host, killAll } from './lib/proc.mjs';
import { ensureDist, machine } from './lib/env.mjs';
import { startRedis } from './lib/redis.mjs';
import { now } from './lib/clock.mjs';
import { markdownTable, parseBenchArgs, short, textTable } from './lib/cli.mjs';
import { fmt, median, num, ratioText } from './lib/stats.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BENCH = fileURLToPath(new URL('.', import.meta.url));
/** The two placements of every measurement, and their column titles. */
const PLACEMENTS = ['one', 'across'];
const COLUMNS = { one: 'one replica', across: 'across replicas' };
const REPLICAS = ['a', 'b', 'c'];

// ------------------------------------------------------------------------------------ arguments

const HELP = `usage: npm run bench:cluster -- [--quick] [--only=SCENARIO,...] [--rounds=N] [--build] [--quiet]

  --quick     small sizes, 1 round (a smoke test)
  --only=     scenarios: unary,inflight,sync100k,lookup,broadcast (or their numbers 1-5)
  --rounds=N  rounds for every scenario (default: 5 full, 1 quick)
  --build     run \`npm run build\` first (otherwise only checks that dist/ exists and is newer than src/)
  --quiet     do not echo the children's stderr
  --budget=S  total time limit in seconds (default 120 quick, 1800 full); no new measurement starts
              after 77% of it, and the watchdog stops the run at the limit
  --cpu-prof  write V8 CPU profiles of every child to .bench-out/ (open them in Chrome DevTools)`;

const args = parseBenchArgs(process.argv.slice(2), HELP);
const QUICK = args.quick;

// ------------------------------------------------------------------------------------ scenarios

const rate = (unit) => fmt.rate(unit);

/**
 * Each scenario: how to measure it (`kind`), its parameters in full / quick mode, and its metrics
 * (one table line each; `lower: true` where lower is better). Every metric is measured in both
 * placements; the "across replicas" cell shows the median of the per-round ratios to "one replica".
 */
function defineScenarios(q) {
  const peers = q ? 150 : 1000;
  const broadcasts = q ? 5 : 20;
  const burst = q ? 10 : 50;
  const calls = { durationMs: q ? 400 : 2000, warmupMs: q ? 200 : 700 };
  return [
    {
      name: 'unary',
      kind: 'call',
      driver: 'unary',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: calls,
      title: 'server→client unary echo, sequential',
      metrics: [
        { label: 'calls/s', value: (r) => r.callsPerSec, format: rate('/s') },
        { label: 'p50 latency', value: (r) => r.p50Ms, format: fmt.ms, lower: true },
        { label: 'p99 latency', value: (r) => r.p99Ms, format: fmt.ms, lower: true },
      ],
    },
    {
      name: 'inflight',
      kind: 'call',
      driver: 'inflight',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: { ...calls, width: 100 },
      title: 'server→client, 100 calls in flight to one client',
      metrics: [{ label: 'calls/s', value: (r) => r.callsPerSec, format: rate('/s') }],
    },
    {
      name: 'sync100k',
      kind: 'call',
      driver: 'stream',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 30_000 : 120_000,
      params: { call: 'streamSync', count: q ? 10_000 : 100_000, warmup: q ? 2000 : 20_000 },
      title: `response stream of ${num(q ? 10_000 : 100_000)} {i, name} from a client app's sync Observable to a subscriber on A`,
      metrics: [{ label: 'items/s', value: (r) => r.itemsPerSec, format: rate('/s') }],
    },
    {
      name: 'lookup',
      kind: 'lookup',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 15_000 : 60_000,
      params: calls,
      title: '`await server.cluster.peer(id)`, sequential',
      metrics: [
        // No ratio: a local peer is a Map lookup, so it would only say how cheap that is.
        { label: 'lookups/s', value: (r) => r.lookupsPerSec, format: rate('/s'), ratio: false },
        { label: 'p50 latency', value: (r) => r.p50Ms, format: fmt.ms, lower: true, ratio: false },
      ],
    },
    {
      name: 'broadcast',
      kind: 'broadcast',
      rounds: q ? 1 : 5,
      timeoutMs: q ? 20_000 : 60_000,
      params: { peers, broadcasts, warmup: q ? 1 : 5, burst },
      title: `broadcast to ${num(peers)} peers`,
      metrics: [
        { label: `time until every peer received it (p50 of ${broadcasts})`, value: (r) => r.allReceivedP50Ms, format: fmt.ms, lower: true },
        { label: `${burst} broadcasts in a row: deliveries/s`, value: (r) => r.deliveriesPerSec, format: rate('/s') },
      ],
    },
  ];
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
const HARD_LIMIT_MS = (args.budget ?? (QUICK ? 120 : 1800)) * 1000;
/** After this, no new measurement starts (the rest are reported as skipped). */
const SOFT_BUDGET_MS = HARD_LIMIT_MS * 0.77;
const elapsedMs = () => performance.now() - START;

// ------------------------------------------------------------------------------------ processes

const hostOptions = {
  cwd: ROOT,
  onStderr: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  execArgv: args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ROOT, '.bench-out')}`, '--cpu-prof-name={name}.cpuprofile'] : [],
};

let redis;
let generation = 0;
/** name → { host, port, replica } */
let replicas;
/** { one: { host, peerId } on A, across: { host, peerId } on B } */
let callClients;
/** The three receiver processes of the broadcast. */
let peerHosts;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(check, timeoutMs, what) {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > end) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

/** Replicas A, B, C on Redis (a fresh key prefix each time, so nothing of an earlier start remains). */
async function startReplicas() {
  const prefix = `bench${++generation}`;
  const started = await Promise.all(
    REPLICAS.map(async (name) => {
      const host = await Host.start('replica', name, hostOptions);
      const { port, replica } = await host.request('start', { url: redis.url, prefix }, 30_000);
      return [name, { host, port, replica }];
    }),
  );
  replicas = Object.fromEntries(started);
}

async function startCallClients() {
  const start = async (on) => {
    const host = await Host.start('client', 'ws-msgpack', hostOptions);
    host.name = `client on ${on}`;
    const { peerId } = await host.request('connect', { port: replicas[on].port }, 30_000);
    return { host, peerId };
  };
  const [one, across] = await Promise.all([start('a'), start('b')]);
  callClients = { one, across };
  // Both registered in the cluster's presence (the lookup of the one on B needs its record).
  await until(async () => (await replicas.a.host.request('peers', {}, 10_000)).cluster === 2, 10_000, 'both call clients in presence');
}

function stopCallClients() {
  if (!callClients) return;
  callClients.one.host.stop();
  callClients.across.host.stop();
  callClients = undefined;
}

async function startPeerHosts() {
  peerHosts = await Promise.all(REPLICAS.map((name) => Host.start('peers', name, hostOptions)));
}

function stopAll() {
  stopCallClients();
  for (const h of peerHosts ?? []) h.stop();
  for (const r of Object.values(replicas ?? {})) r.host.stop();
  peerHosts = undefined;
  replicas = undefined;
}

/** After a failed measurement: every process again (redis-server stays). */
async function restart(needs) {
  stopAll();
  await allExited(5000);
  killAll();
  await startReplicas();
  if (needs === 'calls') await startCallClients();
  else await startPeerHosts();
}

async function gcAll() {
  const hosts = [...Object.values(replicas).map((r) => r.host), ...(callClients ? [callClients.one.host, callClients.across.host] : []), ...(peerHosts ?? [])];
  await Promise.all(hosts.map((h) => h.request('gc', {}, 10_000)));
}

// ------------------------------------------------------------------------------------ measurements

/** A driver of drivers.mjs, run by replica A on the client connected to A (one) or to B (across). */
async function measureCall(sc, placement) {
  await gcAll();
  return replicas.a.host.request('run', { scenario: sc.driver, params: sc.params, peerId: callClients[placement].peerId }, sc.timeoutMs);
}

async function measureLookup(sc, placement) {
  await gcAll();
  return replicas.a.host.request('lookup', { ...sc.params, peerId: callClients[placement].peerId }, sc.timeoutMs);
}

/** n receivers in three processes: 334 / 333 / 333 for 1,000. */
const split = (n) => REPLICAS.map((_, i) => Math.floor(n / 3) + (i < n % 3 ? 1 : 0));

/**
 * One broadcast (or `perPeer` in a row) from A to every receiver: resolves with A's t0 and each
 * receiver process's last delivery, or with how many deliveries were missing after `timeoutMs`.
 */
async function broadcastOnce(tag, perPeer, n, timeoutMs) {
  await Promise.all(peerHosts.map((h) => h.request('expect', { tag, perPeer }, 10_000)));
  const sent = await replicas.a.host.request('broadcast', { tag, count: perPeer }, timeoutMs);
  const events = await Promise.all(peerHosts.map((h) => h.waitEvent((m) => m.type === 'received' && m.tag === tag, sent.t0 + timeoutMs - now())));
  let missing = 0;
  if (events.some((e) => !e)) {
    const reports = await Promise.all(peerHosts.map((h) => h.request('report', { tag }, 10_000)));
    missing = n * perPeer - reports.reduce((sum, r) => sum + r.received, 0);
  }
  await Promise.all(peerHosts.map((h) => h.request('forget', { tag }, 10_000)));
  return { sent, missing, last: Math.max(...events.map((e) => e?.last ?? -Infinity)) };
}

async function measureBroadcast(sc, placement, round) {
  const { peers: n, broadcasts, warmup, burst } = sc.params;
  const counts = split(n);
  const targets = placement === 'one' ? ['a', 'a', 'a'] : REPLICAS;
  const expected = Object.fromEntries(REPLICAS.map((r) => [r, counts.reduce((sum, c, i) => sum + (targets[i] === r ? c : 0), 0)]));
  const localPeers = async () => Object.fromEntries(await Promise.all(REPLICAS.map(async (r) => [r, (await replicas[r].host.request('peers', {}, 10_000)).local])));
  const t0 = performance.now();
  await Promise.all(peerHosts.map((h, i) => h.request('open', { port: replicas[targets[i]].port, count: counts[i], batch: 50 }, 120_000)));
  const openMs = performance.now() - t0;
  try {
    await until(async () => JSON.stringify(await localPeers()) === JSON.stringify(expected), 20_000, `the replicas holding ${JSON.stringify(expected)}`);
    // Warm-up: `warmup` single broadcasts and one burst, then a full GC everywhere.
    const lost = (r, perPeer, ms) => r.missing && { error: `${r.missing} of ${n * perPeer} deliveries missing after ${ms / 1000} s`, missing: r.missing };
    for (let k = 0; k < warmup; k++) {
      const r = await broadcastOnce(`${sc.name}-${round}-${placement}-warmup-${k}`, 1, n, 10_000);
      if (r.missing) return lost(r, 1, 10_000);
    }
    const warm = await broadcastOnce(`${sc.name}-${round}-${placement}-warmup-burst`, burst, n, sc.timeoutMs);
    if (warm.missing) return lost(warm, burst, sc.timeoutMs);
    await gcAll();
    // Latency: one broadcast at a time, the next once every receiver has the previous one.
    const samples = [];
    for (let k = 0; k < broadcasts; k++) {
      const r = await broadcastOnce(`${sc.name}-${round}-${placement}-${k}`, 1, n, 10_000);
      if (r.missing) return lost(r, 1, 10_000);
      samples.push(r.last - r.sent.t0);
    }
    // Throughput: `burst` broadcasts in a row (each awaited by A), until the last delivery of the last.
    const b = await broadcastOnce(`${sc.name}-${round}-${placement}-burst`, burst, n, sc.timeoutMs);
    if (b.missing) return lost(b, burst, sc.timeoutMs);
    const burstMs = b.last - b.sent.t0;
    return {
      allReceivedP50Ms: median(samples),
      allReceivedMaxMs: Math.max(...samples),
      samplesMs: samples,
      deliveriesPerSec: (n * burst * 1000) / burstMs,
      burstMs,
      burstPublishedMs: b.sent.tPublished - b.sent.t0,
      replicasReached: b.sent.replicas,
      peersPerReplica: expected,
      openMs,
    };
  } finally {
    await Promise.all(peerHosts.map((h) => h.request('close', {}, 60_000)));
    await until(async () => Object.values(await localPeers()).every((c) => c === 0), 20_000, 'the receivers gone from every replica');
  }
}

const MEASURE = { call: measureCall, lookup: measureLookup, broadcast: measureBroadcast };
/** The processes each kind of scenario needs besides the replicas. */
const NEEDS = { call: 'calls', lookup: 'calls', broadcast: 'peers' };

function describe(sc, r) {
  if (r.skipped) return `skipped (${r.skipped})`;
  if (r.error) return `ERROR ${r.error}`;
  const parts = sc.metrics.map((m) => `${m.label} ${m.format(m.value(r))}`);
  if (r.wrongCount) parts.push(`WRONG COUNT ${num(r.received)} of ${num(r.expected)}`);
  if (r.p99Ms !== undefined && !sc.metrics.some((m) => m.label.startsWith('p99'))) parts.push(`p99 ${fmt.ms(r.p99Ms)}`);
  if (r.allReceivedMaxMs !== undefined) parts.push(`slowest ${fmt.ms(r.allReceivedMaxMs)}, peers ${JSON.stringify(r.peersPerReplica)} opened in ${num(r.openMs)} ms`);
  return parts.join(', ');
}

// ------------------------------------------------------------------------------------ summary

function valueOf(r, m) {
  if (!r || r.error || r.skipped || r.wrongCount) return undefined;
  const v = m.value(r);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Per metric: the median of each placement over the rounds, and the median of the per-round ratios across ÷ one. */
function summarize(sc, roundsData) {
  const out = {};
  for (const m of sc.metrics) {
    const cell = (placement) => {
      const results = roundsData.map((rd) => rd.results[placement]).filter(Boolean);
      return {
        median: median(results.map((r) => valueOf(r, m))),
        rounds: results.length,
        failed: results.filter((r) => r.error).length,
        skipped: results.filter((r) => r.skipped).length,
        errors: [...new Set(results.filter((r) => r.error).map((r) => r.error))],
        wrongCount: results.filter((r) => r.wrongCount).map((r) => `${num(r.received)} of ${num(r.expected)}`),
      };
    };
    const ratios = roundsData
      .map((rd) => {
        const a = valueOf(rd.results.across, m);
        const o = valueOf(rd.results.one, m);
        return a !== undefined && o ? a / o : undefined;
      })
      .filter((v) => v !== undefined);
    out[m.label] = { one: cell('one'), across: { ...cell('across'), ratio: median(ratios) } };
  }
  return out;
}

function cellText(m, s) {
  if (!s || s.rounds === 0) return '–';
  if (s.skipped === s.rounds) return 'skipped (time budget)';
  if (s.failed === s.rounds - s.skipped) return `error: ${short(s.errors[0])}`;
  if (s.wrongCount.length && s.median === undefined) return `wrong count: ${s.wrongCount[0]}`;
  let text = m.format(s.median) + (s.ratio !== undefined && m.ratio !== false ? ratioText(s.ratio) : '');
  if (s.wrongCount.length) text += ` [wrong count: ${s.wrongCount[0]}]`;
  if (s.failed) text += ` [${s.failed} of ${s.rounds} rounds failed: ${short(s.errors[0], 40)}]`;
  return text;
}

function tableRows(done) {
  const lines = [];
  for (const { sc, summary } of done) {
    for (const m of sc.metrics) {
      lines.push({ label: `${sc.title}: ${m.label}${m.lower ? ' ↓' : ''}`, cells: PLACEMENTS.map((p) => cellText(m, summary?.[m.label][p])) });
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
    `Code: nestjs-ws-msgpack ${m.versions['nestjs-ws-msgpack']} at ${m.commit ?? '?'}${m.srcChanges ? ' + uncommitted src/ changes' : ''}, dist built ${dist.builtAt}${dist.staleVsSrc ? ' (OLDER THAN src/)' : ''}; @nestjs/microservices ${m.versions['@nestjs/microservices']}, ioredis ${m.versions.ioredis}, ws ${m.versions.ws}, @msgpack/msgpack ${m.versions['@msgpack/msgpack']}`,
    `Processes: redis-server ${m.redis ?? '?'}, replicas A, B, C, and the clients' processes, all sharing the ${m.cores} cores of this machine; load average before the start ${m.loadavg.map((l) => l.toFixed(2)).join(', ')} (1, 5, 15 min)`,
  ];
}

const LEGEND =
  'Replica A makes every call and broadcast and measures it. **one replica**: the client app is connected to A itself (a local peer); ' +
  'the broadcast receivers are all connected to A. **across replicas**: the client app is connected to B, so every call, item and credit ' +
  'goes A → Redis → B → client and back; the receivers are spread over A, B and C (334/333/333 for 1,000). Median over rounds; ' +
  '(×) = median of the per-round ratios across ÷ one replica (the two placements run back to back in every round, alternating which goes first). ' +
  '↓ = lower is better.';

// ------------------------------------------------------------------------------------ main

const done = [];
let info;
let dist;
let finished = false;

function resultsName() {
  return QUICK ? 'cluster-quick' : args.only ? 'cluster-partial' : 'cluster';
}

function writeResults(note) {
  const lines = tableRows(done);
  const name = resultsName();
  const dir = path.join(BENCH, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const head = headerLines(info, dist, done);
  const md = [
    '## Cluster benchmark results',
    '',
    ...head.map((h) => `${h}  `),
    ...(note ? [`**${note}**  `] : []),
    '',
    markdownTable(
      PLACEMENTS.map((p) => COLUMNS[p]),
      lines,
    ),
    '',
    LEGEND,
    '',
  ].join('\n');
  const json = {
    machine: info,
    dist,
    mode: QUICK ? 'quick' : 'full',
    args: process.argv.slice(2),
    placements: COLUMNS,
    durationS: elapsedMs() / 1000,
    note,
    scenarios: done.map(({ sc, roundsData, summary }) => ({ name: sc.name, title: sc.title, kind: sc.kind, params: sc.params, rounds: roundsData, medians: summary })),
  };
  fs.writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, `${name}.md`), md);
  console.log(
    `\n${head.join('\n')}${note ? `\n${note}` : ''}\n\n${textTable(
      PLACEMENTS.map((p) => COLUMNS[p]),
      lines,
    )}\n\n${LEGEND}`,
  );
  console.log(`\nwrote ${path.relative(ROOT, path.join(dir, `${name}.json`))} and ${name}.md (${(elapsedMs() / 1000).toFixed(1)} s)`);
}

async function shutdown(code) {
  stopAll();
  await allExited(3000);
  killAll();
  await redis?.stop();
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
  void shutdown(1);
}, HARD_LIMIT_MS);

process.on('exit', () => killAll());
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    void shutdown(130);
  });
}

async function main() {
  dist = ensureDist(ROOT, { build: args.build });
  info = machine(ROOT, ['nestjs-ws-msgpack', '@nestjs/core', '@nestjs/microservices', 'ioredis', 'ws', '@msgpack/msgpack', 'rxjs']);
  redis = await startRedis();
  info.redis = redis.version;
  info.loadavg = os.loadavg(); // what else kept the cores busy before (during the run, it counts the benchmark's own processes)
  console.log(`nestjs-ws-msgpack cluster benchmark (${QUICK ? 'quick' : 'full'}): scenarios ${scenarios.map((s) => s.name).join(', ')}`);
  console.log(
    `${info.cpu}, ${info.cores} cores, Node ${info.node}; redis-server ${redis.version} on port ${redis.port}; benchmarking ${path.relative(ROOT, dist.entry)} (built ${dist.builtAt})\n`,
  );
  await startReplicas();

  for (const sc of scenarios) {
    const needs = NEEDS[sc.kind];
    if (needs === 'calls' && !callClients) {
      for (const h of peerHosts ?? []) h.stop();
      peerHosts = undefined;
      await startCallClients();
    } else if (needs === 'peers' && !peerHosts) {
      stopCallClients(); // they are peers too: a broadcast would reach them
      await allExited(3000);
      await startPeerHosts();
    }
    const entry = { sc, roundsData: [], summary: undefined };
    done.push(entry);
    console.log(`${sc.title} (${sc.name}, ${sc.rounds} round${sc.rounds === 1 ? '' : 's'})`);
    for (let round = 0; round < sc.rounds; round++) {
      const order = round % 2 === 0 ? PLACEMENTS : [...PLACEMENTS].reverse();
      const rd = { round: round + 1, order, results: {} };
      entry.roundsData.push(rd);
      for (const placement of order) {
        let result;
        if (elapsedMs() > SOFT_BUDGET_MS) result = { skipped: 'time budget' };
        else {
          const t0 = performance.now();
          try {
            result = await MEASURE[sc.kind](sc, placement, round);
          } catch (e) {
            result = { error: e?.message ?? String(e) };
          }
          result.wallMs = Math.round(performance.now() - t0);
          if (result.error) await restart(needs); // whatever was left running stops here
        }
        rd.results[placement] = result;
        entry.summary = summarize(sc, entry.roundsData);
        console.log(
          `  round ${round + 1} ${COLUMNS[placement].padEnd(15)} ${describe(sc, result)}${result.wallMs !== undefined ? ` [${(result.wallMs / 1000).toFixed(1)} s]` : ''}`,
        );
      }
    }
  }
  stopAll();
  await allExited(5000);
  finished = true;
  clearTimeout(watchdog);
  const skipped = done.some(({ roundsData }) => roundsData.some((rd) => Object.values(rd.results).some((r) => r.skipped)));
  writeResults(skipped ? `Some measurements were skipped: the ${SOFT_BUDGET_MS / 1000} s time budget ran out.` : undefined);
  const failures = done.flatMap(({ sc, roundsData }) =>
    roundsData.flatMap((rd) =>
      Object.entries(rd.results)
        .filter(([, r]) => r.error || r.wrongCount)
        .map(([p, r]) => `${sc.name} round ${rd.round} ${COLUMNS[p]}: ${r.error ?? `received ${r.received} of ${r.expected} items`}`),
    ),
  );
  if (failures.length) {
    console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => shutdown(code),
  (e) => {
    console.error('cluster benchmark failed:', e);
    void shutdown(1);
  },
);
