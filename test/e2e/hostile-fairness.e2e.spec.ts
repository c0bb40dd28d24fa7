/**
 * Issue 15, item 2: one connection must not stall the others. A peer in its own process floods the
 * server with tiny REQUESTs (an unknown pattern, or a real one) and reads the answers, while a
 * well-behaved client calls `echo` every 20 ms with a deadline. Before the fix, `ws` handed the
 * server every message of a large read at once (libuv reads up to 32 chunks of one socket in a row):
 * the event loop stopped for up to ~3 s at a time and the bystander's deadline calls failed. Now each
 * connection gets a slice of each turn of the event loop; the loop delay, measured in-process with
 * monitorEventLoopDelay, stays small, and every bystander call succeeds.
 */
import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { spawn, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WsMsgpackRecordBuilder } from '../../src/index.js';
import { first, startService, within, type TestService } from '../support/helpers.js';

const FLOODER = fileURLToPath(new URL('../support/flooder.mjs', import.meta.url));

@Controller()
class EchoController {
  @MessagePattern('echo')
  echo(@Payload() data: unknown): unknown {
    return data;
  }
}

function startFlooder(url: string, pattern: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [FLOODER, url, pattern], { stdio: ['ignore', 'pipe', 'inherit'] });
  return within(
    new Promise<ChildProcess>((resolve, reject) => {
      child.stdout!.once('data', () => resolve(child));
      child.once('exit', (code) => reject(new Error(`the flooder exited (${code})`)));
    }),
    10_000,
    'the flooder',
  );
}

describe('one connection cannot stall the others (issue 15, item 2)', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [EchoController] });
  });
  afterAll(() => svc.close());

  for (const pattern of ['no-such-pattern', 'echo']) {
    it(`a flood of tiny '${pattern}' requests from one peer: the event loop keeps turning, a bystander's deadline calls all succeed`, async () => {
      const bystander = svc.client();
      expect(await first(bystander.send('echo', 'warm'))).toBe('warm');
      const flooder = await startFlooder(svc.url, pattern);
      const delay = monitorEventLoopDelay({ resolution: 10 });
      const failures: unknown[] = [];
      let calls = 0;
      try {
        await new Promise((r) => setTimeout(r, 300)); // the flood is under way
        delay.enable();
        const until = Date.now() + 2000;
        while (Date.now() < until) {
          calls++;
          try {
            // A deadline of 1 s: the stalls made such calls fail with DEADLINE_EXCEEDED.
            await first(bystander.send('echo', new WsMsgpackRecordBuilder(calls).setTimeout(1000).build()), 5000);
          } catch (e) {
            failures.push(e);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        delay.disable();
      } finally {
        flooder.kill('SIGTERM');
      }
      expect(failures).toEqual([]);
      expect(calls).toBeGreaterThan(20); // ~2.9 s stalls before: a handful of calls in 2 s
      // The worst stall of the server's event loop: a few ms of slices and a GC, not seconds.
      expect(delay.max / 1e6).toBeLessThan(300);
    }, 20_000);
  }
});
