import type { Cluster } from '@knet/cluster-crd';
import { decodeApiError, loadKubeConfig } from '@knet/k8s';
import { silentLogger } from '@knet/runtime';
import { TOWER_NAMESPACE, startTowerHost, type ControlPlane } from '@knet/testing';
import { KubeClusterStore, type ClusterStore } from '../src/cluster-store';
import { desiredService } from '../src/core/plan';
import { FakeClusterStore } from '../src/fakes/cluster-store';

jest.setTimeout(120_000);

const NS = TOWER_NAMESPACE;
const P = { joinFederation: true, connection: { type: 'proxy' as const } };

/** One side of the comparison: a store, and what users and clouds do to its objects. */
interface Side {
  store: ClusterStore;
  put(name: string): Promise<void>;
  setIngress(cluster: string, ip: string): Promise<void>;
}

type Outcome = { ok: unknown } | { code: number; reason: string; message: string };

/** The same steps against the real API server and the fake: each must give the same outcome. */
async function script(side: Side): Promise<[string, Outcome][]> {
  const { store } = side;
  await side.put('p');
  await store.start();
  const out: [string, Outcome][] = [];
  const step = async (name: string, fn: () => Promise<unknown>) => {
    try {
      out.push([name, { ok: normalize(await fn()) }]);
    } catch (e) {
      const d = decodeApiError(e);
      out.push([
        name,
        { code: d.code, reason: d.reason, message: e instanceof Error ? e.message : String(e) },
      ]);
    }
  };
  const cached = store.cluster('p')!;
  const intent = (type: 'ClusterIP' | 'LoadBalancer') =>
    desiredService(
      { ...cached, spec: { ...P, externalKubeAPIEnabled: type === 'LoadBalancer' } },
      { kubernetes: 6000, kubesphere: 16000 },
      { namespace: NS, selector: { app: 'tower' } },
      type === 'LoadBalancer' ? { 'lb.example.com/scheme': 'internal' } : {},
    );
  let written: Cluster | undefined;

  await step('the cached Cluster', async () => cached.spec);
  await step('a Cluster not cached', async () => store.cluster('nope') ?? 'none');
  await step('apply a ClusterIP Service', () => store.applyService(intent('ClusterIP')));
  let ip: string | undefined;
  await step('apply it again: same ClusterIP', async () => {
    ip = (await store.applyService(intent('ClusterIP'))).clusterIP;
    return (await store.applyService(intent('ClusterIP'))).clusterIP === ip;
  });
  await step('apply it as a LoadBalancer', () => store.applyService(intent('LoadBalancer')));
  await side.setIngress('p', '203.0.113.10');
  await step('apply the LoadBalancer with an ingress', () => store.applyService(intent('LoadBalancer')));
  await step('apply it as ClusterIP again: the ingress goes', () => store.applyService(intent('ClusterIP')));
  await step(
    'patch the connection',
    async () => (written = await store.patchConnection('p', { token: 't' })).spec,
  );
  await step('patch it again: nothing changes, not even the resourceVersion', async () => {
    const again = await store.patchConnection('p', { token: 't' });
    return again.metadata.resourceVersion === written?.metadata.resourceVersion;
  });
  await step('write conditions on an old version', () =>
    store.writeConditions(cached, [{ type: 'Initialized', status: 'True' }]),
  );
  await step(
    'write conditions on the current version',
    async () =>
      (
        await store.writeConditions(written!, [
          { type: 'Initialized', status: 'True', reason: 'R', message: 'm' },
        ])
      ).status,
  );
  await step('patch a missing Cluster', () => store.patchConnection('nope', { token: 't' }));
  await step('write conditions of a missing Cluster', () =>
    store.writeConditions({ ...cached, metadata: { name: 'nope' } }, []),
  );
  await step('delete the Service', () => store.deleteService('p'));
  await step('delete it again', () => store.deleteService('p'));
  store.record(cached, { type: 'Normal', reason: 'Test', message: 'recorded, never thrown' });
  await store.stop();
  return out;
}

/** Drops what the API server assigns (ClusterIPs, resourceVersions, uids, timestamps). */
function normalize(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v ?? null, (k, x: unknown) =>
      k === 'clusterIP'
        ? 'ALLOCATED'
        : ['resourceVersion', 'uid', 'creationTimestamp', 'managedFields', 'generation'].includes(k)
          ? undefined
          : x,
    ),
  ) as unknown;
}

let host: ControlPlane;
afterAll(async () => {
  await host?.stop();
});

it('KubeClusterStore and FakeClusterStore answer the same script the same way', async () => {
  host = await startTowerHost();
  const { kc } = loadKubeConfig({ kubeconfig: host.kubeconfigPath });
  const real: Side = {
    store: new KubeClusterStore(kc, { serviceNamespace: NS, logger: silentLogger }),
    put: async (name) => {
      const c = {
        apiVersion: 'cluster.kubesphere.io/v1alpha1',
        kind: 'Cluster',
        metadata: { name },
        spec: P,
      };
      await host.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(c) });
    },
    setIngress: async (cluster, ip) => {
      await host.kubectlOk([
        'patch',
        'service',
        `mc-${cluster}`,
        '-n',
        NS,
        '--subresource=status',
        '--type=merge',
        '-p',
        JSON.stringify({ status: { loadBalancer: { ingress: [{ ip }] } } }),
      ]);
    },
  };
  const fakeStore = new FakeClusterStore({ serviceNamespace: NS });
  const fake: Side = {
    store: fakeStore,
    put: async (name) => void fakeStore.put({ metadata: { name }, spec: P }),
    setIngress: async (cluster, ip) => fakeStore.setIngress(cluster, ip),
  };
  const [want, got] = [await script(real), await script(fake)];
  expect(got).toEqual(want);
  const answers = Object.fromEntries(want);
  expect(answers['apply it again: same ClusterIP']).toEqual({ ok: true });
  expect(answers['patch it again: nothing changes, not even the resourceVersion']).toEqual({ ok: true });
  // and the script met each kind of answer
  expect(want.map(([, o]) => ('ok' in o ? 'ok' : o.code))).toEqual([
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    409,
    'ok',
    404,
    404,
    'ok',
    404,
  ]);
});
