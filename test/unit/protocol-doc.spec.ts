import { InboundCredit } from '../../src/connection/credit.js';

/**
 * docs/PROTOCOL.md section 8 states the receiver's top-up rule as an integer rule: after each item the
 * application consumes, with `left` = credit granted − items consumed, send CREDIT(w − left) when
 * left <= floor(w / 2). InboundCredit tests `left > w / 2` with real division; the two must agree.
 */
function integerRule(window: number, items: number): number[] {
  const grants: number[] = [];
  let granted = window;
  for (let consumed = 1; consumed <= items; consumed++) {
    const left = granted - consumed;
    if (left <= Math.floor(window / 2)) {
      grants.push(window - left);
      granted += window - left;
    } else {
      grants.push(0);
    }
  }
  return grants;
}

describe('credit top-up rule (docs/PROTOCOL.md section 8)', () => {
  it('window 5: CREDIT 3 after items 3, 6, 9, …', () => {
    const credit = new InboundCredit(5);
    const grants = Array.from({ length: 9 }, () => credit.consumed());
    expect(grants).toEqual([0, 0, 3, 0, 0, 3, 0, 0, 3]);
  });

  it('window 256: CREDIT 128 after every 128 items; window 1: CREDIT 1 after every item', () => {
    const w256 = new InboundCredit(256);
    const grants = Array.from({ length: 512 }, () => w256.consumed());
    expect(grants.flatMap((g, i) => (g > 0 ? [[i + 1, g]] : []))).toEqual([
      [128, 128],
      [256, 128],
      [384, 128],
      [512, 128],
    ]);
    const w1 = new InboundCredit(1);
    expect(Array.from({ length: 3 }, () => w1.consumed())).toEqual([1, 1, 1]);
  });

  it.each(Array.from({ length: 20 }, (_, i) => i + 1))('window %i: the integer rule gives the same grants', (window) => {
    const credit = new InboundCredit(window);
    expect(Array.from({ length: 5 * window }, () => credit.consumed())).toEqual(integerRule(window, 5 * window));
  });

  it('window 0 is unlimited: nothing is ever granted', () => {
    const credit = new InboundCredit(0);
    expect(Array.from({ length: 10 }, () => credit.consumed())).toEqual(Array(10).fill(0));
    expect(credit.receive()).toBe(true);
  });
});
