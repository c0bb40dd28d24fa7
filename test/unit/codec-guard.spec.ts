/**
 * The decoder guards (maxDepth and the declared-size check, built into @msgpack/msgpack's Decoder
 * by reaching into its internals) behave as they should on the installed library version. This
 * used to be a runtime self-test in every process; it is a test now, and the dependency is pinned
 * to the patch releases of the minor version it passes on.
 */
import { Decoder } from '@msgpack/msgpack';
import { readFileSync } from 'node:fs';
import { guardDecoder } from '../../src/patches/msgpack.js';

const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));
/** A decoder guarded with maxDepth 3. */
function guarded(): Decoder {
  const d = new Decoder();
  expect(guardDecoder(d, 3)).toBe(true); // the internals look as expected
  return d;
}
const due = '01'.repeat(65);

describe('decoder guards on the installed @msgpack/msgpack', () => {
  it('a valid sample decodes unchanged', () => {
    expect(guarded().decode(hex('929180' + '81a16201'))).toEqual([[{}], { b: 1 }]);
  });

  it('a value at depth 4 is refused, in arrays and in maps', () => {
    expect(() => guarded().decode(hex('91919101'))).toThrow('Max depth exceeded: nesting depth (4) > maxDepth (3)');
    expect(() => guarded().decode(hex('81a16181a16181a16101'))).toThrow('Max depth exceeded: nesting depth (4) > maxDepth (3)');
  });

  it("a declared size that only the enclosing array's due element makes too large is refused; one byte more decodes", () => {
    expect(() => guarded().decode(hex(`92dc0041${due}`))).toThrow(/^Insufficient data: array length/);
    expect(Array.isArray(guarded().decode(hex(`92dc0041${due}01`)))).toBe(true);
  });

  it('the dependency is pinned to the minor version these tests ran on', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies['@msgpack/msgpack']).toMatch(/^~3\.1\./);
  });
});
