import { createParamDecorator, type ExecutionContext, type PipeTransform, type Type } from '@nestjs/common';
import type { IncomingHttpHeaders } from 'node:http';
import type { WsMsgpackPeer } from '../peer/peer.js';
import { WsMsgpackContext } from '../nest/ws-msgpack.context.js';

/** A pipe instance or class, as Nest's parameter decorators accept them. */
export type ParamPipe = PipeTransform | Type<PipeTransform>;

function wsContext(ctx: ExecutionContext): WsMsgpackContext | undefined {
  const c: unknown = ctx.switchToRpc().getContext();
  return c instanceof WsMsgpackContext ? c : undefined;
}

/**
 * Injects the call's headers (`WsMsgpackRecordBuilder.setHeaders()`), or one header by name:
 * `@WsHeaders() all`, `@WsHeaders('tenant') tenant`, `@WsHeaders('page', ParseIntPipe) page`.
 */
export const WsHeaders: (key?: string, ...pipes: ParamPipe[]) => ParameterDecorator = createParamDecorator((key: string | undefined, ctx: ExecutionContext): unknown => {
  const headers = wsContext(ctx)?.getHeaders() ?? {};
  return key === undefined ? headers : headers[key];
});

/** Injects the call's `AbortSignal` (aborted on cancel, deadline, or disconnect). */
export const WsSignal: () => ParameterDecorator = createParamDecorator((_data: unknown, ctx: ExecutionContext): AbortSignal | undefined => wsContext(ctx)?.getSignal());

/** Injects the connection's `ws` WebSocket. */
export const WsSocket: () => ParameterDecorator = createParamDecorator((_data: unknown, ctx: ExecutionContext): unknown => wsContext(ctx)?.getSocket());

/**
 * Injects the other end of the connection as a {@link WsMsgpackPeer}: `peer.send()` /
 * `peer.emit()` call it, `peer.state` holds per-connection data. Inside a call, the calls made
 * through it are cancelled when that call ends.
 */
export const WsPeer: () => ParameterDecorator = createParamDecorator((_data: unknown, ctx: ExecutionContext): WsMsgpackPeer | undefined => wsContext(ctx)?.getPeer());

/**
 * Injects the connection's authenticated identity (what the server's `authenticate` returned;
 * `ctx.getUser()`), or one of its properties: `@WsUser() user`, `@WsUser('id') userId`; pipes may follow.
 */
export const WsUser: (key?: string, ...pipes: ParamPipe[]) => ParameterDecorator = createParamDecorator((key: string | undefined, ctx: ExecutionContext): unknown => {
  const user = wsContext(ctx)?.getUser();
  if (key === undefined) return user;
  return user !== null && typeof user === 'object' ? (user as Record<string, unknown>)[key] : undefined;
});

/** Injects the HTTP upgrade request's headers, or one by name (case-insensitive); pipes may follow. */
export const WsUpgradeHeaders: (name?: string, ...pipes: ParamPipe[]) => ParameterDecorator = createParamDecorator(
  (name: string | undefined, ctx: ExecutionContext): IncomingHttpHeaders | string | string[] | undefined => {
    const headers = wsContext(ctx)?.getUpgradeHeaders();
    return name === undefined ? headers : headers?.[name.toLowerCase()];
  },
);
