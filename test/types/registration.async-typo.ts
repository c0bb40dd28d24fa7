// Must NOT compile: the factory's options are checked too (`ulr`).
import { Module } from '@nestjs/common';
import { WsMsgpackClientModule } from '../../src/index.js';

@Module({ imports: [WsMsgpackClientModule.registerAsync({ name: 'HUB', useFactory: () => ({ ulr: 'ws://127.0.0.1:3001' }) })] })
export class AsyncTypoModule {}
