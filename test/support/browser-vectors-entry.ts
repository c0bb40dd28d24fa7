/**
 * A second browser bundle for the conformance part of the Chromium test: the protocol codec the
 * client uses, so the page can check docs/vectors.json byte for byte in the browser's own
 * msgpack/TextEncoder/Uint8Array environment.
 */
export { FrameCodec } from '../../src/protocol/codec.js';
