// A clock shared by the benchmark's processes: all of them run on one machine, so wall-clock
// milliseconds with sub-millisecond resolution (timeOrigin + monotonic offset) are comparable
// across processes to well under a millisecond.
export const now = () => performance.timeOrigin + performance.now();
