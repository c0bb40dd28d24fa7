import { MAX_OWED, OwedMessages } from '../../src/cluster/owed-messages.js';
import type { RemoteMessage } from '../../src/cluster/remote-messages.js';

const cancel = (i: number): RemoteMessage => ({ t: 'cancel', i });

describe('OwedMessages: what a replica could not send while its link was down', () => {
  it('flushes in order per replica, once; a replica declared gone gets nothing', () => {
    const owed = new OwedMessages();
    owed.owe('B', cancel(1));
    owed.owe('C', cancel(2));
    owed.owe('B', cancel(3));
    owed.forget('C');
    const sent: [string, unknown][] = [];
    owed.flush((to, m) => sent.push([to, (m as { i: number }).i]));
    owed.flush((to, m) => sent.push([to, (m as { i: number }).i]));
    expect({ sent, size: owed.size }).toEqual({
      sent: [
        ['B', 1],
        ['B', 3],
      ],
      size: 0,
    });
  });

  it('holds at most MAX_OWED, dropping the oldest; forgetting a replica among many made-up ones costs no scan of the rest', () => {
    const owed = new OwedMessages();
    for (let i = 0; i < MAX_OWED + 5; i++) owed.owe(`r${i}`, cancel(i));
    expect(owed.size).toBe(MAX_OWED);
    for (let i = 0; i < 50_000; i++) owed.forget(`made-up-${i}`); // a flood of unknown senders
    owed.forget(`r${MAX_OWED + 4}`);
    const first: string[] = [];
    owed.flush((to) => first.length < 1 && first.push(to));
    expect({ first, size: owed.size }).toEqual({ first: ['r5'], size: 0 });
  });
});
