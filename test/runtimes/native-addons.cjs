'use strict';
/**
 * Preloaded (`NODE_OPTIONS=--require <this file>`) when the test suite runs on a Node other than
 * the one `npm ci` compiled the native addons for. better-sqlite3 is built against V8's ABI, which
 * changes with each Node major (`process.versions.modules`): its `build/Release/*.node` fails to
 * load on another one. `node scripts/runtimes.mjs` compiles a copy per ABI into
 * `.tmp/runtimes/addons/node-v<abi>/<package>@<version>/`, and this swaps it in where the package
 * loads its own. Addons built on Node-API (sqlite3) load on every Node and are left alone, as is
 * anything without a copy for this ABI.
 */
const fs = require('node:fs');
const path = require('node:path');

const addons = path.join(__dirname, '..', '..', '.tmp', 'runtimes', 'addons', `node-v${process.versions.modules}`);
const load = process.dlopen;

/** The copy compiled for this ABI of the addon at `filename`, or undefined. */
function copyFor(filename) {
  const match = /^(.*[\\/]node_modules[\\/](?:@[^\\/]+[\\/])?[^\\/]+)[\\/]build[\\/]Release[\\/]([^\\/]+\.node)$/.exec(filename);
  if (match === null) return undefined;
  let pkg;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(match[1], 'package.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const copy = path.join(addons, `${pkg.name.replace('/', '+')}@${pkg.version}`, match[2]);
  return fs.existsSync(copy) ? copy : undefined;
}

process.dlopen = function dlopen(module, filename, ...rest) {
  return load.call(this, module, copyFor(filename) ?? filename, ...rest);
};
