import { WsMsgpackTopics, type WsMsgpackTopicBus } from '../../src/peer/topics.js';

/** Two replicas' view of one bus: what one publishes, the other's listeners of that channel get (not its own, as the Redis adapter does). */
function bus(): { a: WsMsgpackTopicBus; b: WsMsgpackTopicBus; channels: string[] } {
  const listeners = new Map<string, Set<{ side: string; deliver: (v: unknown) => void }>>();
  const channels: string[] = [];
  const side = (name: string): WsMsgpackTopicBus => ({
    publishTopic: async (channel, value) => {
      channels.push(channel);
      for (const l of listeners.get(channel) ?? []) if (l.side !== name) l.deliver(value);
    },
    subscribeTopic: (channel, deliver) => {
      const entry = { side: name, deliver };
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)!.add(entry);
      return () => listeners.get(channel)!.delete(entry);
    },
  });
  return { a: side('a'), b: side('b'), channels };
}

describe('WsMsgpackTopics over a bus (the cluster option)', () => {
  it('a value published on one replica reaches the subscribers of the other, in order, and the local ones at once', async () => {
    const { a, b } = bus();
    const onA = new WsMsgpackTopics<number>({ cluster: a, name: 'prices' });
    const onB = new WsMsgpackTopics<number>({ cluster: b, name: 'prices' });
    const seenA: number[] = [];
    const seenB: number[] = [];
    onA.subscribe('ACME').subscribe((v) => seenA.push(v));
    onB.subscribe('ACME').subscribe((v) => seenB.push(v));
    expect(onB.publish('ACME', 1)).toBe(1); // the local subscriber, counted; the other replica's is not known here
    onB.publish('ACME', 2);
    await Promise.resolve();
    expect({ seenA, seenB }).toEqual({ seenA: [1, 2], seenB: [1, 2] });
  });

  it('the bus channel tells every name and topic pair apart (a + "b:c" is not "a:b" + c)', async () => {
    const { a, b, channels } = bus();
    const short = new WsMsgpackTopics<string>({ cluster: a, name: 'a' });
    const long = new WsMsgpackTopics<string>({ cluster: b, name: 'a:b' });
    const seen: string[] = [];
    short.subscribe('b:c').subscribe((v) => seen.push(v));
    long.publish('c', 'wrong topic');
    await Promise.resolve();
    expect({ seen, channels }).toEqual({ seen: [], channels: ['3:a:b:c'] });
  });

  it('the bus is listened to only while a topic has local subscribers', () => {
    const { a } = bus();
    let listening = 0;
    const counting: WsMsgpackTopicBus = {
      publishTopic: a.publishTopic,
      subscribeTopic: (channel, deliver) => {
        listening++;
        const stop = a.subscribeTopic(channel, deliver);
        return () => (listening--, stop());
      },
    };
    const topics = new WsMsgpackTopics({ cluster: counting, name: 'n' });
    const one = topics.subscribe('t').subscribe();
    const two = topics.subscribe('t').subscribe();
    expect(listening).toBe(1);
    one.unsubscribe();
    expect(listening).toBe(1);
    two.unsubscribe();
    expect(listening).toBe(0);
    topics.subscribe('u').subscribe();
    topics.end('u');
    expect(listening).toBe(0);
  });

  it('a cluster needs a name; a publish the bus refuses goes to onError', async () => {
    const { a } = bus();
    expect(() => new WsMsgpackTopics({ cluster: a })).toThrow(/needs a `name`/);
    const errors: string[] = [];
    const topics = new WsMsgpackTopics({ cluster: { ...a, publishTopic: () => Promise.reject(new Error('redis down')) }, name: 'n', onError: (e) => errors.push(e.message) });
    expect(topics.publish('t', 1)).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(errors).toEqual(['redis down']);
  });
});
