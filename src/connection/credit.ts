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
  consumed(): number {
    if (this.unlimited) return 0;
    this.taken++;
    const ahead = this.granted - this.taken;
    if (ahead > this.window / 2) return 0;
    const grant = this.window - ahead;
    this.granted += grant;
    return grant;
  }
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
