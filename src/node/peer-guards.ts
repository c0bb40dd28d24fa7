import type { PeerGuards } from '../connection/guards.js';
import { ReportLimiter } from '../connection/report-limiter.js';
import { sharedEstimator } from '../protocol/decoded-size.js';
import { ReadThrottle } from './read-throttle.js';

export type { PeerGuards, ReportSink } from '../connection/guards.js';

/** The guards of the server's and the Nest client's connections. */
export const NODE_PEER_GUARDS: PeerGuards = {
  estimator: sharedEstimator,
  limitReports: (report) => new ReportLimiter(report),
  throttleReading: (reader, writer) => new ReadThrottle(reader, writer),
};
