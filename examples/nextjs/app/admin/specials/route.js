import { dumper, flavours, site } from '../../../lib/site.js';

export async function POST(request) {
  const { slugs = [] } = await request.json();
  site.specials = slugs.map(String).filter((slug) => flavours.has(slug));
  await dumper.invalidateTags(['specials']);
  return Response.json({ specials: site.specials });
}
