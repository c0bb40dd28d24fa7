import { WsMsgpackError } from '../protocol/errors.js';

/** Reports of one kind passed on per window; the rest are counted and summed up once. */
const REPORTS_PER_WINDOW = 10;
/** The window, in ms. */
const WINDOW_MS = 1000;

/**
 * Passes on at most {@link REPORTS_PER_WINDOW} reports of a peer's bad frames per second, and
 * sums up the rest in one report at the end of the window: a peer flooding invalid frames cannot
 * flood the logs (one error and its stack per frame) or spend the server's time on reports.
 */
export class ReportLimiter {
  private windowStart = -Infinity;
  private passed = 0;
  private suppressed = 0;
  private summary: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly report: (error: Error) => void) {}

  /** Reports `make()` unless the window's share is used up (then only counts it). */
  offer(make: () => WsMsgpackError): void {
    const now = Date.now();
    if (now - this.windowStart >= WINDOW_MS) {
      this.windowStart = now;
      this.passed = 0;
    }
    if (this.passed < REPORTS_PER_WINDOW) {
      this.passed++;
      this.report(make());
      return;
    }
    if (this.suppressed++ === 0) {
      const last = make();
      this.summary = setTimeout(() => this.flush(last), Math.max(1, this.windowStart + WINDOW_MS - now));
      (this.summary as { unref?: () => void }).unref?.();
    }
  }

  /** Sums up what was held back now (the connection ended). */
  stop(): void {
    if (this.summary === undefined) return;
    clearTimeout(this.summary);
    this.summary = undefined;
    if (this.suppressed > 0) this.report(this.summed());
    this.suppressed = 0;
  }

  private flush(last: WsMsgpackError): void {
    this.summary = undefined;
    if (this.suppressed === 0) return;
    const error = this.summed(last);
    this.suppressed = 0;
    this.report(error);
  }

  private summed(last?: WsMsgpackError): WsMsgpackError {
    const n = this.suppressed;
    return new WsMsgpackError(
      last?.code ?? 'PROTOCOL_ERROR',
      `${n} more such frame${n === 1 ? '' : 's'} from the peer within a second were not reported one by one${last ? `; the first: ${last.message}` : ''}`,
      { suppressed: n },
    );
  }
}
