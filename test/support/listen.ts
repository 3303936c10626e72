import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Mounted } from './behaviour.js';

/** Serves a node request listener (or a server made elsewhere) on a free loopback port. */
export function listen(listener: http.RequestListener | http.Server): Promise<Mounted> {
  return new Promise((resolve) => {
    const server = listener instanceof http.Server ? listener : http.createServer(listener);
    server.keepAliveTimeout = 100;
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        port,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
