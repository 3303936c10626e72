import { fork } from 'node:child_process';

// The request loop of a bench's server process driven by its parent over IPC: each message
// `{ id, name, arg }` calls `handlers[name](arg)` and is answered `{ id, ok }` or `{ id, error }`;
// the process exits when the parent goes away.
export function serveHandlers(handlers) {
  process.on('disconnect', () => process.exit(0));
  process.on('message', async ({ id, name, arg }) => {
    try {
      process.send({ id, ok: await handlers[name](arg) });
    } catch (error) {
      process.send({ id, error: String(error?.stack ?? error) });
    }
  });
}

/**
 * Runs `file` in a child process with `args` (and Node's `execArgv`) and resolves with the one
 * message it sends; rejects when it exits with another code than 0 before that.
 */
export function childResult(file, args, execArgv = []) {
  const child = fork(file, args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.on('message', resolve);
    child.on('exit', (code) => (code === 0 ? undefined : reject(new Error(`the child exited with ${code}`))));
  });
}
