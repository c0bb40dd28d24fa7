import type { FrameWriter } from '../connection/frame-writer.js';
import type { ReadControl } from '../connection/socket.js';

/**
 * Backpressure on input, as a proxy applies it: while the socket to the peer holds more than
 * `maxBufferedBytes` the peer has not read, stop reading the peer's frames (each may ask for more
 * answers), and read again once it has read enough. Its bytes wait in the kernel meanwhile, and
 * TCP flow control slows it down.
 *
 * Only a server does this. Were both ends to stop reading while their own outbound is congested,
 * each could wait for the other for ever; a client always reads.
 */
export class ReadThrottle {
  private paused = false;

  constructor(
    private readonly reader: ReadControl,
    private readonly writer: FrameWriter,
  ) {}

  /** After each frame from the peer: stop reading while the peer is not reading. */
  afterFrame(): void {
    if (this.paused || !this.writer.congested()) return;
    this.paused = true;
    this.reader.pause();
    this.writer.whenDrained(this.resume); // never called once the writer stopped (the connection ended)
  }

  private readonly resume = (): void => {
    if (!this.paused) return;
    this.paused = false;
    this.reader.resume();
  };
}
