// Must NOT compile: a typo in an optional option (`timout`) returned by a registerAsync factory.
import { Module } from '@nestjs/common';
import { WsMsgpackClientModule } from '../../src/index.js';

@Module({ imports: [WsMsgpackClientModule.registerAsync({ name: 'HUB', useFactory: async () => ({ url: 'ws://127.0.0.1:3001', timout: 5 }) })] })
export class AsyncOptionalTypoModule {}
