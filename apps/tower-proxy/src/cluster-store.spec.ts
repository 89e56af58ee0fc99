import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { silentLogger } from '@knet/runtime';
import { KubeClusterStore } from './cluster-store';

/** A loopback API server that records each request and answers 404 to all. */
let server: Server;
const requests: string[] = [];
let kc: KubeConfig;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe('KubeClusterStore', () => {
  it('cleaning up a Cluster with no Service of the proxy in the cache sends no request', async () => {
    const store = new KubeClusterStore(kc, { serviceNamespace: 'kubesphere-system', logger: silentLogger });
    requests.length = 0;
    await expect(store.deleteService('host', 'mc-host')).resolves.toBe('none');
    await expect(store.deleteService('host', 'mc-host')).resolves.toBe('none');
    expect(requests).toEqual([]);
  });
});
