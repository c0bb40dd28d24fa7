/**
 * The package documents itself, for someone who only has the npm package:
 *
 * - every link of README.md and of the shipped docs resolves: a relative target exists and is in
 *   the packed file list (`npm pack --dry-run`), an #anchor names a heading of its file (GitHub's
 *   slug rules), and a link into the repository (README → sample/, bench/, jest.config.js) names a
 *   file that exists, is not git-ignored, and has the heading it points at. The repository's own
 *   READMEs (bench/, sample/) are checked the same way, as they are read on GitHub;
 * - package.json has `repository`, `homepage` and `bugs`, all naming the repository the README
 *   links to;
 * - the guides under docs/guides/ are shipped, and the README links to each of them;
 * - the code samples marked `<!-- readme-check: dir/file.ts -->`, in the README (the quick start:
 *   the server and the client app, with their import lines) and in every shipped guide (each
 *   guide's main samples: registerAsync, ValidationPipe, the e2e test, ...), compile together as
 *   a consumer's files would, `nestjs-ws-msgpack` (and its `/client`, `/terminus`, `/protocol` and `/redis` subpaths)
 *   mapped to src/. One directory holds them all, so a guide's sample may import a file of the
 *   README's quick start (`./math.controller.js`);
 * - what the server guide says about `server.address()` and `server.unwrap().address()` holds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WsMsgpackServer } from '../../src/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  repository?: { type?: string; url?: string } | string;
  homepage?: string;
  bugs?: { url?: string } | string;
};
const REPO = 'https://github.com/nestjs-ws-msgpack/nestjs-ws-msgpack';
/** Links to files in the repository, as the README writes them: blob/ (files) or tree/ (folders) of main. */
const REPO_FILE = new RegExp(`^${REPO.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/(?:blob|tree)/main/([^#?]+)(?:#(.*))?$`);

// ---------------------------------------------------------------- markdown, as GitHub reads it

/** The text without fenced code blocks and HTML comments (lines kept, so line numbers hold). */
function withoutCode(md: string): string {
  const blank = (m: string): string => m.replace(/[^\n]/g, ' ');
  return md.replace(/<!--[\s\S]*?-->/g, blank).replace(/^( {0,3})(`{3,}|~{3,})[^\n]*\n[\s\S]*?^ {0,3}\2[`~]*[ \t]*$/gm, blank);
}

/** GitHub's heading anchor (github-slugger): lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML tags
    .replace(/`/g, '')
    .replace(/\*+/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a file offers: its headings' slugs (with GitHub's -1, -2 for repeats) and <a id/name>. */
function anchorsOf(md: string): Set<string> {
  const text = withoutCode(md);
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const m of text.matchAll(/^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/gm)) {
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s[^>]*(?:id|name)="([^"]+)"/g)) anchors.add(m[1]!);
  return anchors;
}

interface Link {
  target: string;
  line: number;
}

/** Inline links and images, reference definitions, autolinks and href attributes outside code. */
function linksOf(md: string): Link[] {
  // Code spans hold no links; blank them (keeping offsets) so a `[x](y)` inside one is skipped.
  const text = withoutCode(md).replace(/(`+)[^`\n][\s\S]*?\1/g, (m) => m.replace(/[^\n]/g, ' '));
  const links: Link[] = [];
  const lineAt = (i: number): number => text.slice(0, i).split('\n').length;
  for (const m of text.matchAll(/!?\[(?:[^[\]]|\[[^[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) links.push({ target: m[1]!, line: lineAt(m.index) });
  for (const m of text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) links.push({ target: m[1]!, line: lineAt(m.index) });
  for (const m of text.matchAll(/<(https?:\/\/[^>\s]+)>/g)) links.push({ target: m[1]!, line: lineAt(m.index) });
  for (const m of text.matchAll(/\shref="([^"]+)"/g)) links.push({ target: m[1]!, line: lineAt(m.index) });
  return links;
}

// ---------------------------------------------------------------- what npm ships

/** The files `npm pack` would put in the tarball (without running prepack: only the list matters). */
function packedFiles(): Set<string> {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`npm pack --dry-run failed: ${r.stderr}`);
  const [result] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
  return new Set(result!.files.map((f) => f.path));
}

function gitIgnored(path: string): boolean {
  return spawnSync('git', ['check-ignore', '-q', path], { cwd: root }).status === 0;
}

const packed = packedFiles();
const shippedDocs = [...packed].filter((f) => f.endsWith('.md')).sort();
/** The guides: every markdown file of docs/guides/ in the repository (each must be shipped). */
const GUIDES_DIR = 'docs/guides';
const guides = readdirSync(join(root, GUIDES_DIR))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `${GUIDES_DIR}/${f}`)
  .sort();
/** Repository READMEs that the package README links to by URL: read on GitHub, checked the same way. */
const repoDocs = ['bench/README.md', 'sample/README.md'];

/** What is wrong with one link of `file` (a repository path), or null when it resolves. */
function problem(file: string, link: string, shipped: boolean): string | null {
  if (/^mailto:/.test(link)) return null;
  const read = (path: string): string => readFileSync(join(root, path), 'utf8');
  const checkAnchor = (path: string, anchor: string | undefined): string | null => {
    if (!anchor) return null;
    if (!path.endsWith('.md')) return `#${anchor} on a file that is not markdown`;
    return anchorsOf(read(path)).has(decodeURIComponent(anchor)) ? null : `${path} has no heading #${anchor}`;
  };
  if (/^https?:\/\//.test(link)) {
    const m = REPO_FILE.exec(link);
    if (m) {
      const path = normalize(decodeURIComponent(m[1]!)).replace(/\/$/, '');
      // Ignored first: a git-ignored path (dist/) may or may not exist locally, depending on a build.
      if (gitIgnored(path)) return `${path} is git-ignored: it is not in the repository on GitHub`;
      if (!existsSync(join(root, path))) return `${path} does not exist in the repository`;
      return checkAnchor(path, m[2]);
    }
    if (link.startsWith(`${REPO}/`) && !/^(?:issues|pulls|releases)\b/.test(link.slice(REPO.length + 1)) && !link.startsWith(`${REPO}#`)) {
      return `a repository link that is neither a file on main (${REPO}/blob/main/...) nor issues/releases`;
    }
    return null; // elsewhere on the web: not checked here (no network)
  }
  const [rawPath, anchor] = link.split('#', 2) as [string, string | undefined];
  if (rawPath === '') return checkAnchor(file, anchor);
  const path = normalize(join(dirname(file), decodeURIComponent(rawPath))).replace(/\/$/, '');
  if (path.startsWith('..')) return `${link} points outside the repository`;
  if (!existsSync(join(root, path))) return `${path} does not exist`;
  if (shipped) {
    const inPack = statSync(join(root, path)).isDirectory() ? [...packed].some((f) => f.startsWith(`${path}/`)) : packed.has(path);
    if (!inPack) return `${path} is not in the npm package (package.json "files"): ship it, or link it as ${REPO}/blob/main/${path}`;
  }
  return checkAnchor(path, anchor);
}

describe('links of the README and the shipped docs', () => {
  it('the package ships the README and the docs it links to', () => {
    expect(packed.has('README.md')).toBe(true);
    expect(shippedDocs).toEqual(expect.arrayContaining(['README.md', 'docs/DESIGN.md', 'docs/PROTOCOL.md']));
  });

  it('the package ships every guide of docs/guides/, and the README links to each', () => {
    expect(guides.length).toBeGreaterThanOrEqual(9);
    expect(guides.filter((g) => !packed.has(g))).toEqual([]);
    const targets = new Set(linksOf(readFileSync(join(root, 'README.md'), 'utf8')).map((l) => l.target.split('#')[0]));
    expect(guides.filter((g) => !targets.has(g))).toEqual([]);
  });

  it.each(shippedDocs)('every link of %s resolves in the npm package', (file) => {
    const links = linksOf(readFileSync(join(root, file), 'utf8'));
    const broken = links.map((l) => ({ ...l, problem: problem(file, l.target, true) })).filter((l) => l.problem);
    expect(broken.map((l) => `${file}:${l.line}: ${l.target}: ${l.problem}`)).toEqual([]);
  });

  it.each(repoDocs)('every link of %s resolves in the repository', (file) => {
    const links = linksOf(readFileSync(join(root, file), 'utf8'));
    const broken = links.map((l) => ({ ...l, problem: problem(file, l.target, false) })).filter((l) => l.problem);
    expect(broken.map((l) => `${file}:${l.line}: ${l.target}: ${l.problem}`)).toEqual([]);
  });

  it('the README reaches the sample and the benchmark results by repository URL', () => {
    const targets = linksOf(readFileSync(join(root, 'README.md'), 'utf8')).map((l) => l.target);
    expect(targets).toContain(`${REPO}/blob/main/sample/README.md`);
    expect(targets).toContain(`${REPO}/blob/main/bench/README.md#results`);
  });

  // The checker itself, on cases that must fail.
  it('finds a missing file, an unshipped file, a missing heading and a wrong repository path', () => {
    expect(problem('README.md', 'docs/NOPE.md', true)).toMatch(/does not exist/);
    expect(problem('README.md', 'sample/README.md', true)).toMatch(/not in the npm package/);
    expect(problem('README.md', 'sample/README.md', false)).toBeNull();
    expect(problem('README.md', '#no-such-heading', true)).toMatch(/no heading/);
    expect(problem('README.md', 'docs/PROTOCOL.md#no-such-heading', true)).toMatch(/no heading/);
    expect(problem('README.md', `${REPO}/blob/main/bench/NOPE.md`, true)).toMatch(/does not exist/);
    expect(problem('README.md', `${REPO}/blob/main/dist/esm/index.js`, true)).toMatch(/git-ignored/);
    expect(problem('README.md', `${REPO}/blob/main/bench/README.md#nope`, true)).toMatch(/no heading/);
    expect(problem('README.md', `${REPO}/sample`, true)).toMatch(/neither a file/);
  });

  it('slugs headings as GitHub does', () => {
    expect(slug('Client (`new WsMsgpackClient(options)`)')).toBe('client-new-wsmsgpackclientoptions');
    expect(slug('15.1 Going away')).toBe('151-going-away');
    expect(slug('Server→client scenarios')).toBe('serverclient-scenarios');
    expect(slug('Both ends are peers: the server calls the client')).toBe('both-ends-are-peers-the-server-calls-the-client');
    expect([...anchorsOf('# A\n\n```md\n# Not a heading\n```\n\n## A\n')]).toEqual(['a', 'a-1']);
    expect(linksOf('a `[x](nope.md)` b\n\n```\n[y](nope.md)\n```\n[z](yes.md "t")')).toEqual([{ target: 'yes.md', line: 6 }]);
  });
});

describe('package.json names the repository', () => {
  it('repository, homepage and bugs point at the repository the README links to', () => {
    expect(pkg.repository).toEqual({ type: 'git', url: `git+${REPO}.git` });
    expect(pkg.homepage).toBe(`${REPO}#readme`);
    expect(pkg.bugs).toEqual({ url: `${REPO}/issues` });
  });
});

// ---------------------------------------------------------------- the code samples of the README and the guides compile

/** `<!-- readme-check: dir/file.ts -->` followed by a ts code block. */
function checkedSamples(md: string): { path: string; code: string }[] {
  return [...md.matchAll(/<!-- readme-check: ([\w./-]+\.ts) -->\n```ts\n([\s\S]*?)\n```/g)].map((m) => ({ path: m[1]!, code: `${m[2]!}\n` }));
}

/** The files whose samples are checked: the README and every shipped guide. */
const sampleSources = ['README.md', ...shippedDocs.filter((f) => f.startsWith(`${GUIDES_DIR}/`))];

/** @nestjs/config is not a dependency of this repository: a stub with the shape of its API stands in. */
const NESTJS_CONFIG_STUB = `import type { DynamicModule } from '@nestjs/common';
export declare class ConfigService {
  get<T = any>(propertyPath: string): T | undefined;
  getOrThrow<T = any>(propertyPath: string): Exclude<T, undefined>;
}
export declare class ConfigModule {
  static forRoot(options?: { isGlobal?: boolean; envFilePath?: string | string[] }): Promise<DynamicModule>;
}
`;

/** Nor is the OTLP exporter: a stub with its constructor, shaped as the SDK's SpanExporter. */
const OTLP_EXPORTER_STUB = `import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
export declare class OTLPTraceExporter implements SpanExporter {
  constructor(config?: { url?: string; headers?: Record<string, string> });
  export: SpanExporter['export'];
  shutdown(): Promise<void>;
  forceFlush(): Promise<void>;
}
`;

describe('the code samples of the README and the guides', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const samples = sampleSources.flatMap((source) => checkedSamples(readFileSync(join(root, source), 'utf8')).map((s) => ({ ...s, source })));

  it("the quick start (server and client app), registerAsync, ValidationPipe, the e2e test and each guide's main sample are checked", () => {
    expect(samples.map((s) => s.path).sort()).toEqual(
      expect.arrayContaining([
        'quick-start/main.ts',
        'quick-start/math-client.module.ts',
        'quick-start/client-main.ts',
        'quick-start/math.controller.ts',
        'quick-start/math.e2e-spec.ts',
        'register-async/app.module.ts',
        'clients-module/app.module.ts',
        'server/hybrid-main.ts',
        'validation/main.ts',
        'validation/orders.module.ts',
        'streams/streams.controller.ts',
        'peers/hub.controller.ts',
        'peers/agent-main.ts',
        'browser/page.ts',
        'security/orders.ts',
        'health/health.module.ts',
        'tracing/tracing.ts',
      ]),
    );
    // Each path is one file: two samples may not claim the same one.
    const paths = samples.map((s) => s.path);
    expect(paths.filter((p, i) => paths.indexOf(p) !== i)).toEqual([]);
    // Every code block of the quick start is one of them, and it boots both apps.
    const start = readme.indexOf('## Quick start\n');
    const quickStart = readme.slice(start, readme.indexOf('\n## ', start + 1));
    expect((quickStart.match(/^```ts$/gm) ?? []).length).toBe(checkedSamples(quickStart).length);
    expect(quickStart).toContain('NestFactory.createMicroservice(');
    expect(quickStart).toContain('NestFactory.createApplicationContext(');
    // Every guide with TypeScript samples has checked ones.
    const unchecked = sampleSources.filter((f) => {
      const md = readFileSync(join(root, f), 'utf8');
      return /^```ts$/m.test(md) && checkedSamples(md).length === 0;
    });
    expect(unchecked).toEqual([]);
  });

  it('compile as a consumer\'s files (tsc, the repository\'s compiler options, "nestjs-ws-msgpack" = src/)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wsmp-readme-'));
    try {
      symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' })); // an ESM app, as Nest 12's
      mkdirSync(join(dir, 'stubs'));
      writeFileSync(join(dir, 'stubs', 'nestjs-config.d.ts'), NESTJS_CONFIG_STUB);
      writeFileSync(join(dir, 'stubs', 'otlp-exporter.d.ts'), OTLP_EXPORTER_STUB);
      const files = samples.map(({ path, code }) => {
        const file = join(dir, path);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, code);
        return file;
      });
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          extends: join(root, 'tsconfig.json'),
          compilerOptions: {
            noEmit: true,
            incremental: false,
            types: ['node', 'jest'],
            paths: {
              'nestjs-ws-msgpack': [join(root, 'src', 'index.ts')],
              'nestjs-ws-msgpack/client': [join(root, 'src', 'web', 'index.ts')],
              'nestjs-ws-msgpack/terminus': [join(root, 'src', 'health', 'index.ts')],
              'nestjs-ws-msgpack/protocol': [join(root, 'src', 'protocol.ts')],
              'nestjs-ws-msgpack/redis': [join(root, 'src', 'redis', 'index.ts')],
              '@nestjs/config': ['./stubs/nestjs-config.d.ts'],
              '@opentelemetry/exporter-trace-otlp-http': ['./stubs/otlp-exporter.d.ts'],
            },
          },
          include: [],
          files,
        }),
      );
      const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 90_000,
      });
      // Errors name the sample's path (quick-start/main.ts); `samples` says which markdown file holds it.
      const where = Object.fromEntries(samples.map((s) => [s.path, s.source]));
      expect({ output: `${r.stdout}${r.stderr}`.split(`${dir}/`).join(''), where }).toEqual({ output: '', where });
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

// ---------------------------------------------------------------- claims of the server guide

describe('docs/guides/server.md: server.address() and server.unwrap()', () => {
  it('standalone: address() has the port; unwrap() is a ws server in noServer mode, whose address() throws', async () => {
    const server = new WsMsgpackServer({ port: 0, host: '127.0.0.1' });
    expect(server.address()).toBeNull(); // before listen()
    await new Promise<void>((resolve, reject) => server.listen((e) => (e ? reject(e as Error) : resolve())));
    try {
      expect(server.address()).toMatchObject({ address: '127.0.0.1', family: 'IPv4', port: expect.any(Number) });
      expect(server.address()!.port).toBeGreaterThan(0);
      expect(() => server.unwrap<{ address(): unknown }>().address()).toThrow('The server is operating in "noServer" mode');
    } finally {
      await server.close();
    }
  });

  it('with httpServer: address() is null; the HTTP server has the address', async () => {
    const http = createServer();
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const server = new WsMsgpackServer({ httpServer: http, path: '/rpc' });
    await new Promise<void>((resolve, reject) => server.listen((e) => (e ? reject(e as Error) : resolve())));
    try {
      expect(server.address()).toBeNull();
      expect(http.address()).toMatchObject({ port: expect.any(Number) });
      expect(() => server.unwrap<{ address(): unknown }>().address()).toThrow(/noServer/);
    } finally {
      await server.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });
});
