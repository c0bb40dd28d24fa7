import { batches, CHANNEL_BATCH } from '../../src/redis/bus.js';

describe('redis bus: channels are (un)subscribed in batches', () => {
  it('splits any number of channel names into lists of at most CHANNEL_BATCH, in order, none lost', () => {
    const names = Array.from({ length: 130_001 }, (_, i) => `t${i}`);
    const lists = batches(names);
    expect({ most: Math.max(...lists.map((l) => l.length)), count: lists.length, joined: lists.flat() }).toEqual({ most: CHANNEL_BATCH, count: 131, joined: names });
    expect(batches([])).toEqual([]);
  });
});
