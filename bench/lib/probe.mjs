// Server-side producer probe: the rows' stream handlers report every item they produce and when
// their producer stops (finalize / finally). server-host.mjs answers the orchestrator's queries
// from this state and pushes a 'probe-stop' event the moment a producer stops.
import { now } from './clock.mjs';

const RING = 8192;
const producers = new Map();
let stopListener = () => {};

export function onStop(fn) {
  stopListener = fn;
}

function get(tag) {
  let p = producers.get(tag);
  if (!p) {
    p = { produced: 0, startedAt: now(), stoppedAt: undefined, stamps: new Float64Array(RING) };
    producers.set(tag, p);
  }
  return p;
}

/** The producer for `tag` started. */
export function start(tag) {
  get(tag);
}

/** The producer for `tag` produced one item. */
export function tick(tag) {
  const p = get(tag);
  p.stamps[p.produced % RING] = now();
  p.produced++;
}

/** The producer for `tag` stopped (its finalize / finally ran). */
export function stop(tag) {
  const p = get(tag);
  if (p.stoppedAt !== undefined) return;
  p.stoppedAt = now();
  stopListener(tag, p.stoppedAt, p.produced);
}

/** State of `tag`; `producedAfter` counts the items produced after time `since` (the last RING items are kept). */
export function report(tag, since) {
  const p = producers.get(tag);
  if (!p) return { known: false, produced: 0, producedAfter: 0, stopped: false };
  let after = 0;
  if (since !== undefined) {
    const n = Math.min(p.produced, RING);
    for (let k = 0; k < n; k++) if (p.stamps[(p.produced - 1 - k) % RING] > since) after++;
  }
  return { known: true, produced: p.produced, producedAfter: after, stopped: p.stoppedAt !== undefined, stoppedAt: p.stoppedAt };
}

export function forget(tag) {
  producers.delete(tag);
}

/** Producers still running (a server with one is "dirty": it keeps burning CPU). */
export function running() {
  let n = 0;
  for (const p of producers.values()) if (p.stoppedAt === undefined) n++;
  return n;
}
