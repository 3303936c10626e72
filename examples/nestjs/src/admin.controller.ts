/** The admin: /admin is never cached (the default `ignore`), and POSTs always go to the app. */
import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { IceCreamService } from './ice-cream.js';

@Controller('admin')
export class AdminController {
  constructor(private readonly iceCreams: IceCreamService) {}

  @Post('ice-cream/:slug')
  @HttpCode(200)
  update(@Param('slug') slug: string, @Body() body: { name?: unknown; price?: unknown }) {
    return this.iceCreams.update(slug, body ?? {});
  }

  @Post('specials')
  @HttpCode(200)
  async specials(@Body() body: { slugs?: unknown[] }) {
    return { specials: await this.iceCreams.setSpecials(body?.slugs ?? []) };
  }
}
