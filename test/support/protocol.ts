import { ProtocolViolation } from '../../src/protocol/errors.js';

/** Lower-case hex of some bytes. */
export const hex = (u: Uint8Array): string => Buffer.from(u.buffer, u.byteOffset, u.byteLength).toString('hex');

/** Bytes from hex. */
export const bytes = (h: string): Buffer => Buffer.from(h, 'hex');

/** The ProtocolViolation `fn` throws (fails the test when it throws something else or nothing). */
export function violation(fn: () => unknown): ProtocolViolation {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(ProtocolViolation);
  return caught as ProtocolViolation;
}
