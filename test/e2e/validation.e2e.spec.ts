/**
 * The ValidationPipe example of docs/guides/server.md ("Validation"): a global ValidationPipe whose
 * exceptionFactory throws an RpcException, so that a class-validator failure reaches the caller as
 * a plain error value it can read, exactly as Nest's TCP transport delivers it. Without the
 * factory, ValidationPipe throws a BadRequestException (an HTTP exception), which an RPC transport
 * answers with "Internal server error".
 */
import 'reflect-metadata';
import { Controller, ValidationPipe, type ValidationError } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { Type } from 'class-transformer';
import { IsInt, IsString, Min, MinLength, ValidateNested } from 'class-validator';
import { errorOf, first, startService, type TestService } from '../support/helpers.js';

class Address {
  @IsString() @MinLength(2) city!: string;
}

class CreateOrder {
  @IsString() sku!: string;
  @IsInt() @Min(1) quantity!: number;
}

class Customer {
  @IsString() name!: string;
  @ValidateNested() @Type(() => Address) address!: Address;
}

@Controller()
class OrdersController {
  @MessagePattern('orders.create')
  create(@Payload() order: CreateOrder) {
    // transform: true made the payload a CreateOrder; whitelist: true stripped unknown keys.
    return { instance: order instanceof CreateOrder, order: { ...order } };
  }

  @MessagePattern('customers.create')
  customer(@Payload() customer: Customer) {
    return customer.address instanceof Address ? customer.address.city : 'not transformed';
  }
}

/** The server guide's pipe (docs/guides/server.md), word for word (keep the two in step). */
function readmePipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    exceptionFactory: (errors) =>
      new RpcException({
        status: 'error',
        message: 'Validation failed',
        errors: errors.map(({ property, constraints, children }) => ({ property, constraints, children })),
      }),
  });
}

describe('ValidationPipe with exceptionFactory: (errors) => new RpcException(...)', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [OrdersController] }, {}, (app) => app.useGlobalPipes(readmePipe()));
  });
  afterAll(() => svc.close());

  it('a valid payload reaches the handler as a DTO instance, with unknown keys stripped', async () => {
    const client = svc.client();
    await expect(first(client.send('orders.create', { sku: 'A-1', quantity: 2, extra: 'dropped' }))).resolves.toEqual({
      instance: true,
      order: { sku: 'A-1', quantity: 2 },
    });
  });

  it('an invalid payload: the caller gets the RpcException payload, with each property and its failed constraints', async () => {
    const client = svc.client();
    const e = await errorOf(client.send('orders.create', { sku: 42, quantity: 0 }));
    expect(e).toEqual({
      status: 'error',
      message: 'Validation failed',
      errors: [
        { property: 'sku', constraints: { isString: 'sku must be a string' }, children: [] },
        { property: 'quantity', constraints: { min: 'quantity must not be less than 1' }, children: [] },
      ],
    });
    // A plain object, not an Error or a WsMsgpackError: what the exception filter sent.
    expect(e).not.toBeInstanceOf(Error);
  });

  it('nested DTOs: the failures of a nested object arrive under children', async () => {
    const client = svc.client();
    const e = (await errorOf(client.send('customers.create', { name: 'Ada', address: { city: 'X' } }))) as {
      errors: { property: string; constraints?: unknown; children?: { property: string; constraints: unknown }[] }[];
    };
    expect(e.errors).toHaveLength(1);
    expect(e.errors[0]).toMatchObject({ property: 'address', children: [{ property: 'city', constraints: { minLength: 'city must be longer than or equal to 2 characters' } }] });
    await expect(first(client.send('customers.create', { name: 'Ada', address: { city: 'Paris' } }))).resolves.toBe('Paris');
  });

  it('the connection and other calls carry on after a validation failure', async () => {
    const client = svc.client();
    await errorOf(client.send('orders.create', {}));
    await expect(first(client.send('orders.create', { sku: 'B', quantity: 1 }))).resolves.toMatchObject({ instance: true });
  });
});

describe('ValidationPipe without an exceptionFactory', () => {
  let svc: TestService;

  beforeAll(async () => {
    svc = await startService({ controllers: [OrdersController] }, {}, (app) => app.useGlobalPipes(new ValidationPipe()));
  });
  afterAll(() => svc.close());

  it('throws a BadRequestException, which an RPC caller only sees as "Internal server error"', async () => {
    const e = await errorOf(svc.client().send('orders.create', { sku: 42, quantity: 0 }));
    expect(e).toEqual({ status: 'error', message: 'Internal server error' });
  });
});

describe('an exceptionFactory passing the ValidationError objects as they are', () => {
  let svc: TestService;

  beforeAll(async () => {
    const pipe = new ValidationPipe({ exceptionFactory: (errors: ValidationError[]) => new RpcException({ errors }) });
    svc = await startService({ controllers: [OrdersController] }, {}, (app) => app.useGlobalPipes(pipe));
  });
  afterAll(() => svc.close());

  it('sends each error with the rejected value (no target: ValidationPipe sets validationError.target to false)', async () => {
    const e = (await errorOf(svc.client().send('orders.create', { sku: 'A', quantity: 0, secret: 's3cr3t' }))) as { errors: Record<string, unknown>[] };
    expect(e.errors).toEqual([{ property: 'quantity', value: 0, constraints: { min: 'quantity must not be less than 1' }, children: [] }]);
  });
});
