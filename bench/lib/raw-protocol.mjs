// The `raw` baseline's protocol: plain `ws` + `@msgpack/msgpack`, one msgpack array per WebSocket
// message, no coalescing, no flow control, no Nest.
//   client → server  [REQUEST, id, method, payload]   [CANCEL, id]
//   server → client  [RESULT, id, value]   [ITEM, id, value]   [END, id]   [ERROR, id, message]
export const REQUEST = 0;
export const CANCEL = 1;
export const RESULT = 2;
export const ITEM = 3;
export const END = 4;
export const ERROR = 5;
export const MAX_PAYLOAD = 16 * 1024 * 1024;
