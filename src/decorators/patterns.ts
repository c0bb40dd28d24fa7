import { EventPattern, MessagePattern } from '@nestjs/microservices';
import { WS_MSGPACK_TRANSPORT } from '../nest/constants.js';

/**
 * `@MessagePattern` bound to this transport only: in a hybrid app with several transports, the
 * handler is registered on {@link WsMsgpackServer} and no other.
 */
export function WsMessagePattern(pattern: unknown, extras?: Record<string, unknown>): MethodDecorator {
  return MessagePattern(pattern as string, WS_MSGPACK_TRANSPORT, extras);
}

/** `@EventPattern` bound to this transport only. */
export function WsEventPattern(pattern: unknown, extras?: Record<string, unknown>): MethodDecorator {
  return EventPattern(pattern as string, WS_MSGPACK_TRANSPORT, extras);
}
