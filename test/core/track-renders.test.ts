/**
 * Render contexts (AsyncLocalStorage) are switched on by the first dumper.tag() call, and no
 * render that may have tagged itself before that is stored without its tags. This file has its
 * own module state: vitest runs each test file in a fresh worker.
 */
import { expect, test } from 'vitest';
import { withDumper } from '../../src/http/node/index.js';
import { createDumper, MemoryStore } from '../../src/index.js';
import { listen } from '../support/listen.js';

test('the first tag() switches tracking on; renders in flight then are not stored; later ones are tagged', async () => {
  const store = new MemoryStore();
  const dumper = createDumper({ store, logger: false });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const m = await listen(
    withDumper(dumper, async (req, res) => {
      if (req.url === '/untagged') await held; // in flight when the first tag() happens
      if (req.url === '/tagged') dumper.tag('t');
      res.end(req.url);
    }),
  );
  const get = async (p: string) => (await fetch(m.url + p)).headers.get('x-cache');
  expect(await get('/plain')).toBe('MISS');
  expect(await get('/plain')).toBe('HIT'); // no tag anywhere yet: stored without tracking
  const untagged = get('/untagged');
  await new Promise((r) => setTimeout(r, 20));
  expect(await get('/tagged')).toBe('MISS'); // tagged without a context: not stored
  release();
  expect(await untagged).toBe('MISS');
  expect(await get('/untagged')).toBe('MISS'); // was in flight: could have been the tagger
  expect(await get('/tagged')).toBe('MISS'); // now tracked and stored with its tag
  expect(await get('/tagged')).toBe('HIT');
  await dumper.invalidateTags('t');
  expect(await get('/tagged')).toBe('MISS');
  expect(await get('/plain')).toBe('HIT');
  await m.close();
  await dumper.close();
});
