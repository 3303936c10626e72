/**
 * The dumper as a Nest provider: `DumperModule.forRoot({ models: [IceCream] })` once, in the root
 * module; then any provider asks for it by its class, `constructor(private dumper: Dumper)`, and
 * the bootstrap gets it with `app.get(Dumper)` to mount it in front of the routes.
 */
import { Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { createDumper, Dumper, type DumperOptions, type ModelClass } from 'page-dumper';

export interface DumperModuleOptions extends DumperOptions {
  /** Model classes with `dependentPaths()`, registered with `dumper.register()`. */
  models?: ModelClass[];
}

@Module({})
export class DumperModule implements OnApplicationShutdown {
  static forRoot({ models = [], ...options }: DumperModuleOptions = {}): DynamicModule {
    return {
      module: DumperModule,
      global: true,
      providers: [
        {
          provide: Dumper,
          useFactory: () => {
            const dumper = createDumper(options);
            for (const model of models) dumper.register(model);
            return dumper;
          },
        },
      ],
      exports: [Dumper],
    };
  }

  constructor(private readonly dumper: Dumper) {}

  async onApplicationShutdown(): Promise<void> {
    await this.dumper.close();
  }
}
