import type { Connection } from '../../src/connection/connection.js';
import { connectAttempt, preparedOption, type SocketAttempt } from '../../src/session/attempt.js';

/** A promise settled from outside. */
function gate<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A socket attempt the test opens or fails, recording what was asked of it. */
function socketAttempt() {
  const opened = gate<Connection>();
  const log = { cancelled: [] as string[] };
  const attempt: SocketAttempt = { opened: opened.promise, cancel: (reason) => log.cancelled.push(reason) };
  return { attempt, opened, log };
}

/** A stand-in connection that records close(). */
function connection() {
  const closes: unknown[][] = [];
  return { conn: { close: (...args: unknown[]) => closes.push(args) } as unknown as Connection, closes };
}

const codeOf = (e: unknown) => (e as { code?: string }).code;
const settled = <T>(p: Promise<T>) =>
  p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );

describe('connectAttempt: prepare, then the socket, within connectTimeout', () => {
  it('resolves with the connection the socket opened, with what prepare gave', async () => {
    const s = socketAttempt();
    const given: unknown[] = [];
    const a = connectAttempt('ws://x', 10_000, { prepare: async () => 'token', open: (p) => (given.push(p), s.attempt) });
    const { conn } = connection();
    await Promise.resolve();
    await Promise.resolve();
    s.opened.resolve(conn);
    expect(await a.opened).toBe(conn);
    expect(given).toEqual(['token']);
  });

  it('without prepare, the socket is opened at once (in the constructor)', async () => {
    let opens = 0;
    const a = connectAttempt('ws://x', 10_000, { open: () => (opens++, socketAttempt().attempt) });
    expect(opens).toBe(1);
    a.cancel('test over');
    await expect(a.opened).rejects.toThrow('cannot connect to ws://x: test over');
  });

  it('cancel() while prepare has not answered settles opened at once with UNAVAILABLE; a late answer opens nothing', async () => {
    const late = gate<unknown>();
    let opens = 0;
    const a = connectAttempt('ws://x', 10_000, { prepare: () => late.promise, open: () => (opens++, socketAttempt().attempt) });
    a.cancel('client.close() was called');
    const outcome = await settled(a.opened);
    expect(codeOf((outcome as { error: unknown }).error)).toBe('UNAVAILABLE');
    expect(String((outcome as { error: Error }).error.message)).toBe('cannot connect to ws://x: client.close() was called');
    late.resolve('token');
    await late.promise;
    await new Promise((r) => setImmediate(r));
    expect(opens).toBe(0);
  });

  it('cancel() while the socket opens calls the socket off too; a socket that opens after all is closed', async () => {
    const s = socketAttempt();
    const a = connectAttempt('ws://x', 10_000, { open: () => s.attempt });
    a.cancel('called off');
    expect(codeOf(((await settled(a.opened)) as { error: unknown }).error)).toBe('UNAVAILABLE');
    expect(s.log.cancelled).toEqual(['called off']);
    const { conn, closes } = connection();
    s.opened.resolve(conn);
    await new Promise((r) => setImmediate(r));
    expect(closes).toEqual([[1000, 'client closed']]);
  });

  it('a prepare that never answers fails the attempt at connectTimeout', async () => {
    const a = connectAttempt('ws://x', 5, { prepare: () => new Promise(() => {}), open: () => socketAttempt().attempt });
    const outcome = (await settled(a.opened)) as { error: Error };
    expect({ code: codeOf(outcome.error), message: outcome.error.message }).toEqual({
      code: 'UNAVAILABLE',
      message: 'cannot connect to ws://x: no connection within 5 ms (connectTimeout)',
    });
  });

  it("the socket's own failure and prepare's rejection fail the attempt with their error; cancel() afterwards changes nothing", async () => {
    const s = socketAttempt();
    const refused = new Error('ECONNREFUSED');
    const a = connectAttempt('ws://x', 10_000, { open: () => s.attempt });
    s.opened.reject(refused);
    expect(await settled(a.opened)).toEqual({ error: refused });
    a.cancel('late');
    expect(s.log.cancelled).toEqual([]);
    const bad = new Error('no token');
    const b = connectAttempt('ws://x', 10_000, { prepare: () => Promise.reject(bad), open: () => socketAttempt().attempt });
    expect(await settled(b.opened)).toEqual({ error: bad });
  });
});

describe('preparedOption: a headers/token option or its function', () => {
  it('a value is given as it is; a function is called, and its (awaited) result given', async () => {
    const reports: Error[] = [];
    expect(await preparedOption('ws://x', 'token', 'abc', (e) => reports.push(e))).toBe('abc');
    expect(
      await preparedOption(
        'ws://x',
        'token',
        async () => 'def',
        (e) => reports.push(e),
      ),
    ).toBe('def');
    expect(reports).toEqual([]);
  });

  it('a function that throws is reported and fails the attempt with UNAVAILABLE naming it', async () => {
    const reports: Error[] = [];
    const outcome = (await settled(
      preparedOption(
        'ws://x',
        'headers',
        () => {
          throw new Error('vault down');
        },
        (e) => reports.push(e),
      ),
    )) as { error: Error };
    expect({ code: codeOf(outcome.error), message: outcome.error.message, reports: reports.map((e) => e.message) }).toEqual({
      code: 'UNAVAILABLE',
      message: 'cannot connect to ws://x: the headers function threw: vault down',
      reports: ['the headers function threw: vault down'],
    });
  });
});
