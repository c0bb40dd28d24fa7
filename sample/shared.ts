/** Payloads and answers shared by the sample server and client. */

export interface DivRequest {
  a: number;
  b: number;
}

export interface SleepRequest {
  seconds: number;
}

export interface RepeatRequest {
  word: string;
  count: number;
}

export interface Row {
  id: number;
  name: string;
}

export interface Price {
  symbol: string;
  tick: number;
  price: number;
}

/** One item of the endless `quotes` stream the browser page shows. */
export interface Quote extends Price {
  /** When the server made it (msgpack timestamp: a Date on both sides). */
  at: Date;
}

export interface QuotesRequest {
  symbol: string;
  /** Milliseconds between quotes (clamped to 20 … 5000; default 300). */
  everyMs?: number;
}

/** What `ask-page` answers: the server called the page's `browser.confirm` handler and got `answer`. */
export interface PageAnswer {
  question: string;
  answer: boolean;
  /** From the server's call to the page until its answer. */
  ms: number;
}

export interface AuditEvent {
  user: string;
  action: string;
}

/** What the server counted; the client asks for it (`stats`) to see effects on the server side. */
export interface Stats {
  /** `sleep` calls whose AbortSignal fired (cancelled by the client or past their deadline). */
  sleepAborts: number;
  /** `interval` streams whose producer was torn down (the client stopped listening). */
  intervalTeardowns: number;
  /** `quotes` streams started (the browser page's live stream). */
  quoteStreams: number;
  /** `quotes` producers torn down (the page cancelled, or closed). */
  quoteStops: number;
  /** `audit` events received. */
  audits: number;
  /** The last `audit` event. */
  lastAudit: AuditEvent | null;
}

/** Name of the ClientsModule client the HTTP controller uses. */
export const MATH_CLIENT = 'MATH';
