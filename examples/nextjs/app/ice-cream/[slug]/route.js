import { dumperFetch } from 'page-dumper/fetch';
import { dumper, escape, flavours, html } from '../../../lib/site.js';

// dumperFetch passes Next's second argument ({ params }) through to the handler.
export const GET = dumperFetch(dumper, async (request, { params }) => {
  const flavour = flavours.get((await params).slug);
  if (!flavour) return html('Not found', 'No such flavour.', 404); // never stored
  return html(flavour.name, `<p>${escape(flavour.name)}: €${flavour.price}</p>`);
});
