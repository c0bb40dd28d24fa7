/**
 * A pattern as text, in the two ways this package needs one (pure; the Nest side adds a size
 * check for patterns a peer chose, see `nest/patterns.ts`):
 * - {@link patternText}: as Nest's TCP transport puts it on the wire and in span names: a
 *   string as it is, anything else as its JSON, keys in the order given;
 * - {@link routeKey}: the key of a route, as Nest computes it: the same, with object keys sorted,
 *   so `{ cmd: 'x', v: 1 }` and `{ v: 1, cmd: 'x' }` are one route.
 */

/** A pattern as text: a string as it is, anything else as its JSON (or `String()` when it has none). */
export function patternText(pattern: unknown): string {
  if (typeof pattern === 'string') return pattern;
  try {
    return JSON.stringify(pattern) ?? String(pattern);
  } catch {
    return String(pattern);
  }
}

/**
 * The route key of a pattern: a string as is, anything else as its JSON with object keys sorted.
 * Throws for a pattern that has no JSON form (a bigint in it, a cycle): no route can have it, and
 * a fallback text would make distinct patterns one route.
 */
export function routeKey(pattern: unknown): string {
  if (typeof pattern === 'string') return pattern;
  if (typeof pattern === 'number') return String(pattern);
  return JSON.stringify(sortKeys(pattern));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}
