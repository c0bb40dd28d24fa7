import type { DecodedSizeEstimator } from '../protocol/decoded-size.js';
import type { WsMsgpackError } from '../protocol/errors.js';
import type { FrameWriter } from './frame-writer.js';
import type { ReadControl } from './socket.js';

/** Where a connection sends the reports of its peer's bad frames. */
export interface ReportSink {
  /** Reports `make()` (or only counts it, past a limit). */
  offer(make: () => WsMsgpackError): void;
  /** The connection ended: what was held back is reported now. */
  stop(): void;
}

/**
 * What a Node side (the server, and the Nest client) adds to a connection against a hostile peer:
 * the decoded-size estimate of every frame, limited reports, and (a server) input backpressure.
 * The browser client passes none, so its bundle carries none of it; there a frame is charged its
 * own bytes, and every report goes through.
 */
export interface PeerGuards {
  /** Estimates each frame's decoded size before it is decoded (what `maxInboundBytes` counts). */
  readonly estimator: DecodedSizeEstimator;
  /** The reports of the peer's bad frames, at most a few per second. */
  limitReports(report: (error: Error) => void): ReportSink;
  /** A server stops reading a peer whose outbound is congested (see ReadThrottle). */
  throttleReading(reader: ReadControl, writer: FrameWriter): { afterFrame(): void };
}
