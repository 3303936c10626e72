/**
 * docs/sequelize.md's runnable example runs: the flavour page is a MISS, then a HIT, and a MISS with the
 * new name after the example's admin route renames the flavour with `Flavour.update(values, { where })`, which never calls the
 * dumper (see test/support/docs-example.ts).
 */
import { docsExampleSuite } from '../../support/docs-example.js';

docsExampleSuite({ doc: 'docs/sequelize.md', write: 'Model.update() by where' });
