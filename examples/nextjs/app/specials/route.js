import { dumperFetch } from 'page-dumper/fetch';
import { dumper, escape, flavours, html, site } from '../../lib/site.js';

export const GET = dumperFetch(dumper, () => {
  // No path names this page's data, so it tags itself: invalidateTags(['specials']) reaches it,
  // and so does changed(flavour) for a flavour it shows (IceCream's dependentTags).
  dumper.tag('specials', ...site.specials.map((slug) => `flavour:${slug}`));
  const items = site.specials.map((slug) => flavours.get(slug)).filter(Boolean).map((f) => `<li>${escape(f.name)}</li>`);
  return html("This week's specials", `<ul>${items.join('')}</ul>`);
});
