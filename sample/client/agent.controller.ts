import { Controller, Module } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
// In your own app: import { ... } from 'nestjs-ws-msgpack';
import { WsEventPattern } from '../../src/index.js';

/** What the server made this client do, for the checks in main.ts. */
export const agentLog: string[] = [];

/**
 * Handlers this client exposes to the server, written as for any Nest transport. They run in a
 * small Nest microservice whose strategy is `client.exposeHandlers()`: the server calls them over
 * the connection the client opened (no second socket, no open port on this side).
 */
@Controller()
export class AgentController {
  /** simplerpc's welcome: the server calls it from its connected hook. */
  @MessagePattern('welcome')
  welcome(@Payload() text: string): string {
    console.log(`server called welcome(${JSON.stringify(text)})`);
    agentLog.push(`welcome: ${text}`);
    return 'thanks, glad to be here';
  }

  /** wsrpc_aiohttp's loopback: the server calls this inside this client's own call to it. */
  @MessagePattern('multiply')
  multiply(@Payload() { a, b }: { a: number; b: number }): number {
    console.log(`server called multiply(${a}, ${b})`);
    return a * b;
  }

  /** A broadcast from the server. */
  @WsEventPattern('news')
  news(@Payload() text: string): void {
    console.log(`broadcast received: ${text}`);
    agentLog.push(`news: ${text}`);
  }
}

@Module({ controllers: [AgentController] })
export class AgentModule {}
