/**
 * docs/kysely.md's runnable example runs: the flavour page is a MISS, then a HIT, and a MISS with the
 * new name after the example's admin route renames the flavour with `updateTable()`, which never calls the
 * dumper (see test/support/docs-example.ts).
 */
import { docsExampleSuite } from '../../support/docs-example.js';

docsExampleSuite({ doc: 'docs/kysely.md', write: 'updateTable()' });
