/**
 * docs/drizzle.md's runnable example runs: the flavour page is a MISS, then a HIT, and a MISS with the
 * new name after the example's admin route renames the flavour with `db.update().where()`, which never calls the
 * dumper (see test/support/docs-example.ts).
 */
import { docsExampleSuite } from '../../support/docs-example.js';

docsExampleSuite({ doc: 'docs/drizzle.md', write: 'db.update() by predicate' });
