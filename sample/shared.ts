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
  /** `audit` events received. */
  audits: number;
  /** The last `audit` event. */
  lastAudit: AuditEvent | null;
}

/** Name of the ClientsModule client the HTTP controller uses. */
export const MATH_CLIENT = 'MATH';
