import { dumperFetch } from 'page-dumper/fetch';
import { dumper, escape, flavours, html } from '../../lib/site.js';

export const GET = dumperFetch(dumper, () => {
  const items = [...flavours.values()].map((f) => `<li><a href="/ice-cream/${f.slug}">${escape(f.name)}</a></li>`);
  return html('Flavours', `<ul>${items.join('')}</ul>`);
});
