import { Queue } from './queue.js';

/** Bookkeeping bytes counted per queued frame on top of its encoded size (its length entry). */
export const FRAME_OVERHEAD_BYTES = 8;

/** Size of the byte slabs that queued frames are copied into. */
const SLAB_BYTES = 64 * 1024;

/**
 * Bytes that the queues of one connection may hold together. Each {@link FrameQueue} charges its
 * frames here, so one connection's streams share one bound.
 */
export class BufferBudget {
  private usedBytes = 0;

  constructor(
    /** Most bytes all queues may hold together. */
    readonly limit: number,
    /** A budget this one is part of (a connection's, of its server's): charged too, and must fit too. */
    readonly parent?: BufferBudget,
  ) {}

  /** Bytes held now. */
  get used(): number {
    return this.usedBytes;
  }

  /** Bytes that still fit here (and in the parent). */
  get left(): number {
    const own = this.limit - this.usedBytes;
    return this.parent ? Math.min(own, this.parent.left) : own;
  }

  /** True when `bytes` more would still fit (here and in the parent). */
  fits(bytes: number): boolean {
    return this.usedBytes + bytes <= this.limit && (this.parent?.fits(bytes) ?? true);
  }

  /** Records `bytes` more (negative: released), here and in the parent. */
  charge(bytes: number): void {
    this.usedBytes += bytes;
    this.parent?.charge(bytes);
  }
}

/**
 * A FIFO of encoded frames, copied into 64 KiB slabs: one million small frames cost their bytes
 * plus one number each, not one `Uint8Array` object each. A frame that does not fit in the rest
 * of a slab continues in the next one (so no slab space is wasted, and the memory held is the
 * bytes charged); `shift()` returns a view into a slab, or a copy for a frame that spans two. A
 * slab is released once every frame in it has been shifted and the views are gone.
 */
export class FrameQueue {
  /** Slabs after the one being read; the last is the one being written. */
  private readonly slabs = new Queue<Slab>();
  private readonly lengths = new Queue<number>();
  private tail: Slab | undefined;
  private head: Slab | undefined;
  private readAt = 0;
  private heldBytes = 0;

  constructor(private readonly budget: BufferBudget) {}

  /** Frames queued. */
  get length(): number {
    return this.lengths.length;
  }

  /** Bytes charged for the queued frames (encoded size plus {@link FRAME_OVERHEAD_BYTES} each). */
  get bytes(): number {
    return this.heldBytes;
  }

  /** Copies `frame` in at the end. */
  push(frame: Uint8Array): void {
    const n = frame.byteLength;
    let written = 0;
    if (this.tail) {
      written = Math.min(n, this.tail.bytes.byteLength - this.tail.end);
      this.tail.bytes.set(frame.subarray(0, written), this.tail.end);
      this.tail.end += written;
    }
    if (!this.tail || written < n) {
      // The rest starts a new slab, big enough for it.
      const slab: Slab = { bytes: new Uint8Array(Math.max(SLAB_BYTES, n - written)), end: n - written };
      slab.bytes.set(frame.subarray(written));
      if (this.head) this.slabs.push(slab);
      else {
        this.head = slab;
        this.readAt = 0;
      }
      this.tail = slab;
    }
    this.lengths.push(n);
    this.heldBytes += n + FRAME_OVERHEAD_BYTES;
    this.budget.charge(n + FRAME_OVERHEAD_BYTES);
  }

  /** Removes the oldest frame and returns its bytes (a view into a slab, or a copy). */
  shift(): Uint8Array | undefined {
    const n = this.lengths.shift();
    if (n === undefined) return undefined;
    const head = this.head!;
    let frame: Uint8Array;
    if (this.readAt + n <= head.end) {
      frame = head.bytes.subarray(this.readAt, this.readAt + n);
      this.readAt += n;
    } else {
      // Spans into the next slab: join the two parts.
      const first = head.end - this.readAt;
      const next = (this.head = this.slabs.shift()!);
      frame = new Uint8Array(n);
      frame.set(head.bytes.subarray(this.readAt, head.end));
      frame.set(next.bytes.subarray(0, n - first), first);
      this.readAt = n - first;
    }
    if (this.readAt === this.head!.end && this.head !== this.tail) {
      this.head = this.slabs.shift()!;
      this.readAt = 0;
    }
    this.heldBytes -= n + FRAME_OVERHEAD_BYTES;
    this.budget.charge(-(n + FRAME_OVERHEAD_BYTES));
    if (this.lengths.length === 0) this.reset();
    return frame;
  }

  /** Drops every frame. */
  clear(): void {
    this.budget.charge(-this.heldBytes);
    this.heldBytes = 0;
    this.lengths.clear();
    this.reset();
  }

  private reset(): void {
    this.slabs.clear();
    this.tail = undefined;
    this.head = undefined;
    this.readAt = 0;
  }
}

interface Slab {
  readonly bytes: Uint8Array;
  /** Bytes written. */
  end: number;
}
