// Must NOT compile: `ulr` is not an option (test/unit/types.spec.ts expects TS2353 naming it).
import { Module } from '@nestjs/common';
import { WsMsgpackClientModule } from '../../src/index.js';

@Module({ imports: [WsMsgpackClientModule.register({ name: 'MATH', ulr: 'ws://127.0.0.1:3001' })] })
export class TypoModule {}
