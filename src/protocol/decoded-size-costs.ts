/**
 * The costs the decoded-size estimate charges (V8, 64-bit, as `@msgpack/msgpack` builds values), in
 * bytes unless said otherwise; calibrated by test/unit/decoded-size.spec.ts against measured heap
 * growth (docs/PROTOCOL.md, "Limits": the cost table).
 */

/** The slot that holds every value: an array element, a map key or value, or the frame itself. */
export const SLOT = 8;
/** An array object, besides its elements' slots. */
export const ARRAY = 32;
/** The backing store of a non-empty array or of an object's integer keys, besides its slots. */
export const STORE = 16;
/** A map (a plain object), besides its entries. */
export const MAP = 56;
/** A map key whose bytes were not seen before in this frame: the key string, the property and a new hidden class. */
export const NEW_KEY = 160;
/**
 * Named keys one object holds as fast properties (4 in the object, 12 more beside it): the
 * decoder adds keys one by one, and past this V8 moves them into a dictionary.
 */
export const MAX_FAST_PROPERTIES = 16;
/** One named property in such a dictionary (key, value, details, and the table's free slots). */
export const DICTIONARY_PROPERTY = 56;
/** A number stored outside its slot (a double, an integer beyond 2^31). */
export const BOXED = 16;
/** A 64-bit integer (a bigint). */
export const BIGINT = 24;
/** A string of 2 bytes or more (shorter ones are shared by V8), besides its characters: 2 bytes each at most. */
export const STRING = 24;
/** A `bin` (a Buffer view of the frame's bytes). */
export const BINARY = 104;
/** An extension value (ExtData, a Date, or the application's own type), besides its payload bytes. */
export const EXTENSION = 140;
/** Element slots V8 allocates past a new highest integer key (`capacity = index * 1.5 + 16`). */
export const ELEMENT = 8;
/** Beyond this gap above its capacity, V8 stores an object's integer keys in a dictionary. */
export const MAX_ELEMENT_GAP = 1024;
/** Up to this capacity V8 grows an object's elements store without comparing it with a dictionary. */
export const MAX_UNCHECKED_ELEMENTS = 5000;
/** One entry of V8's dictionary of integer keys. */
export const DICTIONARY_ENTRY = 56;
/** Keys longer than this are never taken for a key seen before (each costs {@link NEW_KEY}). */
export const MAX_REMEMBERED_KEY = 64;
/** Distinct keys remembered per frame (a power of two); past this, new keys cost {@link NEW_KEY} each. */
export const KEY_TABLE_SIZE = 1024;
/** Largest array index (2^32 - 2). */
export const MAX_INDEX = 4294967294;

/** What `DecodedSizeEstimator.estimate` returns for a value nested deeper than `maxDepth`. */
export const TOO_DEEP = -1;
