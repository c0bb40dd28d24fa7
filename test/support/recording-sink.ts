import { BufferBudget } from '../../src/connection/frame-queue.js';
import { OutboundStream } from '../../src/connection/outbound-stream.js';
import type { OutboundStreamOptions, StreamSink } from '../../src/connection/outbound-types.js';
import { FrameCodec } from '../../src/protocol/codec.js';
import { FrameType, type Frame } from '../../src/protocol/frames.js';

/**
 * The sink a connection gives an OutboundStream, minus the socket: what the stream writes is
 * recorded as decoded frames. `failSends` makes sends throw (a socket that went away);
 * `congestedNow` / `drain()` play a socket whose buffer fills and drains.
 */
export class RecordingSink implements StreamSink {
  readonly frames: Frame[] = [];
  readonly reports: unknown[] = [];
  congestedNow = false;
  failSends = false;
  private readonly codec = new FrameCodec();
  private readonly drainWaiters = new Set<() => void>();

  sendItem(id: number, value: unknown, final: boolean): void {
    if (this.failSends) throw new Error('socket closed');
    this.codec.encode({ type: FrameType.NEXT, id, value }); // throws for what cannot be encoded, as FrameWriter does
    this.frames.push(final ? { type: FrameType.COMPLETE, id, hasValue: true, value } : { type: FrameType.NEXT, id, value });
  }
  encodeItem(id: number, value: unknown): Uint8Array {
    return this.codec.encodeShared({ type: FrameType.NEXT, id, value });
  }
  sendEncoded(frame: Uint8Array): void {
    if (this.failSends) throw new Error('socket closed');
    this.frames.push(this.codec.decode(frame.slice()));
  }
  sendComplete(id: number): void {
    this.frames.push({ type: FrameType.COMPLETE, id, hasValue: false });
  }
  sendError(id: number, error: unknown): void {
    const e = error as { code?: string; message?: string };
    this.frames.push({ type: FrameType.ERROR, id, code: e.code ?? 'APPLICATION_ERROR', message: e.message ?? String(error) });
  }
  congested(): boolean {
    return this.congestedNow;
  }
  whenDrained(resume: () => void): void {
    this.drainWaiters.add(resume);
  }
  /** The socket drained: the waiting streams resume. */
  drain(): void {
    this.congestedNow = false;
    const waiters = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (const w of waiters) w();
  }
  report(error: unknown): void {
    this.reports.push(error);
  }
  /** Item values of NEXT and COMPLETE-with-value frames. */
  values(): unknown[] {
    return this.frames.flatMap((f) => (f.type === FrameType.NEXT || (f.type === FrameType.COMPLETE && f.hasValue) ? [f.value] : []));
  }
  last(): Frame | undefined {
    return this.frames[this.frames.length - 1];
  }
}

/** An OutboundStream (id 1) writing into a RecordingSink; unlimited credit and bounds unless `options` says otherwise. */
export function recordedStream<S extends RecordingSink = RecordingSink>(
  options: Partial<OutboundStreamOptions> = {},
  sink: S = new RecordingSink() as S,
): { s: OutboundStream; sink: S; budget: BufferBudget; ended: () => number } {
  const budget = options.budget ?? new BufferBudget(1 << 30);
  let ends = 0;
  const s = new OutboundStream(sink, 1, { credit: Infinity, overflow: 'error', maxBytes: 1 << 30, budget, onEnd: () => ends++, ...options });
  return { s, sink, budget, ended: () => ends };
}
