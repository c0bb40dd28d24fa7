// Applying Nest decorators from plain .mjs, exactly as TypeScript's decorator helper would.
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';

/**
 * Builds `@Module({ controllers: [C] })` around a controller class whose methods are decorated
 * with the given method decorators, e.g. `{ echo: MessagePattern('echo') }`. With `payload`,
 * the first parameter of each handler gets `@Payload()`.
 */
export function moduleFor(ControllerClass, methods, { payload = true } = {}) {
  const proto = ControllerClass.prototype;
  for (const [name, decorator] of Object.entries(methods)) {
    if (payload) Payload()(proto, name, 0);
    const descriptor = Object.getOwnPropertyDescriptor(proto, name);
    const result = decorator(proto, name, descriptor);
    if (result) Object.defineProperty(proto, name, result);
  }
  Controller()(ControllerClass);
  class AppModule {}
  Module({ controllers: [ControllerClass] })(AppModule);
  return AppModule;
}
