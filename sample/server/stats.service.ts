import { Injectable } from '@nestjs/common';
import type { AuditEvent, Stats } from '../shared.js';

/** Counters that let the client observe what happened on the server. */
@Injectable()
export class StatsService {
  sleepAborts = 0;
  intervalTeardowns = 0;
  quoteStreams = 0;
  quoteStops = 0;
  audits = 0;
  lastAudit: AuditEvent | null = null;

  snapshot(): Stats {
    return {
      sleepAborts: this.sleepAborts,
      intervalTeardowns: this.intervalTeardowns,
      quoteStreams: this.quoteStreams,
      quoteStops: this.quoteStops,
      audits: this.audits,
      lastAudit: this.lastAudit,
    };
  }
}
