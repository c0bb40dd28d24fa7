import type { WebSocketLike } from '../../src/connection/socket.js';

type Listener = (...args: never[]) => void;

/**
 * An in-memory stand-in for a `ws` WebSocket (the transport, not the code under test). Sent frames are logged;
 * with a peer they are delivered to it in a microtask, like a network would deliver them later.
 */
export class MemorySocket implements WebSocketLike {
  readyState = 1;
  bufferedAmount = 0;
  protocol = 'wsmp.v1';
  binaryType = '';
  peer: MemorySocket | undefined;
  readonly sent: Uint8Array[] = [];
  private readonly listeners = new Map<string, Listener[]>();

  send(data: Uint8Array): void {
    this.sent.push(data);
    const peer = this.peer;
    if (peer) queueMicrotask(() => peer.receive(data));
  }

  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.fire('close', code, Buffer.from(reason));
  }

  on(event: string, cb: Listener): void {
    const list = this.listeners.get(event) ?? [];
    list.push(cb);
    this.listeners.set(event, list);
  }

  /** A binary message from the network. */
  receive(data: Uint8Array): void {
    this.fire('message', Buffer.from(data), true);
  }

  private fire(event: string, ...args: unknown[]): void {
    for (const cb of this.listeners.get(event) ?? []) (cb as (...a: unknown[]) => void)(...args);
  }
}
