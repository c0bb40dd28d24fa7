import type { Headers } from '../protocol/frames.js';

/** Per-call options carried by a {@link WsMsgpackRecord}. */
export interface WsMsgpackCallOptions {
  /** Headers for the handler (`ctx.getHeaders()` / `@WsHeaders()`). */
  headers?: Headers;
  /** Deadline in milliseconds; the call fails with DEADLINE_EXCEEDED and the handler is aborted after it. */
  timeout?: number;
  /** Credit window for this call's response stream (0 = unlimited). */
  window?: number;
}

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
  setHeaders(headers: Headers): this {
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

  /** Returns the record. */
  build(): WsMsgpackRecord<TData> {
    return new WsMsgpackRecord(this.data as TData, this.options);
  }
}
