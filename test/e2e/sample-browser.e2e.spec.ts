/**
 * The sample's browser page (sample/browser/index.html) in real Chromium, served by the sample
 * server itself (sample/server/server.ts, booted in this process: the HTTP app serves /browser and
 * the esbuild bundle of the browser client at /browser/client.js; the transport is at /rpc). The
 * page streams quotes and cancels them (the server's producer is seen to stop), calls `div` from
 * a form (a result and a typed error), and answers the server's call to it (`ask-page` →
 * `peer.send('browser.confirm')` → the page's `client.handle()`). A screenshot shows it renders.
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startSampleServer, type SampleServer } from '../../sample/server/server.js';
import { StatsService } from '../../sample/server/stats.service.js';
import { until } from '../support/helpers.js';
import { describeProblems, launchChromium, openPage, type WatchedPage } from '../support/browser.js';

/** Bound for the waits of this file. */
const WAIT_MS = 10_000;

/** Where the screenshot goes (overwritten on every run): SAMPLE_SCREENSHOT_DIR, or the OS temp dir. */
const SCREENSHOT = join(process.env.SAMPLE_SCREENSHOT_DIR ?? tmpdir(), 'nestjs-ws-msgpack-sample-browser.png');

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let browser: Browser | undefined;
let sample: SampleServer | undefined;
let tab: WatchedPage | undefined;

beforeAll(async () => {
  [browser, sample] = await Promise.all([launchChromium(), startSampleServer({ logger: ['error', 'warn'] })]);
}, 60_000);

afterAll(async () => {
  await tab?.close();
  await browser?.close();
  await sample?.close();
});

/** The text of `selector` once it contains `text` (bounded). */
async function textOnce(selector: string, text: string | RegExp): Promise<string> {
  const { page, problems } = tab!;
  const locator = page.locator(selector, { hasText: text });
  try {
    await locator.waitFor({ timeout: WAIT_MS });
  } catch (e) {
    const now = await page
      .locator(selector)
      .textContent()
      .catch(() => '(gone)');
    throw new Error(`${selector} never showed ${String(text)} within ${WAIT_MS} ms (it shows ${JSON.stringify(now)})${describeProblems(problems)}`, { cause: e });
  }
  return (await locator.textContent()) ?? '';
}

/** How many quotes the page says it received. */
async function received(): Promise<number> {
  return Number(await tab!.page.locator('#quote-count').textContent());
}

it('GET /browser is the page and GET /browser/client.js the bundled browser client', async () => {
  const page = await fetch(sample!.pageUrl);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  expect(await page.text()).toContain('<script src="/browser/client.js"></script>');

  const js = await fetch(`${sample!.pageUrl}/client.js`);
  expect(js.status).toBe(200);
  expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
  const text = await js.text();
  expect(text).toMatch(/^(?:"use strict";\s*)?var WsMsgpack = /);
  expect(text).toContain('WsMsgpackWebClient');
});

it('in Chromium: the stream renders and Cancel stops it on the server, the form calls div, the server calls the page; screenshot', async () => {
  const stats = sample!.app.get(StatsService);
  // One quote every 50 ms (the page reads ?every=), so the stream shows items quickly.
  tab = await openPage(browser!, `${sample!.pageUrl}?every=50`);
  const { page, problems } = tab;

  // (d) The status line follows client.status.
  await textOnce('#status[data-state="connected"]', 'connected');

  // (a) The live stream renders as it arrives...
  await page.waitForFunction(() => Number(document.getElementById('quote-count')?.textContent) >= 3, undefined, { timeout: WAIT_MS });
  expect(await page.locator('#quotes tr').count()).toBeGreaterThanOrEqual(3);
  expect(await page.locator('#quote-price').textContent()).toMatch(/^\d+\.\d\d$/);
  expect(stats.quoteStreams).toBe(1);

  // ...and Cancel unsubscribes: the page says so, the server's producer is torn down (finalize).
  await page.click('#cancel');
  const cancelled = await textOnce('#stream-state', /cancelled after \d+ quotes/);
  const atCancel = Number(/cancelled after (\d+) quotes/.exec(cancelled)![1]);
  expect(atCancel).toBeGreaterThanOrEqual(3);
  await until(() => stats.quoteStops === 1, WAIT_MS, 'the server-side quotes producer stopped');
  await textOnce('#stream-server', 'server: 1 of 1 quote producers stopped');
  expect(await page.locator('#cancel').isDisabled()).toBe(true);
  expect(await page.locator('#restart').isEnabled()).toBe(true);

  // (b) The form calls div: the typed error (the RpcException payload), then a result.
  await page.fill('#a', '10');
  await page.fill('#b', '0');
  await page.click('#div-submit');
  expect(await textOnce('#div-result', 'DIV_BY_ZERO')).toBe('10 ÷ 0: error DIV_BY_ZERO: division by zero');
  expect(await page.locator('#div-result').getAttribute('class')).toBe('error');
  await page.fill('#b', '4');
  await page.click('#div-submit');
  expect(await textOnce('#div-result', '= 2.5')).toBe('10 ÷ 4 = 2.5');
  expect(await page.locator('#div-log li').allTextContents()).toEqual(['10 ÷ 4 = 2.5', '10 ÷ 0: error DIV_BY_ZERO: division by zero']);

  // (c) Server → browser: ask-page makes the server call the page's browser.confirm handler,
  //     which shows the question and waits for a click; the answer goes back through the server.
  await page.click('#ask');
  await page.locator('#dialog').waitFor({ state: 'visible', timeout: WAIT_MS });
  expect(await page.locator('#dialog-question').textContent()).toBe('Ship order #42?');
  await page.click('#yes');
  const roundTrip = await textOnce('#roundtrip', 'page answered');
  expect(roundTrip).toMatch(/^server asked “Ship order #42\?” → page answered yes → server got it after \d+ ms$/);
  expect(await page.locator('#dialog').isHidden()).toBe(true);

  // The cancelled stream stayed stopped through the steps above (at one quote per 50 ms, a leak would show).
  expect(await received()).toBe(atCancel);
  expect(stats.quoteStops).toBe(1);

  // It renders: a full-page screenshot, a real PNG of a sensible size.
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  const png = readFileSync(SCREENSHOT);
  expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  const [width, height] = [png.readUInt32BE(16), png.readUInt32BE(20)];
  expect(width).toBeGreaterThanOrEqual(800);
  expect(height).toBeGreaterThanOrEqual(400);
  expect(png.length).toBeGreaterThan(10_000);

  // Nothing went wrong on the page: no console errors, page errors, failed requests; no client error.
  expect(await page.locator('#errors').textContent()).toBe('');
  expect(problems).toEqual([]);
}, 60_000);
