/**
 * What the transport reads of `ws` internals (not its public API), checked against ws 8.x
 * (8.23): `test/unit/patches.spec.ts` fails when they change shape. Each reader returns
 * `undefined` (or 0) when the shape is not as expected, and the caller goes without: no corking of
 * a batch of frames, no incomplete-message timeout.
 *
 * - `_socket`: the TCP socket under a WebSocket (corking batches of frames; the 'data' events the
 *   incomplete-message timeout watches);
 * - `_receiver._bufferedBytes` / `_receiver._fragments`: the bytes of a message that has begun and
 *   not ended (`incompleteMessageTimeout`).
 */

interface ReceiverInternals {
  _bufferedBytes?: unknown;
  _fragments?: unknown;
}

/** The TCP socket under a `ws` WebSocket (`ws._socket`), as far as `T` says; undefined when there is none. */
export function rawSocketOf<T>(ws: object): Partial<T> | undefined {
  const raw = (ws as { _socket?: unknown })._socket;
  return typeof raw === 'object' && raw !== null ? (raw as Partial<T>) : undefined;
}

/** `ws`'s Receiver, when it has the internals {@link bytesOfPartialMessage} reads. */
function receiverOf(ws: object): ReceiverInternals | undefined {
  const r = (ws as { _receiver?: ReceiverInternals })._receiver;
  return r && typeof r._bufferedBytes === 'number' && Array.isArray(r._fragments) ? r : undefined;
}

/** Whether the incomplete-message check can read `ws`'s Receiver. */
export function hasReceiverInternals(ws: object): boolean {
  return receiverOf(ws) !== undefined;
}

/** Bytes of a message that has begun and not ended (0: none, or the internals are not there), from ws's Receiver. */
export function bytesOfPartialMessage(ws: object): number {
  const r = receiverOf(ws);
  if (!r) return 0;
  let n = r._bufferedBytes as number;
  for (const f of r._fragments as { length?: unknown }[]) if (typeof f.length === 'number') n += f.length;
  return n;
}
