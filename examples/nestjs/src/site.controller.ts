/** The public pages: cached by the dumper until the data they show changes. */
import { Controller, Get, Header, NotFoundException, Param } from '@nestjs/common';
import { Dumper } from 'page-dumper';
import { IceCreamService } from './ice-cream.js';

@Controller()
export class SiteController {
  constructor(
    private readonly iceCreams: IceCreamService,
    private readonly dumper: Dumper,
  ) {}

  @Get('ice-cream')
  @Header('Content-Type', 'text/html; charset=utf-8')
  list(): string {
    const items = this.iceCreams.all().map((f) => `<li><a href="/ice-cream/${f.slug}">${escape(f.name)}</a></li>`);
    return page('Flavours', `<ul>${items.join('')}</ul>`);
  }

  @Get('ice-cream/:slug')
  @Header('Content-Type', 'text/html; charset=utf-8')
  detail(@Param('slug') slug: string): string {
    const flavour = this.iceCreams.find(slug);
    if (!flavour) throw new NotFoundException('no such flavour'); // a 404 is never stored
    return page(flavour.name, `<p>${escape(flavour.name)}: €${flavour.price}</p>`);
  }

  @Get('specials')
  @Header('Content-Type', 'text/html; charset=utf-8')
  specials(): string {
    const specials = this.iceCreams.specials();
    // No path names this page's data, so it tags itself: invalidateTags(['specials']) reaches it,
    // and so does changed(flavour) for a flavour it shows (IceCream's dependentTags).
    this.dumper.tag('specials', ...specials.map((f) => `flavour:${f.slug}`));
    return page("This week's specials", `<ul>${specials.map((f) => `<li>${escape(f.name)}</li>`).join('')}</ul>`);
  }
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title: string, body: string): string {
  return `<!doctype html><title>${escape(title)}</title><h1>${escape(title)}</h1>${body}<footer>rendered at <time>${new Date().toISOString()}</time></footer>`;
}
