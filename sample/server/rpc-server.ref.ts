import { Injectable } from '@nestjs/common';
// In your own app: import { WsMsgpackServer } from 'nestjs-ws-msgpack';
import type { WsMsgpackServer } from '../../src/index.js';

/**
 * The WsMsgpackServer, for code that reaches every connected client (`server.broadcast`,
 * `server.peers`). A hybrid app creates the server after the app (it needs the HTTP server), so
 * main.ts sets it here; a standalone microservice can provide the instance as a value instead.
 */
@Injectable()
export class RpcServerRef {
  private instance: WsMsgpackServer | undefined;

  get server(): WsMsgpackServer {
    if (!this.instance) throw new Error('RpcServerRef: the server is not set yet (main.ts sets it before startAllMicroservices)');
    return this.instance;
  }

  set server(server: WsMsgpackServer) {
    this.instance = server;
  }
}
