/**
 * Patterns as a peer sends them: what can be looked up at all, and how a log line shows one. A
 * peer chooses them, so nothing here walks, encodes or keeps one whole before it is known small.
 */

/**
 * Longest pattern (as a string, or an object pattern's JSON) that can match a handler. Routes are
 * short; a longer pattern is answered as unknown without being parsed or normalised (Nest's lookup
 * JSON-parses and walks it: a 15 MB pattern stopped the event loop for seconds).
 */
export const MAX_PATTERN_LENGTH = 4096;

/** Values an object pattern may hold (keys and values, nested) to be looked up at all. */
const MAX_PATTERN_VALUES = 256;

/**
 * The pattern as Nest's TCP transport sees it: strings as-is, anything else JSON-encoded;
 * undefined when it cannot be encoded or is too long to be any handler's.
 */
export function patternAsString(pattern: unknown): string | undefined {
  if (typeof pattern === 'string') return pattern.length <= MAX_PATTERN_LENGTH ? pattern : undefined;
  if (!smallPattern(pattern)) return undefined; // before anything walks or encodes it whole
  try {
    const s = JSON.stringify(pattern); // no fallback text: a pattern without a JSON form is no route's
    return s !== undefined && s.length <= MAX_PATTERN_LENGTH ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `v` could be a pattern at all: at most {@link MAX_PATTERN_VALUES} values (keys and
 * values of its maps and arrays, nested) and at most {@link MAX_PATTERN_LENGTH} characters of
 * strings and bytes of binaries in all; checked before anything walks or encodes it whole.
 */
function smallPattern(v: unknown): boolean {
  const stack: unknown[] = [v];
  let values = 0;
  let size = 0;
  while (stack.length > 0) {
    const x = stack.pop();
    if (typeof x === 'string') size += x.length;
    else if (ArrayBuffer.isView(x)) size += x.byteLength;
    else if (Array.isArray(x)) {
      values += x.length;
      if (values <= MAX_PATTERN_VALUES) for (const child of x) stack.push(child);
    } else if (typeof x === 'object' && x !== null) {
      const keys = Object.keys(x);
      values += 2 * keys.length;
      if (values <= MAX_PATTERN_VALUES) for (const key of keys) stack.push(key, (x as Record<string, unknown>)[key]);
    }
    if (values > MAX_PATTERN_VALUES || size > MAX_PATTERN_LENGTH) return false;
  }
  return true;
}

/** How a log line names a pattern that could match no handler (too long, or not a string, number or map). */
const UNREADABLE = '(a pattern over 4,096 characters, or not a string, number or map)';

/**
 * A peer-chosen pattern for a log line, from what {@link patternAsString} made of it (at most
 * 4,096 characters, or undefined): a string pattern quoted and escaped as JSON, so newlines and
 * terminal escapes cannot forge lines; another pattern as its JSON (escaped already); cut at 100
 * characters. `original` is the pattern as sent (only its type is looked at).
 */
export function shown(asString: string | undefined, original?: unknown): string {
  if (asString === undefined) return UNREADABLE;
  const cut = asString.length > 100 ? asString.slice(0, 100) : asString;
  const text = typeof original === 'string' ? JSON.stringify(cut) : cut;
  return asString.length > 100 ? `${text}… (${asString.length} characters)` : text;
}
