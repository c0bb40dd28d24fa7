import { resolveLimits, DEFAULT_LIMITS } from '../../src/connection/options.js';
import { OutboundCredit } from '../../src/connection/credit.js';
import { WsMsgpackServer } from '../../src/server/ws-msgpack.server.js';
import { WsMsgpackClient } from '../../src/index.js';
import { WsMsgpackWebClient, type WebSocketConstructor } from '../../src/web/index.js';

/** Never constructed: the options are checked before any socket. */
const FakeWebSocket = class {} as unknown as WebSocketConstructor;

describe('resolveLimits: options that cannot work are refused with the option named', () => {
  it('defaults', () => {
    expect(resolveLimits({})).toEqual(DEFAULT_LIMITS);
  });

  it.each([
    [{ window: -1 }, /window must be a number >= 0/],
    [{ window: 1.5 }, /window must be a whole number/],
    [{ window: 2 ** 53 }, /window must be a whole number up to 2\^53-1/],
    [{ maxConcurrentCalls: NaN }, /maxConcurrentCalls must be a number >= 0/],
    [{ maxDepth: 1 }, /maxDepth must be a whole number >= 2/],
    [{ maxDepth: NaN }, /maxDepth must be a whole number >= 2/],
    [{ maxArrayLength: -5 }, /maxArrayLength must be a whole number >= 0/],
    [{ overflow: 'sometimes' }, /overflow must be one of/],
    [{ serializer: {} }, /the .serializer. option of Nest's transports is not supported/],
  ])('%j', (options, message) => {
    expect(() => resolveLimits(options as never)).toThrow(message);
  });

  it('Infinity is accepted for decoder limits', () => {
    expect(() => resolveLimits({ maxDepth: Infinity, maxStrLength: Infinity })).not.toThrow();
  });
});

describe('time options: a number of ms >= 0, or Infinity (no limit / off); anything else is refused at construction', () => {
  it.each([
    ['keepAliveInterval', -5],
    ['keepAliveInterval', NaN],
    ['keepAliveTimeout', '10'],
    ['keepAliveTimeout', -Infinity],
  ])('resolveLimits({ %s: %p }) throws a TypeError naming the option', (key, value) => {
    expect(() => resolveLimits({ [key]: value } as never)).toThrow(
      new TypeError(`nestjs-ws-msgpack: option ${key} must be a number of ms >= 0 or Infinity, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`),
    );
  });

  it.each([
    ['drainTimeout', -1],
    ['drainTimeout', NaN],
    ['drainTimeout', '1000'],
    ['closeTimeout', '2000'],
    ['closeTimeout', -Infinity],
    ['closeTimeout', null],
    ['handshakeTimeout', NaN],
    ['handshakeTimeout', -1],
    ['keepAliveInterval', -5],
    ['keepAliveTimeout', '10'],
  ])('new WsMsgpackServer({ %s: %p }) throws a TypeError naming the option', (key, value) => {
    expect(() => new WsMsgpackServer({ [key]: value } as never)).toThrow(TypeError);
    expect(() => new WsMsgpackServer({ [key]: value } as never)).toThrow(new RegExp(`option ${key} must be a number of ms >= 0 or Infinity, got `));
  });

  it('Infinity and 0 are accepted for every time option', () => {
    expect(() => resolveLimits({ keepAliveInterval: Infinity, keepAliveTimeout: Infinity })).not.toThrow();
    for (const v of [0, Infinity, 1.5, 2 ** 40]) {
      expect(() => new WsMsgpackServer({ drainTimeout: v, closeTimeout: v, handshakeTimeout: v, keepAliveInterval: v, keepAliveTimeout: v })).not.toThrow();
    }
  });
});

describe('OutboundCredit', () => {
  it('adds up exactly up to 2^53-1 and no further (so the count never goes inexact)', () => {
    const c = new OutboundCredit(0);
    c.add(Number.MAX_SAFE_INTEGER);
    c.add(Number.MAX_SAFE_INTEGER);
    expect(c.value).toBe(Number.MAX_SAFE_INTEGER);
    expect(c.take()).toBe(true);
    expect(c.value).toBe(Number.MAX_SAFE_INTEGER - 1);
  });
});

describe('client options checked at construction', () => {
  it('a URL that is not ws:// or wss:// is a TypeError, not an endless retry', () => {
    expect(() => new WsMsgpackWebClient({ url: 'not a url', WebSocket: FakeWebSocket })).toThrow(/options\.url "not a url" is not a ws:\/\/ or wss:\/\/ URL/);
    expect(() => new WsMsgpackClient({ url: ['ws://127.0.0.1:1', 'ftp://x'] })).toThrow(/"ftp:\/\/x" is not a ws:\/\/ or wss:\/\/ URL/);
  });

  it.each([
    [{ connectTimeout: Infinity }, /^nestjs-ws-msgpack: option connectTimeout must be a finite number of milliseconds > 0, got Infinity$/],
    [{ connectTimeout: 0 }, /option connectTimeout/],
    [{ readyTimeout: -1 }, /option readyTimeout must be a number of milliseconds >= 0/],
    [{ timeout: Number.NaN }, /option timeout/],
    [{ maxPendingEvents: 1.5 }, /option maxPendingEvents must be a whole number >= 0 or Infinity/],
    [{ reconnect: { factor: 0.5 } }, /option reconnect\.factor must be a finite number >= 1/],
    [{ reconnect: { maxAttempts: 0 } }, /option reconnect\.maxAttempts/],
    [{ reconnect: { maxDelay: Infinity } }, /option reconnect\.maxDelay/],
    [{ reconnect: 'yes' }, /option reconnect must be true, false or an object, got "yes"/],
  ])('new WsMsgpackClient(%j) is refused, naming the option', (bad, message) => {
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', ...(bad as object) })).toThrow(message);
  });

  it('Infinity is accepted where it means "no limit" (readyTimeout, maxPendingEvents, reconnect.maxAttempts)', () => {
    expect(() => new WsMsgpackClient({ url: 'ws://127.0.0.1:1', readyTimeout: Infinity, maxPendingEvents: Infinity, reconnect: { maxAttempts: Infinity } })).not.toThrow();
  });

  it('handle() with no pattern is a TypeError', () => {
    const c = new WsMsgpackWebClient({ url: 'ws://127.0.0.1:1', WebSocket: FakeWebSocket });
    expect(() => c.handle(undefined, () => 1)).toThrow(/the pattern must be a string, a number or an object/);
  });
});
