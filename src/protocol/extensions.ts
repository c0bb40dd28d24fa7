import { EXT_TIMESTAMP, ExtData, ExtensionCodec, decodeTimestampExtension, encodeTimestampExtension, type ExtensionCodecType } from '@msgpack/msgpack';

/**
 * A msgpack extension type for one of the application's classes (`Decimal`, `ObjectId`, a money
 * type): how its values become bytes and back. Both ends must register the same `type`.
 *
 * ```ts
 * const money: WsMsgpackExtension<Money> = {
 *   type: 1,
 *   encode: (v) => (v instanceof Money ? new TextEncoder().encode(`${v.currency} ${v.cents}`) : null),
 *   decode: (bytes) => Money.parse(new TextDecoder().decode(bytes)),
 * };
 * new WsMsgpackServer({ extensions: [money] }); new WsMsgpackClient({ url, extensions: [money] });
 * ```
 */
export interface WsMsgpackExtension<T = unknown> {
  /** The extension type number: 0–127 are the application's (docs/PROTOCOL.md, "Value mapping"). */
  readonly type: number;
  /** The bytes of `value` when it is one of this extension's values; `null` for any other value. */
  encode(value: unknown): Uint8Array | null;
  /** The value of `data` (the bytes `encode` made). */
  decode(data: Uint8Array): T;
}

/** Extension options, on the server, the Node client and the browser client alike. */
export interface ExtensionOptions {
  /** The application's extension types (each `type` 0–127, each once). */
  extensions?: readonly WsMsgpackExtension[];
  /**
   * An `@msgpack/msgpack` `ExtensionCodec` with the application's types registered, for code that
   * already has one. Asked after `extensions`; the timestamp (type −1, `Date`) stays this
   * library's either way.
   */
  extensionCodec?: ExtensionCodecType<undefined>;
}

/** Encodes a `Date` as the msgpack timestamp; an Invalid Date throws rather than going out as 1970. */
function encodeDate(object: unknown): Uint8Array | null {
  if (object instanceof Date && Number.isNaN(object.getTime())) throw new RangeError('an Invalid Date cannot be encoded as a msgpack timestamp');
  return encodeTimestampExtension(object);
}

/**
 * The default extensions (the timestamp, type -1), except that an Invalid Date throws: the library
 * writes it as a timestamp of NaN seconds, which goes out as 1970-01-01T00:00:00Z (data loss with
 * no error; the call then fails with INTERNAL instead). A received timestamp outside the range of a
 * JavaScript Date still decodes, as an Invalid Date.
 */
export const DEFAULT_EXTENSIONS: ExtensionCodecType<undefined> = (() => {
  const codec = new ExtensionCodec();
  codec.register({ type: EXT_TIMESTAMP, encode: encodeDate, decode: decodeTimestampExtension });
  return codec;
})();

/** The extension codec for `options` (checked): the defaults when the application adds none. */
export function extensionCodecOf(options: ExtensionOptions): ExtensionCodecType<undefined> {
  const { extensions = [], extensionCodec: theirs } = options;
  if (options.extensions === undefined && theirs === undefined) return DEFAULT_EXTENSIONS;
  const bad = (what: string): never => {
    throw new TypeError(`nestjs-ws-msgpack: ${what}`);
  };
  if (!Array.isArray(extensions)) bad('option extensions must be an array of { type, encode, decode }');
  const own = new ExtensionCodec();
  own.register({ type: EXT_TIMESTAMP, encode: encodeDate, decode: decodeTimestampExtension });
  const types = new Set<number>();
  for (const e of extensions) {
    const t = (e as Partial<WsMsgpackExtension> | null)?.type;
    if (!Number.isInteger(t) || t! < 0 || t! > 127) bad(`an extension's type must be a whole number 0-127 (got ${String(t)}); -128..-1 are reserved by msgpack (-1: timestamp)`);
    if (types.has(t!)) bad(`extension type ${t} is registered twice`);
    if (typeof e.encode !== 'function' || typeof e.decode !== 'function') bad(`extension type ${t} needs encode and decode functions`);
    types.add(t!);
    own.register({ type: t!, encode: (v) => e.encode(v), decode: (data) => e.decode(data) });
  }
  if (!theirs) return own;
  if (typeof theirs.tryToEncode !== 'function' || typeof theirs.decode !== 'function') bad('option extensionCodec must be an @msgpack/msgpack ExtensionCodec');
  return {
    tryToEncode: (object, context) => own.tryToEncode(object, context) ?? theirs.tryToEncode(object, context),
    decode: (data, type, context) => (type === EXT_TIMESTAMP || types.has(type) ? own : theirs).decode(data, type, context),
  };
}

export { ExtData };
