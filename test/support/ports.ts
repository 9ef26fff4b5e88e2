/**
 * Free TCP ports on 127.0.0.1 for servers the tests start (their own Redis, server processes).
 */
import { createServer, type Server } from 'node:net';

/** `n` distinct free ports on 127.0.0.1 (all probes held open together, so no two are the same). */
export async function freePorts(n: number): Promise<number[]> {
  const probes: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i += 1) {
      const probe = createServer();
      probes.push(probe);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          probe.once('error', reject);
          probe.listen(0, '127.0.0.1', () => {
            const address = probe.address();
            if (typeof address === 'object' && address !== null) resolve(address.port);
            else reject(new Error('no port'));
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(probes.map((probe) => new Promise<void>((resolve) => probe.close(() => resolve()))));
  }
}

/** One TCP port that was free on 127.0.0.1 a moment ago. */
export async function findFreePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('no free port');
  return port;
}
