/**
 * The browser test harness itself (test/support/browser.ts): Debian's Chromium through
 * playwright-core, a page from a 127.0.0.1 server, a real WebSocket from the page to this process,
 * screenshots, the page's errors collected, and esbuild bundles loaded as the `WsMsgpack` global.
 * Does not use the browser client (src/web): it proves what the client's browser tests stand on.
 */
import { decode } from '@msgpack/msgpack';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { WebSocketServer, type WebSocket } from 'ws';
import { bundleBrowserClient, CHROMIUM_PATH, launchChromium, openPage, servePage, type PageServer, type WatchedPage } from '../support/browser.js';

/** Bound for the waits of this file (a Chromium cold start is the slowest). */
const WAIT_MS = 10_000;

/** A WebSocket server on 127.0.0.1:0 that records each message and answers with `reply(message)`. */
async function startWsServer(reply: (data: Buffer) => Buffer): Promise<{
  url: string;
  received: { data: Buffer; isBinary: boolean; origin: string | undefined }[];
  close(): Promise<void>;
}> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const received: { data: Buffer; isBinary: boolean; origin: string | undefined }[] = [];
  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      received.push({ data, isBinary, origin: req.headers.origin });
      ws.send(reply(data), { binary: true });
    });
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}/`,
    received,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** The page's script: `exchange(url, bytes)` sends one binary message and resolves with the first one back. */
const EXCHANGE_SCRIPT = `
window.exchange = (url, bytes) => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onopen = () => ws.send(new Uint8Array(bytes));
  ws.onmessage = (ev) => { ws.close(1000); resolve(Array.from(new Uint8Array(ev.data))); };
  ws.onerror = () => reject(new Error('WebSocket error'));
  ws.onclose = (ev) => reject(new Error('closed before a message: ' + ev.code));
});`;

declare global {
  interface Window {
    exchange(url: string, bytes: number[]): Promise<number[]>;
  }
}

let browser: Browser;
let site: PageServer;
let tab: WatchedPage;
let ws: Awaited<ReturnType<typeof startWsServer>>;
let tmp: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'wsmp-browser-'));
  browser = await launchChromium();
  // Byte-exact both ways: the server answers with the bytes reversed, every value 0..255 included.
  ws = await startWsServer((data) => Buffer.from(data).reverse());
  site = await servePage({
    html: '<!doctype html><html><head><meta charset="utf-8"><title>harness</title><script src="/exchange.js"></script></head><body><h1>harness</h1></body></html>',
    scripts: { '/exchange.js': EXCHANGE_SCRIPT },
  });
  tab = await openPage(browser, site.url);
}, 30_000);

afterAll(async () => {
  await tab?.close();
  await browser?.close();
  await Promise.all([site?.close(), ws?.close()]);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('browser harness', () => {
  it(`launches Chromium (${CHROMIUM_PATH}) headless and loads the page from 127.0.0.1`, async () => {
    expect(browser.isConnected()).toBe(true);
    expect(browser.version()).toMatch(/^\d+\./);
    expect(await tab.page.title()).toBe('harness');
    expect(await tab.evaluate(() => typeof window.exchange)).toBe('function');
    expect(await tab.evaluate(() => navigator.userAgent)).toMatch(/HeadlessChrome|Chrome/);
  });

  it('a WebSocket from the page exchanges one binary message with a ws server in this process, byte-exactly', async () => {
    const bytes = [...Array.from({ length: 256 }, (_, i) => i), 0, 0xff, 0x80, 0x7f, 0xc1];
    const back = await tab.evaluate(({ url, bytes }) => window.exchange(url, bytes), { url: ws.url, bytes }, WAIT_MS);
    expect(ws.received).toHaveLength(1);
    expect(ws.received[0].isBinary).toBe(true);
    expect([...ws.received[0].data]).toEqual(bytes);
    expect(ws.received[0].origin).toBe(site.origin);
    expect(back).toEqual([...bytes].reverse());
    expect(tab.problems).toEqual([]);
  });

  it('takes a screenshot of the page (a non-empty PNG)', async () => {
    const file = join(tmp, 'harness.png');
    await tab.page.screenshot({ path: file });
    expect(statSync(file).size).toBeGreaterThan(100);
    expect(readFileSync(file).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  });

  it('collects console errors, uncaught errors and unhandled rejections of the page, and names them when an evaluate fails', async () => {
    const other = await openPage(browser, site.url);
    try {
      await other.evaluate(() => {
        console.error('console says no');
        setTimeout(() => {
          throw new Error('thrown in a timer');
        });
        void Promise.reject(new Error('rejected, unhandled'));
      });
      const deadline = Date.now() + WAIT_MS;
      while (other.problems.length < 3 && Date.now() < deadline) await other.page.waitForTimeout(10);
      expect(other.problems).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^console\.error: console says no/),
          expect.stringMatching(/^pageerror: Error: thrown in a timer/),
          expect.stringMatching(/^pageerror: Error: rejected, unhandled/),
        ]),
      );
      await expect(
        other.evaluate(() => {
          throw new Error('evaluate fails');
        }),
      ).rejects.toThrow(/evaluate fails[\s\S]*what went wrong on the page:[\s\S]*console says no/);
      await expect(other.evaluate(() => new Promise(() => {}), undefined, 200)).rejects.toThrow(/did not settle within 200 ms/);
    } finally {
      await other.close();
    }
  });
});

describe('bundleBrowserClient (esbuild)', () => {
  /** A throwaway entry outside src/ (the harness does not depend on src/web). */
  const entry = (name: string, code: string): string => {
    const file = join(tmp, name);
    writeFileSync(file, code);
    return file;
  };

  it('bundles an entry with @msgpack/msgpack and rxjs as an IIFE the page loads as the WsMsgpack global', async () => {
    const file = entry(
      'ok.ts',
      `import { encode } from '@msgpack/msgpack';
       import { from, lastValueFrom, map, toArray } from 'rxjs';
       export const pack = (v: unknown): number[] => Array.from(encode(v));
       export const doubled = (xs: number[]): Promise<number[]> => lastValueFrom(from(xs).pipe(map((x) => x * 2), toArray()));`,
    );
    /** What ok.ts exports, on the page as the WsMsgpack global (typed as the real client's). */
    type Ok = { pack(v: unknown): number[]; doubled(xs: number[]): Promise<number[]> };
    const js = await bundleBrowserClient(file);
    expect(js).toMatch(/^var WsMsgpack = \(\(\) => \{/m);
    expect(await bundleBrowserClient(file)).toBe(js); // cached
    const page = await servePage({ html: '<!doctype html><script src="/client.js"></script>', scripts: { '/client.js': js } });
    const t = await openPage(browser, page.url);
    try {
      const packed = await t.evaluate(() => (WsMsgpack as unknown as Ok).pack({ hello: 'browser', n: [1, 2.5, -3], bin: new Uint8Array([0, 255]) }));
      expect(decode(new Uint8Array(packed))).toEqual({ hello: 'browser', n: [1, 2.5, -3], bin: new Uint8Array([0, 255]) });
      expect(await t.evaluate(() => (WsMsgpack as unknown as Ok).doubled([1, 2, 3]))).toEqual([2, 4, 6]);
      expect(t.problems).toEqual([]);
    } finally {
      await t.close();
      await page.close();
    }
  });

  it.each([
    ['nest.ts', `import { Injectable } from '@nestjs/common';\nexport const x = Injectable;\n`, /"@nestjs\/common" is NestJS/],
    ['node.ts', `import { EventEmitter } from 'node:events';\nexport const x = new EventEmitter();\n`, /"node:events" is a Node built-in/],
    ['bare.ts', `import { createHash } from 'crypto';\nexport const x = createHash;\n`, /"crypto" is a Node built-in/],
    ['ws.ts', `import WebSocket from 'ws';\nexport const x = WebSocket;\n`, /"ws" is the Node WebSocket library/],
  ])('fails when the bundle pulls in what cannot run in a browser: %s', async (name, code, message) => {
    await expect(bundleBrowserClient(entry(name, code))).rejects.toThrow(message);
  });

  it('fails with a clear message when the entry does not exist', async () => {
    await expect(bundleBrowserClient(join(tmp, 'missing.ts'))).rejects.toThrow(/the browser client entry .*missing\.ts does not exist/);
  });
});
