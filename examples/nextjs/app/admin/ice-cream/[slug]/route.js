import { dumper, flavours } from '../../../../lib/site.js';

// /admin is never cached (the default `ignore`), and the admin is not wrapped in dumperFetch.
export async function POST(request, { params }) {
  const flavour = flavours.get((await params).slug);
  if (!flavour) return Response.json({ error: 'no such flavour' }, { status: 404 });
  const { name, price } = await request.json();
  if (name !== undefined) flavour.name = String(name);
  if (price !== undefined) flavour.price = Number(price);
  await dumper.changed(flavour); // what an ORM integration does on every save
  return Response.json(flavour);
}
