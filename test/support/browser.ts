/**
 * Browser e2e tests: Debian's Chromium driven by playwright-core, a page served from 127.0.0.1,
 * and the browser client bundled by esbuild.
 *
 *   const browser = await launchChromium();
 *   const site = await serveClientPage();            // the bundle at /wsmsgpack.js, loaded by <script>
 *   const tab = await openPage(browser, site.url);   // page console errors and pageerrors collected
 *   const r = await tab.evaluate(async (url) => {
 *     const c = new WsMsgpack.WsMsgpackWebClient({ url });
 *     ...
 *   }, svc.url);
 *   ...
 *   await tab.close(); await site.close(); await browser.close();   // in afterAll
 *
 * The page loads the client as a classic script: an IIFE that assigns the entry's exports to the
 * global `WsMsgpack` (BROWSER_GLOBAL), so code run by page.evaluate uses `WsMsgpack.X`. A classic
 * script is loaded before `load` fires, so the global is there once page.goto resolves.
 *
 * Chromium is the system's (apt-get install -y chromium; CHROMIUM_PATH overrides /usr/bin/chromium);
 * playwright-core never downloads a browser.
 */
import { accessSync, constants } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { bundleForBrowser, DEFAULT_ENTRY, ROOT, stopEsbuild } from '../../scripts/browser-bundle.mjs';

declare global {
  /**
   * The browser client's exports on the page (serveClientPage), for code run by page.evaluate:
   * `new WsMsgpack.WsMsgpackWebClient({ url })`. Only a type here: in the test process there is no
   * such global, page.evaluate sends the function's source to the page.
   */
  var WsMsgpack: typeof import('../../src/web/index.js');
}

/** Where Chromium is: CHROMIUM_PATH, or Debian's /usr/bin/chromium. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The global the page's client bundle assigns its exports to. */
export const BROWSER_GLOBAL = 'WsMsgpack';

/** Where serveClientPage serves the client bundle. */
export const CLIENT_SCRIPT_PATH = '/wsmsgpack.js';

/** Bound for launching Chromium (a cold start on 2 busy cores takes a few seconds). */
export const LAUNCH_TIMEOUT_MS = 30_000;

/** Bound for page.goto, page.evaluate and the other page waits. */
export const PAGE_WAIT_MS = 10_000;

/** Chromium's flags: headless, no sandbox (CI runs as root), nothing that talks to the network by itself. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * Launches headless Chromium (CHROMIUM_PATH, default /usr/bin/chromium) within `timeoutMs`.
 * Fails at once, saying how to install it, when the binary is missing or not executable.
 */
export async function launchChromium(options: { timeoutMs?: number } = {}): Promise<Browser> {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
  } catch (e) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH} (or is not executable): the browser tests need it. ` +
        `Install Debian's with \`apt-get install -y chromium\`, or set CHROMIUM_PATH to a Chromium binary.`,
      { cause: e },
    );
  }
  const timeout = options.timeoutMs ?? LAUNCH_TIMEOUT_MS;
  try {
    return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS, timeout });
  } catch (e) {
    throw new Error(`could not launch Chromium (${CHROMIUM_PATH}) within ${timeout} ms: ${(e as Error).message}`, { cause: e });
  }
}

const bundles = new Map<string, Promise<string>>();
let building = 0;

/**
 * The browser client as one classic script: esbuild bundles `entry` (relative to the repository
 * root, or absolute) for the browser (platform browser, target es2020, not minified, everything
 * bundled: @msgpack/msgpack, rxjs) as an IIFE that assigns the entry's exports to the global
 * `WsMsgpack`. Rejects when the entry is missing or does not build, and when the bundle pulls in a
 * Node built-in, @nestjs/* or ws (scripts/browser-bundle.mjs).
 *
 * Cached per entry for the life of this module, i.e. per test file (jest gives every test file its
 * own module registry); a build takes well under a second. esbuild's service process is stopped
 * once no build is under way, so it does not outlive the test file.
 */
export function bundleBrowserClient(entry = DEFAULT_ENTRY): Promise<string> {
  const key = resolve(ROOT, entry);
  let text = bundles.get(key);
  if (!text) {
    building++;
    text = bundleForBrowser({ entry, format: 'iife', globalName: BROWSER_GLOBAL })
      .then((b) => b.text)
      .finally(async () => {
        if (--building === 0) await stopEsbuild();
      });
    text.catch(() => bundles.delete(key));
    bundles.set(key, text);
  }
  return text;
}

/** A file served by servePage: its body and content type (default from the path's extension). */
export interface StaticFile {
  body: string | Uint8Array;
  type?: string;
}

export interface ServePageOptions {
  /** The page, served at `/` (and `/index.html`). */
  html: string;
  /** JavaScript by path (`/client.js`), served as text/javascript. */
  scripts?: Record<string, string>;
  /** Any other files by path. */
  files?: Record<string, string | Uint8Array | StaticFile>;
}

/** A page server on 127.0.0.1; `url` ends with `/`. */
export interface PageServer {
  url: string;
  /** `http://127.0.0.1:PORT`, the page's origin (what a WebSocket server sees as Origin). */
  origin: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8',
  json: 'application/json',
  css: 'text/css; charset=utf-8',
  png: 'image/png',
  wasm: 'application/wasm',
};

/**
 * A tiny static server on 127.0.0.1, port 0: the page at `/`, `scripts` and `files` at their paths,
 * 204 for /favicon.ico (so the browser logs no 404 for it), 404 otherwise; nothing is cached.
 * close() ends the browser's keep-alive connections too.
 */
export async function servePage(options: ServePageOptions): Promise<PageServer> {
  const routes = new Map<string, StaticFile>();
  routes.set('/', { body: options.html, type: TYPES.html });
  routes.set('/index.html', { body: options.html, type: TYPES.html });
  for (const [path, body] of Object.entries(options.scripts ?? {})) routes.set(path, { body, type: TYPES.js });
  for (const [path, f] of Object.entries(options.files ?? {})) routes.set(path, typeof f === 'string' || f instanceof Uint8Array ? { body: f } : f);
  for (const path of routes.keys()) if (!path.startsWith('/')) throw new Error(`servePage: path ${path} must start with /`);

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const file = routes.get(path);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (file) {
      const ext = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase() ?? '';
      res.writeHead(200, { 'content-type': file.type ?? TYPES[ext] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : file.body);
    } else if (path === '/favicon.ico') {
      res.writeHead(204).end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: `${origin}/`,
    origin,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** A page that loads the client bundle of `entry` (bundleBrowserClient) from CLIENT_SCRIPT_PATH; `body` goes in <body>. */
export async function serveClientPage(options: { entry?: string; body?: string; files?: ServePageOptions['files'] } = {}): Promise<PageServer> {
  const js = await bundleBrowserClient(options.entry);
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><title>nestjs-ws-msgpack browser test</title>' +
    `<script src="${CLIENT_SCRIPT_PATH}"></script></head><body>${options.body ?? ''}</body></html>`;
  return servePage({ html, scripts: { [CLIENT_SCRIPT_PATH]: js }, files: options.files });
}

/**
 * Collects what goes wrong on a page, as lines: console.error messages, uncaught errors and
 * unhandled rejections (`pageerror`), failed requests and a crash. The array fills as they happen.
 */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const { url, lineNumber } = msg.location();
    problems.push(`console.error: ${msg.text()}${url ? ` (${url}:${lineNumber + 1})` : ''}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.stack ?? err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText ?? '?'}`));
  page.on('crash', () => problems.push('the page crashed'));
  return problems;
}

/** A page in its own browser context, watched (watchPage), with bounded waits. */
export interface WatchedPage {
  page: Page;
  context: BrowserContext;
  /** What went wrong on the page so far (watchPage). */
  problems: string[];
  /**
   * page.evaluate, bounded by `ms`; when it fails or times out, the error says what went wrong on
   * the page too (console errors often tell why a WebSocket failed).
   */
  evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A, ms?: number): Promise<R>;
  /** Closes the context (and so the page and its WebSockets). */
  close(): Promise<void>;
}

/** Formats page problems for an error message (empty when there are none). */
export function describeProblems(problems: readonly string[]): string {
  return problems.length ? `\nwhat went wrong on the page:\n${problems.map((p) => `  ${p.replace(/\n/g, '\n    ')}`).join('\n')}` : '';
}

/** Opens `url` (when given) in a new context of `browser`: a fresh profile, page waits bounded by PAGE_WAIT_MS. */
export async function openPage(browser: Browser, url?: string): Promise<WatchedPage> {
  const context = await browser.newContext();
  context.setDefaultTimeout(PAGE_WAIT_MS);
  context.setDefaultNavigationTimeout(PAGE_WAIT_MS);
  const page = await context.newPage();
  const problems = watchPage(page);
  const tab: WatchedPage = {
    page,
    context,
    problems,
    async evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg?: A, ms = PAGE_WAIT_MS): Promise<R> {
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        return await Promise.race([
          // playwright's own overloads unbox the argument's type (JSHandles); ours are plain values.
          (page.evaluate as (fn: unknown, arg: unknown) => Promise<R>).call(page, fn, arg),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`page.evaluate did not settle within ${ms} ms`)), ms);
          }),
        ]);
      } catch (e) {
        throw new Error(`${(e as Error).message}${describeProblems(problems)}`, { cause: e });
      } finally {
        clearTimeout(timer);
      }
    },
    close: () => context.close(),
  };
  if (url !== undefined) {
    try {
      await page.goto(url);
    } catch (e) {
      await context.close();
      throw new Error(`could not load ${url}: ${(e as Error).message}${describeProblems(problems)}`, { cause: e });
    }
  }
  return tab;
}
