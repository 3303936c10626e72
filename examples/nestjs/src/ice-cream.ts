/** The data: flavours in a Map, and a service that writes them and tells the dumper. */
import { Injectable, NotFoundException } from '@nestjs/common';
import { Dumper } from 'page-dumper';

export class IceCream {
  constructor(
    readonly slug: string,
    public name: string,
    public price: number,
  ) {}
  // The pages that show this flavour: `await dumper.changed(flavour)` invalidates them.
  dependentPaths(): string[] {
    return ['/ice-cream', `/ice-cream/${this.slug}`];
  }
  // ... and the pages that tagged themselves with it (the specials page).
  dependentTags(): string[] {
    return [`flavour:${this.slug}`];
  }
}

@Injectable()
export class IceCreamService {
  readonly #flavours = new Map(
    [new IceCream('vanilla', 'Vanilla', 3), new IceCream('chocolate', 'Chocolate', 3.5), new IceCream('pistachio', 'Pistachio', 4)].map((f) => [f.slug, f]),
  );
  #specials = ['vanilla'];

  // The dumper comes from DumperModule, by its class.
  constructor(private readonly dumper: Dumper) {}

  all(): IceCream[] {
    return [...this.#flavours.values()];
  }

  find(slug: string): IceCream | undefined {
    return this.#flavours.get(slug);
  }

  specials(): IceCream[] {
    return this.#specials.map((slug) => this.#flavours.get(slug)).filter((f) => f !== undefined);
  }

  async update(slug: string, changes: { name?: unknown; price?: unknown }): Promise<IceCream> {
    const flavour = this.#flavours.get(slug);
    if (!flavour) throw new NotFoundException('no such flavour');
    if (changes.name !== undefined) flavour.name = String(changes.name);
    if (changes.price !== undefined) flavour.price = Number(changes.price);
    await this.dumper.changed(flavour); // after the write: what an ORM integration does on every save
    return flavour;
  }

  async setSpecials(slugs: unknown[]): Promise<string[]> {
    this.#specials = slugs.map(String).filter((slug) => this.#flavours.has(slug));
    await this.dumper.invalidateTags(['specials']);
    return this.#specials;
  }
}
