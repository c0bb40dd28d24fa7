// What the two orchestrators (bench/run.mjs, bench/cluster.mjs) share: their command line, and the
// text and markdown tables they print and write.

/**
 * Parses the orchestrators' arguments: `--quick`, `--build`, `--quiet`, `--cpu-prof`,
 * `--budget=S`, `--rounds=N`, `--only=A,B` (lower-cased), and the list options named in `lists`
 * (`--rows=A,B`, kept as written). `--help` prints `help` and exits 0; anything else exits 2.
 */
export function parseBenchArgs(argv, help, { lists = [] } = {}) {
  const out = { quick: false, build: false, quiet: false, cpuProf: false, only: undefined, rounds: undefined, budget: undefined };
  for (const name of lists) out[name] = undefined;
  const list = (value) =>
    value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  for (const a of argv) {
    const [key, value] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    if (key === '--quick') out.quick = true;
    else if (key === '--build') out.build = true;
    else if (key === '--quiet') out.quiet = true;
    else if (key === '--cpu-prof') out.cpuProf = true;
    else if (key === '--budget') out.budget = Number(value);
    else if (key === '--rounds') out.rounds = Number(value);
    else if (key === '--only') out.only = list(value.toLowerCase());
    else if (key.startsWith('--') && lists.includes(key.slice(2)) && value !== undefined) out[key.slice(2)] = list(value);
    else if (key === '--help' || key === '-h') {
      console.log(help);
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}\n${help}`);
      process.exit(2);
    }
  }
  return out;
}

/** `s` on one line, cut to `n` characters. */
export function short(s, n = 60) {
  const one = String(s).replace(/\s+/g, ' ');
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

/** A plain-text table: `columns` after a "scenario" column, one line per `{ label, cells }`. */
export function textTable(columns, lines) {
  const header = ['scenario', ...columns];
  const all = [header, ...lines.map((l) => [l.label, ...l.cells])];
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmtRow = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [fmtRow(header), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(fmtRow)].join('\n');
}

/** The same table in markdown (numbers right-aligned). */
export function markdownTable(columns, lines) {
  const esc = (s) => s.replace(/\|/g, '\\|');
  return [
    `| scenario | ${columns.join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`,
    ...lines.map((l) => `| ${esc(l.label)} | ${l.cells.map(esc).join(' | ')} |`),
  ].join('\n');
}
