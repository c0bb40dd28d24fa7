/**
 * The transport patches three of Nest's internals (src/patches/nest-filters.ts: RpcProxy.create and
 * BaseRpcExceptionFilter.catch; src/patches/nest-pipes.ts: RpcContextCreator.getParamValue). Each stated the range it was checked against; these fail loudly when
 * the installed Nest no longer looks the way the patches expect, instead of the patches silently
 * doing nothing.
 */
import { PipesContextCreator } from '@nestjs/core/pipes/pipes-context-creator.js';
import { RpcContextCreator } from '@nestjs/microservices/context/rpc-context-creator.js';
import { RpcProxy } from '@nestjs/microservices/context/rpc-proxy.js';
import { BaseRpcExceptionFilter } from '@nestjs/microservices/exceptions/base-rpc-exception-filter.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installFilterBridge } from '../../src/patches/nest-filters.js';
import { installPipeBridge } from '../../src/patches/nest-pipes.js';

const modules = fileURLToPath(new URL('../../node_modules/@nestjs/', import.meta.url));
/** Read from the installed files (Nest 12's exports map hides package.json). */
const read = (path: string): string => readFileSync(join(modules, path), 'utf8');
const version = (JSON.parse(read('microservices/package.json')) as { version: string }).version;

describe(`Nest internals the transport patches (@nestjs/microservices ${version})`, () => {
  it('is a version the patches were checked against (11.x, 12.x)', () => {
    expect(Number(version.split('.')[0])).toBeGreaterThanOrEqual(11);
    expect(Number(version.split('.')[0])).toBeLessThanOrEqual(12);
  });

  it('RpcContextCreator.prototype.getParamValue(value, metadata, pipes) applies pipes through pipesConsumer', () => {
    const proto = RpcContextCreator.prototype as unknown as { getParamValue: (...a: unknown[]) => unknown; createPipesFn: unknown };
    expect(typeof proto.getParamValue).toBe('function');
    expect(typeof proto.createPipesFn).toBe('function');
    // createPipesFn resolves each parameter through this.getParamValue, so the patch sees every one.
    const source = read('microservices/context/rpc-context-creator.js');
    expect(source).toMatch(/this\.getParamValue\(value, \{ metatype, type, data/);
    expect(source).toMatch(/this\.pipesConsumer\.apply\(value/);
    expect(installPipeBridge()).toBe(true);
  });

  it('PipesContextCreator.prototype.getGlobalMetadata() hands out the global pipe instances each handler gets', () => {
    expect(typeof (PipesContextCreator.prototype as unknown as { getGlobalMetadata: unknown }).getGlobalMetadata).toBe('function');
    const creator = read('core/helpers/context-creator.js');
    expect(creator).toMatch(/this\.getGlobalMetadata\(contextId, inquirerId\)/);
    expect(creator).toMatch(/this\.createConcreteContext\(globalMetadata \|\| \[\], contextId, inquirerId\)/);
    const pipes = read('core/pipes/pipes-context-creator.js');
    expect(pipes).toMatch(/getGlobalMetadata\(contextId = /);
    expect(pipes).toMatch(/this\.config\.getGlobalPipes\(\)/);
  });

  it('BaseRpcExceptionFilter.prototype.catch(exception, host) is what the default filter runs', () => {
    const source = read('microservices/exceptions/rpc-exceptions-handler.js');
    expect(source).toMatch(/extends (\w+\.)?BaseRpcExceptionFilter\b/); // ESM (Nest 12) or CJS (Nest 11)
    expect(source).toMatch(/super\.catch\(exception, host\)/);
    expect(typeof (BaseRpcExceptionFilter.prototype as unknown as { catch: unknown }).catch).toBe('function');
  });

  it('RpcProxy.prototype.create(targetCallback, ...) wraps every handler', () => {
    expect(typeof (RpcProxy.prototype as unknown as { create: unknown }).create).toBe('function');
    expect(installFilterBridge()).toBe(true);
  });
});
