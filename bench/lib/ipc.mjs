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
