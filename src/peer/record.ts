import type { OverflowStrategy, WsMsgpackCallOptions } from '../connection/options.js';
import type { WsMsgpackCallHeaders } from '../protocol/frames.js';

export type { WsMsgpackCallOptions } from '../connection/options.js';

/**
 * Data plus per-call options. Pass it as the data of `client.send()` / `client.emit()`;
 * the handler receives only `data`.
 */
export class WsMsgpackRecord<TData = unknown> {
  constructor(
    /** The request data (or a request stream). */
    readonly data: TData,
    /** Per-call options. */
    readonly options: WsMsgpackCallOptions = {},
  ) {}
}

/**
 * Builds a {@link WsMsgpackRecord}, like Nest's `NatsRecordBuilder`:
 *
 * ```ts
 * const record = new WsMsgpackRecordBuilder({ a: 1 }).setHeaders({ tenant: 'x' }).setTimeout(500).build();
 * client.send('sum', record);
 * ```
 */
export class WsMsgpackRecordBuilder<TData = unknown> {
  private options: WsMsgpackCallOptions = {};

  constructor(private data?: TData) {}

  /** Sets the data. */
  setData(data: TData): this {
    this.data = data;
    return this;
  }

  /** Sets the headers (replacing earlier ones). */
  setHeaders(headers: WsMsgpackCallHeaders): this {
    this.options = { ...this.options, headers };
    return this;
  }

  /** Sets the deadline in milliseconds from when the call starts. */
  setTimeout(ms: number): this {
    this.options = { ...this.options, timeout: ms };
    return this;
  }

  /** Sets the credit window for the response stream (0 = unlimited). */
  setWindow(items: number): this {
    this.options = { ...this.options, window: items };
    return this;
  }

  /**
   * Sets the overflow strategy for this call's streams: the request stream this side sends, and
   * the response stream (the server applies it in place of its own `overflow` option).
   */
  setOverflow(strategy: OverflowStrategy): this {
    this.options = { ...this.options, overflow: strategy };
    return this;
  }

  /**
   * Whether this call, made while the client is not connected, waits through reconnect attempts
   * (up to its deadline, or `readyTimeout`), or fails fast: it waits only for an attempt under way
   * and fails at once with UNAVAILABLE while the last attempt failed. Default: the client's
   * `waitForReady` (false: fail fast).
   */
  setWaitForReady(wait: boolean): this {
    this.options = { ...this.options, waitForReady: wait };
    return this;
  }

  /** Returns the record. */
  build(): WsMsgpackRecord<TData> {
    return new WsMsgpackRecord(this.data as TData, this.options);
  }
}

/**
 * What a call's `data` argument means: a {@link WsMsgpackRecord} carries the payload and per-call
 * options; anything else is the payload itself. `defaultTimeout` applies when the record sets none.
 */
export function unpackCall(data: unknown, defaultTimeout?: number): { payload: unknown; options: WsMsgpackCallOptions } {
  if (!(data instanceof WsMsgpackRecord)) return { payload: data, options: defaultTimeout === undefined ? {} : { timeout: defaultTimeout } };
  const options: WsMsgpackCallOptions = { ...data.options };
  if (options.timeout === undefined && defaultTimeout !== undefined) options.timeout = defaultTimeout;
  return { payload: data.data, options };
}
