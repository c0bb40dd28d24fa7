// Prints the heap growth (bytes) of decoding the msgpack value in a file, as this package's codec
// decodes it (bigints, binaries as Buffer views), in a process that has built no object of that
// shape before: V8's hidden classes and transitions are cold, as on a server receiving it.
//
//   node --expose-gc test/support/heap-of-decode.mjs <file>
import { Decoder } from '@msgpack/msgpack';
import { readFileSync } from 'node:fs';

const bytes = new Uint8Array(readFileSync(process.argv[2]));
const decoder = new Decoder({ useBigInt64: true, maxArrayLength: 1e9, maxMapLength: 1e9, maxStrLength: 1e9, maxBinLength: 1e9 });
const decodeBinary = decoder.decodeBinary;
decoder.decodeBinary = function (len, head) {
  const view = decodeBinary.call(this, len, head);
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
};
global.gc();
const before = process.memoryUsage().heapUsed;
const value = decoder.decode(bytes);
global.gc();
const grown = process.memoryUsage().heapUsed - before;
if (value === undefined) throw new Error('nothing decoded');
console.log(grown);
