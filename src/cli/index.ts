#!/usr/bin/env node
/**
 * The `page-dumper` command (the package's `bin`): see `main.ts` and docs/cli.md.
 */
import { main } from './main.js';

// `page-dumper ls | head`: the reader went away; that is not a failure of the command.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const code = await main(process.argv.slice(2), {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
});
// A store's client (ioredis reconnecting) or a purger's timer must not keep the command alive once
// it is done; stdout and stderr are written synchronously to files and pipes on POSIX.
process.exit(code);
