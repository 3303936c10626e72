import { Module } from '@nestjs/common';
import { AdminController } from './admin.controller.js';
import { DumperModule } from './dumper.module.js';
import { IceCream, IceCreamService } from './ice-cream.js';
import { SiteController } from './site.controller.js';

@Module({
  // trackRenders: this site calls dumper.tag(), so track every render from the start.
  imports: [DumperModule.forRoot({ models: [IceCream], trackRenders: true })],
  controllers: [SiteController, AdminController],
  providers: [IceCreamService],
})
export class AppModule {}
