/**
 * Receiver-side credit accounting for one inbound stream (REQUEST_N style).
 * The receiver grants `window` items up front and, once half of them have been consumed, tops the
 * grant back up to `window` items beyond what was consumed, so a steady stream sends one CREDIT frame
 * per `window / 2` items and the sender is never more than `window` items ahead of the consumer.
 * A window of 0 means "unlimited": nothing is granted and nothing is counted.
 */
export class InboundCredit {
  private granted: number;
  private received = 0;
  private taken = 0;

  constructor(readonly window: number) {
    this.granted = window;
  }

  /** True when the sender is not flow-controlled. */
  get unlimited(): boolean {
    return this.window === 0;
  }

  /** Items the sender may still send without more credit. */
  get outstanding(): number {
    return this.unlimited ? Infinity : this.granted - this.received;
  }

  /**
   * Records one received item. Returns false when the sender exceeded its credit
   * (a protocol violation: the item must not be delivered).
   */
  receive(): boolean {
    if (this.unlimited) return true;
    if (this.received >= this.granted) return false;
    this.received++;
    return true;
  }

  /**
   * Call when one item was handed to the consumer. Returns the credit to grant now (0 when no
   * CREDIT frame is due). Counting consumption rather than arrival keeps the sender at most one
   * window ahead of the consumer, however many items wait in a local buffer.
   */
  consumed(cap = Infinity): number {
    if (this.unlimited) return 0;
    this.taken++;
    return this.topUp(cap);
  }

  /**
   * The credit to grant now (0 when none is due), at most `cap`: credit held back by a cap is
   * granted by a later call, once the consumer has taken more.
   */
  topUp(cap = Infinity): number {
    if (this.unlimited) return 0;
    const ahead = this.granted - this.taken;
    if (ahead > this.window / 2) return 0;
    const grant = Math.min(this.window - ahead, cap);
    if (!(grant > 0)) return 0;
    this.granted += grant;
    return grant;
  }
}

/**
 * A cap on credit that keeps a stream's bytes within `maxBytes`: what waits for the consumer, plus
 * what the outstanding credit may still bring, at the average item size seen so far. Never 0 when
 * nothing waits and nothing is on its way (one item at a time, however big), so a stream never
 * stalls. Infinity before any item has been seen.
 */
export function byteCap(maxBytes: number, waitingBytes: number, outstanding: number, averageItem: number): number {
  if (!(averageItem > 0) || !(maxBytes < Infinity)) return Infinity;
  const cap = Math.floor((maxBytes - waitingBytes) / averageItem) - outstanding;
  if (cap > 0) return cap;
  return waitingBytes === 0 && outstanding === 0 ? 1 : 0;
}

/** Sender-side credit: how many items may be sent now. `Infinity` when unlimited. */
export class OutboundCredit {
  constructor(private available: number) {}

  /** Items that may be sent before more credit arrives. */
  get value(): number {
    return this.available;
  }

  /** Adds credit granted by the receiver (capped at 2^53 − 1, which is as good as unlimited, so the count stays exact). */
  add(n: number): void {
    this.available = Math.min(this.available + n, Number.MAX_SAFE_INTEGER);
  }

  /** Takes one unit; returns false when none is left. */
  take(): boolean {
    if (this.available <= 0) return false;
    this.available--;
    return true;
  }
}
