/**
 * The browser client in real Chromium (Debian's, through playwright-core) against a real Nest
 * server in this process: the page loads the esbuild bundle of `nestjs-ws-msgpack/client` (the
 * global `WsMsgpack`) and makes every kind of call, answers the server's calls, authenticates with
 * a token, reconnects after the server restarts, and checks the shared test vectors.
 */
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { freePort, until, type TestService } from '../support/helpers.js';
import { bundleBrowserClient, launchChromium, openPage, servePage, type PageServer, type WatchedPage } from '../support/browser.js';
import { holds } from '../support/streams.js';
import { startWebService, webSeen } from '../support/web-fixture.js';

/** Bound for the waits of this file (a Chromium cold start is the slowest). */
const WAIT_MS = 10_000;

/** The page's view of the bundle (the IIFE's global). */
interface PageGlobals {
  WsMsgpack: typeof import('../../src/web/index.js');
  Vectors: typeof import('../support/browser-vectors-entry.js');
  client: import('../../src/web/index.js').WsMsgpackWebClient;
  log: string[];
}
type Win = Window & typeof globalThis & PageGlobals;

let browser: Browser;
let pages: PageServer;
let svc: TestService;
let port: number;
let tab: WatchedPage;

/** Waits (bounded) until the page's client reports `state`. */
async function pageState(state: string, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if ((await tab.evaluate(() => (window as unknown as Win).client.state)) === state) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ${state} within ${WAIT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

beforeAll(async () => {
  port = await freePort();
  const [b, client, vectors] = await Promise.all([launchChromium(), bundleBrowserClient(), bundleBrowserClient('test/support/browser-vectors-entry.ts')]);
  browser = b;
  svc = await startWebService({ port });
  pages = await servePage({
    html: '<!doctype html><html><head><meta charset="utf-8"><script src="/client.js"></script><script src="/vectors.js"></script></head><body></body></html>',
    // The second bundle assigns the same global name: keep the client's under WsMsgpack.
    scripts: { '/client.js': client, '/vectors.js': `(() => { const keep = window.WsMsgpack; ${vectors}; window.Vectors = WsMsgpack; window.WsMsgpack = keep; })();` },
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await svc?.close();
});

beforeEach(async () => {
  tab = await openPage(browser, pages.url);
  await tab.evaluate((url: string) => {
    const w = window as unknown as Win;
    w.log = [];
    w.client = new w.WsMsgpack.WsMsgpackWebClient({ url, reconnect: { initialDelay: 10, maxDelay: 100 } });
    w.client.on('error', (e) => w.log.push(`error: ${e.message}`));
  }, svc.url);
});

afterEach(async () => {
  await tab.evaluate(() => (window as unknown as Win).client.close()).catch(() => undefined);
  await tab.close();
});

describe('calls from the browser', () => {
  it('unary call (Promise), object pattern, response stream (Observable)', async () => {
    const r = await tab.evaluate(async () => {
      const { client } = window as unknown as Win;
      const sum = await client.call<number>('sum', [1, 2, 3]);
      const items = await new Promise<number[]>((resolve, reject) => {
        const out: number[] = [];
        client.send<number>({ cmd: 'range' }, { n: 500 }).subscribe({ next: (v) => out.push(v), error: reject, complete: () => resolve(out) });
      });
      return { sum, count: items.length, first: items[0], last: items[499] };
    });
    expect(r).toEqual({ sum: 6, count: 500, first: 0, last: 499 });
  });

  it('request stream and bidirectional stream from async generators', async () => {
    const r = await tab.evaluate(async () => {
      const { client } = window as unknown as Win;
      async function* numbers(n: number): AsyncGenerator<number> {
        for (let i = 1; i <= n; i++) yield i;
      }
      const total = await client.call<number>('total', numbers(100));
      const doubled: number[] = [];
      for await (const v of client.iterate<number>('double', numbers(5))) doubled.push(v);
      return { total, doubled };
    });
    expect(r).toEqual({ total: 5050, doubled: [2, 4, 6, 8, 10] });
  });

  it('break in for await cancels the call: the server-side producer is proven stopped', async () => {
    const got = await tab.evaluate(async () => {
      const { client } = window as unknown as Win;
      const out: number[] = [];
      for await (const v of client.iterate<number>('ticks', 'browser-break')) {
        out.push(v);
        if (out.length === 3) break;
      }
      return out;
    });
    expect(got).toEqual([0, 1, 2]);
    const probe = webSeen.probes.get('browser-break');
    await until(() => probe.finalized === 1, WAIT_MS, 'the producer finalized');
    const produced = probe.produced;
    await holds(() => probe.produced === produced, 'the producer stays stopped');
  });

  it('unsubscribe cancels too', async () => {
    await tab.evaluate(() => {
      const w = window as unknown as Win;
      const sub = w.client.send('ticks', 'browser-unsub').subscribe((v) => {
        if (v === 2) sub.unsubscribe();
      });
    });
    const probe = webSeen.probes.get('browser-unsub');
    await until(() => probe.finalized === 1, WAIT_MS, 'the producer finalized');
  });

  it('Uint8Array round trip byte-exact; a Date arrives as a Date', async () => {
    const r = await tab.evaluate(async () => {
      const { client } = window as unknown as Win;
      const bytes = new Uint8Array(256);
      for (let i = 0; i < 256; i++) bytes[i] = i;
      const b = await client.call<{ isBytes: boolean; bytes: Uint8Array }>('bytes', bytes);
      const t = await client.call<{ isDate: boolean; next: Date }>('tomorrow', new Date('2026-12-02T10:00:00.000Z'));
      return {
        serverSawBytes: b.isBytes,
        isUint8Array: b.bytes instanceof Uint8Array,
        bytes: Array.from(b.bytes),
        serverSawDate: t.isDate,
        isDate: t.next instanceof Date,
        iso: t.next.toISOString(),
      };
    });
    expect(r).toEqual({
      serverSawBytes: true,
      isUint8Array: true,
      bytes: [...Array.from({ length: 256 }, (_, i) => i), 0],
      serverSawDate: true,
      isDate: true,
      iso: '2026-12-03T10:00:00.000Z',
    });
  });

  it('errors are typed: the filter payload, UNIMPLEMENTED, DEADLINE_EXCEEDED', async () => {
    const r = await tab.evaluate(async () => {
      const { client, WsMsgpack } = window as unknown as Win;
      const failed = await client.call('fail', null).catch((e: unknown) => e);
      const unknown = await client.call('no.such', null).catch((e: unknown) => e);
      const late = await client.call('slow', 'browser-deadline', { timeout: 50 }).catch((e: unknown) => e);
      return {
        failed,
        unknown: unknown instanceof WsMsgpack.WsMsgpackError ? (unknown as { code: string }).code : 'not a WsMsgpackError',
        late: (late as { code?: string }).code,
      };
    });
    expect(r).toEqual({ failed: { status: 'error', message: 'nope', reason: 'test' }, unknown: 'UNIMPLEMENTED', late: 'DEADLINE_EXCEEDED' });
  });
});

describe('the server calls the browser', () => {
  it('handlers in the page answer a unary call, a stream, and an event', async () => {
    const r = await tab.evaluate(async () => {
      const { client, log } = window as unknown as Win;
      client.handle<string, string>('confirm', (question) => `page says yes to ${question}`);
      client.handle<number, number>('countdown', async function* (n) {
        for (let i = n; i > 0; i--) yield i;
      });
      client.handle<{ text: string }>('notice', (data) => void log.push(`notice: ${data.text}`));
      const answer = await client.call('ask.client', 'cookies?');
      const pulled = await client.call('pull.client', 4);
      await client.call('notify.client', 'hi');
      for (let i = 0; i < 100 && !log.includes('notice: hi'); i++) await new Promise((res) => setTimeout(res, 10));
      return { answer, pulled, log };
    });
    expect(r).toEqual({ answer: 'page says yes to cookies?', pulled: [4, 3, 2, 1], log: ['notice: hi'] });
  });
});

describe('authentication from the browser', () => {
  it('a token (subprotocol entry) reaches authenticate; the guard sees the role', async () => {
    const r = await tab.evaluate(async (url: string) => {
      const { WsMsgpack } = window as unknown as Win;
      const admin = new WsMsgpack.WsMsgpackWebClient({ url, token: () => 'token-admin' });
      const user = new WsMsgpack.WsMsgpackWebClient({ url, token: 'token-user' });
      try {
        const name = await admin.call('admin.whoami', null);
        const denied = await user.call('admin.whoami', null).catch((e: unknown) => e);
        return { name, denied };
      } finally {
        await admin.close();
        await user.close();
      }
    }, svc.url);
    expect(r).toEqual({ name: 'ada', denied: { status: 'error', message: 'Forbidden resource' } });
  });

  it('a forged token cannot connect (the browser sees no HTTP status: UNAVAILABLE)', async () => {
    const r = await tab.evaluate(async (url: string) => {
      const { WsMsgpack } = window as unknown as Win;
      const forged = new WsMsgpack.WsMsgpackWebClient({ url, token: 'forged', reconnect: false });
      forged.on('error', () => {});
      try {
        const e = await forged.call('sum', [1]).catch((x: unknown) => x);
        return (e as { code?: string }).code;
      } finally {
        await forged.close();
      }
    }, svc.url);
    expect(r).toBe('UNAVAILABLE');
  });
});

describe('reconnect', () => {
  it('after the server restarts, the page reconnects by itself and calls work again', async () => {
    await tab.evaluate(async () => {
      const w = window as unknown as Win;
      w.client.status.subscribe((s) => w.log.push(`status: ${s}`));
      await w.client.call('sum', [1]);
    });
    await svc.close();
    await pageState('reconnecting', 'the page reconnecting');
    svc = await startWebService({ port });
    await pageState('connected', 'the page connected again');
    const r = await tab.evaluate(async () => {
      const w = window as unknown as Win;
      return { sum: await w.client.call('sum', [2, 3]), statuses: w.log.filter((l) => l.startsWith('status: ')) };
    });
    expect(r.sum).toBe(5);
    expect(r.statuses.slice(0, 4)).toEqual(['status: connecting', 'status: connected', 'status: reconnecting', 'status: connected']);
  });
});

describe('protocol conformance in the browser', () => {
  it('every vector of docs/vectors.json decodes and encodes byte for byte', async () => {
    const vectors = JSON.parse(readFileSync(new URL('../../docs/vectors.json', import.meta.url), 'utf8')) as unknown[];
    const failures = await tab.evaluate((all: { name: string; hex: string; frame?: unknown; canonicalHex?: string; error?: string }[]) => {
      const { Vectors } = window as unknown as Win;
      const codec = new Vectors.FrameCodec({ binaryAsBuffer: false });
      const bytes = (hex: string): Uint8Array => new Uint8Array((hex.match(/../g) ?? []).map((h) => parseInt(h, 16)));
      const hexOf = (u: Uint8Array): string => Array.from(u, (b) => b.toString(16).padStart(2, '0')).join('');
      const canon = (v: unknown): string =>
        JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
      const out: string[] = [];
      for (const v of all) {
        if (v.error !== undefined) {
          try {
            codec.decode(bytes(v.hex));
            out.push(`${v.name}: decoded, expected an error`);
          } catch (e) {
            if (!String((e as Error).message).includes(v.error)) out.push(`${v.name}: ${(e as Error).message}`);
          }
          continue;
        }
        const decoded = codec.decode(bytes(v.hex));
        if (canon(decoded) !== canon(v.frame)) out.push(`${v.name}: decoded ${canon(decoded)}`);
        const encoded = hexOf(codec.encode(v.frame as Parameters<typeof codec.encode>[0]));
        if (encoded !== (v.canonicalHex ?? v.hex)) out.push(`${v.name}: encoded ${encoded}`);
      }
      return out;
    }, vectors as never);
    expect(failures).toEqual([]);
    expect(vectors.length).toBeGreaterThan(30);
  });
});
