// Medians and number formatting for the report.
export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 3 significant digits below 1,000, integers with separators above. */
export function num(x) {
  if (x === undefined || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1000) return int.format(x);
  if (a === 0) return '0';
  return Number(x.toPrecision(3)).toString();
}

export const fmt = {
  rate: (unit) => (x) => `${num(x)}${unit}`,
  ms: (x) => (x === undefined ? '–' : `${num(x)} ms`),
  mb: (x) => (x === undefined ? '–' : `${x >= 0 ? '+' : '−'}${num(Math.abs(x) / 1e6)} MB`),
  kib: (x) => (x === undefined ? '–' : `${num(x / 1024)} KiB`),
  count: (x) => num(x),
};

export function ratioText(r) {
  if (r === undefined || !Number.isFinite(r)) return '';
  return ` (${r >= 10 ? r.toFixed(0) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×)`;
}
