/**
 * The option tables of the guides state the defaults the code has (issue 17.3): the limits table
 * of docs/guides/security.md against DEFAULT_LIMITS and DEFAULT_DECODER_LIMITS, the client
 * options table of docs/guides/client.md against CLIENT_DEFAULTS and DEFAULT_RECONNECT, the server
 * options table of docs/guides/server.md against SERVER_DEFAULTS. A default
 * changed in one place and not the other fails here.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULT_LIMITS } from '../../src/connection/options.js';
import { DEFAULT_DECODER_LIMITS } from '../../src/protocol/codec.js';
import { SERVER_DEFAULTS } from '../../src/server/options.js';
import { CLIENT_DEFAULTS } from '../../src/session/options.js';
import { DEFAULT_RECONNECT } from '../../src/session/session.js';

const guide = (name: string): string => readFileSync(fileURLToPath(new URL(`../../docs/guides/${name}`, import.meta.url)), 'utf8');

/** The rows of the Markdown tables whose header is `| option | default | meaning |`: option names → default cell. */
function optionTable(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^\| option \| default \| meaning \|/.test(lines[i]!)) continue;
    for (let j = i + 2; j < lines.length && lines[j]!.startsWith('|'); j++) {
      const [, names, defaults] = lines[j]!.split('|').map((c) => c.trim());
      const nameList = [...names!.matchAll(/`([A-Za-z.]+)`/g)].map((m) => m[1]!);
      const values = defaults!.split(' / ').map((v) => v.trim());
      nameList.forEach((n, k) => rows.set(n, values.length === nameList.length ? values[k]! : defaults!));
    }
  }
  return rows;
}

/** A documented default as a number: "16 MiB", "1,000,000", "30,000 ms", "`10000`"; or the text ("`'error'`", "`false`"). */
function parse(cell: string): number | string {
  const s = cell.replace(/`/g, '').trim();
  const m = /^([\d,.]+)\s*(KiB|MiB|GiB|ms|s)?$/.exec(s);
  if (!m) return s.replace(/^'|'$/g, '');
  const n = Number(m[1]!.replace(/,/g, ''));
  const unit = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, ms: 1, s: 1000 }[m[2] as 'KiB'] ?? 1;
  return n * unit;
}

describe('the option tables of the guides state the defaults of the code', () => {
  const limits = optionTable(guide('security.md'));
  it.each(Object.entries({ ...DEFAULT_LIMITS, ...DEFAULT_DECODER_LIMITS }).filter(([k]) => !['keepAliveInterval', 'keepAliveTimeout'].includes(k)))(
    'security.md limits: %s = %p',
    (name, value) => {
      expect(limits.has(name)).toBe(true);
      expect(parse(limits.get(name)!)).toEqual(value);
    },
  );

  const client = optionTable(guide('client.md'));
  it.each(Object.entries(CLIENT_DEFAULTS))('client.md options: %s = %p', (name, value) => {
    expect(client.has(name)).toBe(true);
    expect(parse(client.get(name)!)).toEqual(typeof value === 'boolean' ? String(value) : value);
  });

  const server = optionTable(guide('server.md'));
  it.each(Object.entries(SERVER_DEFAULTS))('server.md options: %s = %p', (name, value) => {
    expect(server.has(name)).toBe(true);
    expect(parse(server.get(name)!)).toEqual(value);
  });

  it('client.md: the reconnect defaults written out are DEFAULT_RECONNECT', () => {
    const cell = [...client.entries()].find(([k]) => k === 'reconnect')![1];
    expect(cell).toBe('`true`');
    const row = guide('client.md')
      .split('\n')
      .find((l) => l.startsWith('| `reconnect` |'))!;
    const { initialDelay, maxDelay, factor, maxAttempts } = DEFAULT_RECONNECT;
    expect(row).toContain(`{ initialDelay: ${initialDelay}, maxDelay: ${maxDelay}, factor: ${factor}, maxAttempts: ${maxAttempts} }`);
  });
});
