// Memory of the current process: a baseline after a full GC, then the peak RSS and heap over a
// period (sampled every 5 ms, plus the kernel's peak RSS when it rose during the period, which
// catches peaks the sampler missed while the event loop was busy).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn = globalThis.gc;
if (!gcFn) {
  try {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc');
  } catch {
    gcFn = undefined;
  }
}

export function fullGc() {
  if (gcFn) {
    gcFn();
    gcFn();
  }
}

export function memSnapshot() {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external + m.arrayBuffers, maxRss: process.resourceUsage().maxRSS * 1024 };
}

export class MemSampler {
  constructor(intervalMs = 5) {
    fullGc();
    this.baseline = memSnapshot();
    this.peakRss = this.baseline.rss;
    this.peakHeap = this.baseline.heapUsed;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample() {
    const m = process.memoryUsage();
    if (m.rss > this.peakRss) this.peakRss = m.rss;
    if (m.heapUsed > this.peakHeap) this.peakHeap = m.heapUsed;
  }

  /** Stops sampling; growth = peak − baseline, in bytes. */
  stop() {
    clearInterval(this.timer);
    this.sample();
    const end = memSnapshot();
    if (end.maxRss > this.baseline.maxRss && end.maxRss > this.peakRss) this.peakRss = end.maxRss;
    return {
      baseline: this.baseline,
      end,
      peakRss: this.peakRss,
      peakHeap: this.peakHeap,
      rssGrowth: this.peakRss - this.baseline.rss,
      heapGrowth: this.peakHeap - this.baseline.heapUsed,
    };
  }
}
