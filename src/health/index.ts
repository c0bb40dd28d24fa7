/**
 * `nestjs-ws-msgpack/terminus`: `@nestjs/terminus` health checks for this transport. A subpath of
 * its own, so the main entry never loads `@nestjs/terminus` (an optional peer dependency, 11 or 12).
 */
export { WsMsgpackHealthIndicator, type WsMsgpackHealthCheckOptions } from './ws-msgpack.health.js';
