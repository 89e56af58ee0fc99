import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig, type V1Service } from '@kubernetes/client-node';
import type { Cluster } from '@knet/cluster-crd';
import { silentLogger } from '@knet/runtime';
import { KubeClusterStore, matchesIntent } from './cluster-store';
import { desiredExternalService, desiredService, type ServiceIntent } from './core/plan';

const cluster: Cluster = {
  apiVersion: 'cluster.kubesphere.io/v1alpha1',
  kind: 'Cluster',
  metadata: { name: 'a', uid: 'c-uid' },
  spec: { joinFederation: true, connection: { type: 'proxy' as const } },
};
const O = { namespace: 'kubesphere-system', selector: { app: 'tower' } };
const internal = (kubernetes = 6000) =>
  desiredService(cluster, { kubernetes, kubesphere: kubernetes + 10_000 }, O);
/** The Service as the API server keeps it: the intent plus what it and others add. */
const stored = (intent: ServiceIntent): V1Service => ({
  ...structuredClone(intent),
  metadata: { ...structuredClone(intent.metadata), uid: 'u1', resourceVersion: '7' },
  spec: {
    ...structuredClone(intent.spec),
    clusterIP: '10.96.0.7',
    sessionAffinity: 'None',
    ports: intent.spec.ports.map((p) => ({ ...p, nodePort: 31000 })),
  },
});

/**
 * A loopback API server that records each request: an apply (PATCH) of a Service answers with
 * the Service applied (and a ClusterIP), everything else 404.
 */
let server: Server;
const requests: string[] = [];
let kc: KubeConfig;

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url?.replace(/\?.*/, '')}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/api/v1') {
        // Discovery (the apply resolves Service → services with it, once per kubeconfig).
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            kind: 'APIResourceList',
            groupVersion: 'v1',
            resources: [{ name: 'services', namespaced: true, kind: 'Service', verbs: ['patch'] }],
          }),
        );
        return;
      }
      if (req.method === 'PATCH' && req.url?.includes('/services/')) {
        const svc = JSON.parse(Buffer.concat(chunks).toString()) as V1Service;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            ...svc,
            metadata: { ...svc.metadata, uid: 'u1', resourceVersion: '7' },
            spec: { ...svc.spec, clusterIP: '10.96.0.7' },
          }),
        );
        return;
      }
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          reason: 'NotFound',
          code: 404,
        }),
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
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

  it('an apply the Service already matches (as last applied or seen) is not sent again; a change is', async () => {
    const store = new KubeClusterStore(kc, { serviceNamespace: 'kubesphere-system', logger: silentLogger });
    requests.length = 0;
    await expect(store.applyService(internal())).resolves.toEqual({ clusterIP: '10.96.0.7' });
    // Not in the cache: read first (404: nobody's), then applied.
    expect(requests).toEqual([
      'GET /api/v1/namespaces/kubesphere-system/services/mc-a',
      'GET /api/v1',
      'PATCH /api/v1/namespaces/kubesphere-system/services/mc-a',
    ]);
    requests.length = 0;
    await expect(store.applyService(internal())).resolves.toEqual({ clusterIP: '10.96.0.7' });
    expect(requests).toEqual([]);
    await store.applyService(internal(6001));
    expect(requests).toEqual(['PATCH /api/v1/namespaces/kubesphere-system/services/mc-a']);
  });
});

describe('matchesIntent', () => {
  const lb = desiredExternalService(cluster, { kubernetes: 6000, kubesphere: 16000 }, O, { 'lb/x': 'y' });
  it.each<[string, ServiceIntent, (s: V1Service) => void, boolean]>([
    ['as stored, with what the API server adds', internal(), () => undefined, true],
    ['the LoadBalancer, as stored', lb, () => undefined, true],
    ['a label of someone else besides ours', internal(), (s) => (s.metadata!.labels!.x = 'y'), true],
    ['our label changed', internal(), (s) => (s.metadata!.labels!['tower.knet.io/cluster'] = 'b'), false],
    ['an annotation too many', internal(), (s) => (s.metadata!.annotations = { x: 'y' }), false],
    ['an annotation changed', lb, (s) => (s.metadata!.annotations = { 'lb/x': 'z' }), false],
    ['no annotations when some are wanted', lb, (s) => delete s.metadata!.annotations, false],
    ['another owner', internal(), (s) => (s.metadata!.ownerReferences![0]!.uid = 'other'), false],
    ['no owner', internal(), (s) => delete s.metadata!.ownerReferences, false],
    ['another type', internal(), (s) => (s.spec!.type = 'LoadBalancer'), false],
    ['another selector', internal(), (s) => (s.spec!.selector = { app: 'other' }), false],
    ['a selector key more', internal(), (s) => (s.spec!.selector!.x = 'y'), false],
    ['another targetPort', internal(), (s) => (s.spec!.ports![1]!.targetPort = 16001), false],
    ['a port less', internal(), (s) => s.spec!.ports!.pop(), false],
    [
      'a port more (the kubesphere port on the LoadBalancer)',
      lb,
      (s) => s.spec!.ports!.push({ port: 80 }),
      false,
    ],
  ])('%s', (_what, intent, change, want) => {
    const svc = stored(intent);
    change(svc);
    expect(matchesIntent(svc, intent)).toBe(want);
  });
});
