import { Controller, Get, Header, InternalServerErrorException, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** What the page loads: the browser client (`nestjs-ws-msgpack/client`) as a classic script setting the global `WsMsgpack`. */
const CLIENT_ENTRY = 'src/web/index.ts';
const CLIENT_GLOBAL = 'WsMsgpack';

/** scripts/browser-bundle.mjs, the esbuild setup the repository's own browser tests and size budget use. */
interface BrowserBundler {
  bundleForBrowser(options: { entry: string; format: 'iife'; globalName: string; minify?: boolean }): Promise<{ text: string }>;
  stopEsbuild(): Promise<void>;
}

/**
 * The repository root, found from this file whether it runs compiled (dist-sample/sample/server/)
 * or as TypeScript (sample/server/, in the e2e test).
 */
function repositoryRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'scripts', 'browser-bundle.mjs'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('the sample cannot find the repository root (scripts/browser-bundle.mjs) above its own files');
    dir = up;
  }
  return dir;
}

/**
 * The browser page of the sample (sample/browser/index.html), served by the hybrid app's HTTP side:
 *
 *   GET /browser            the page: a live stream with Cancel, a form calling `div`, a server → page call
 *   GET /browser/client.js  the browser client, bundled by esbuild on the first request, then cached
 *
 * The page connects to `ws://<this host>/rpc`, the transport of the same app. In your own app,
 * bundle `nestjs-ws-msgpack/client` with your front end's bundler instead (Vite, Angular CLI, ...).
 */
@Controller('browser')
export class BrowserController implements OnApplicationShutdown {
  private readonly logger = new Logger(BrowserController.name);
  private readonly root = repositoryRoot();
  private bundle: Promise<string> | undefined;

  /** The page is read on every request, so editing sample/browser/index.html needs no restart. */
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  page(): Promise<string> {
    return readFile(join(this.root, 'sample', 'browser', 'index.html'), 'utf8');
  }

  @Get('client.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  async client(): Promise<string> {
    this.bundle ??= this.build();
    try {
      return await this.bundle;
    } catch (e) {
      this.bundle = undefined; // try again on the next request
      this.logger.error(`could not bundle the browser client: ${(e as Error).message}`);
      throw new InternalServerErrorException('could not bundle the browser client (see the server log)');
    }
  }

  /** A build still under way finishes first, so esbuild's service process does not outlive the app. */
  async onApplicationShutdown(): Promise<void> {
    await this.bundle?.catch(() => undefined);
  }

  private async build(): Promise<string> {
    const started = Date.now();
    const bundler = (await import(pathToFileURL(join(this.root, 'scripts', 'browser-bundle.mjs')).href)) as BrowserBundler;
    try {
      const { text } = await bundler.bundleForBrowser({ entry: CLIENT_ENTRY, format: 'iife', globalName: CLIENT_GLOBAL });
      this.logger.log(`bundled ${CLIENT_ENTRY} for the page (${Math.round(text.length / 1024)} KB, ${Date.now() - started} ms)`);
      return text;
    } finally {
      await bundler.stopEsbuild(); // esbuild's service process; the bundle is cached
    }
  }
}
