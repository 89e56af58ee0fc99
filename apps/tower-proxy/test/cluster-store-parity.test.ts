import type { Cluster } from '@knet/cluster-crd';
import { decodeApiError, loadKubeConfig } from '@knet/k8s';
import { RecordingLogger } from '@knet/runtime';
import { TOWER_NAMESPACE, startTowerHost, until, type ControlPlane } from '@knet/testing';
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
  /** A user creates a Service mc-<cluster> of their own (`kubectl create service clusterip`). */
  userService(cluster: string): Promise<void>;
  /** A user deletes mc-<cluster> and creates one of their own in its place. */
  replaceWithUserService(cluster: string): Promise<void>;
  /** The labels of mc-<cluster> as stored. */
  serviceLabels(cluster: string): Promise<unknown>;
  /** The store's caches stop following the API server (keeping what they hold): a watch that lags. */
  pauseWatch(): Promise<void>;
}

type Outcome = { ok: unknown } | { code: number; reason: string; message: string };

/** The same steps against the real API server and the fake: each must give the same outcome. */
async function script(side: Side): Promise<[string, Outcome][]> {
  const { store } = side;
  await side.put('p');
  await store.start();
  // The watches may still be refused a moment ('storage is (re)initializing' of a CRD just made).
  await until('the store to be synced', () => store.synced);
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
  // mc-<cluster>, or as a LoadBalancer: the store applies what it is given (an older proxy made
  // mc-<cluster> itself the LoadBalancer; applying it as ClusterIP again is the upgrade).
  const intent = (type: 'ClusterIP' | 'LoadBalancer', cluster = 'p') => {
    const svc = desiredService(
      { ...cached, metadata: { ...cached.metadata, name: cluster }, spec: P },
      { kubernetes: 6000, kubesphere: 16000 },
      { namespace: NS, selector: { app: 'tower' } },
    );
    if (type === 'LoadBalancer') {
      svc.spec.type = type;
      svc.metadata.annotations = { 'lb.example.com/scheme': 'internal' };
    }
    return svc;
  };
  let written: Cluster | undefined;

  await step('synced once started', async () => store.synced);
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
  await step('patch the connection on an old version', () =>
    store.patchConnection('p', { token: 'overwritten' }, cached.metadata.resourceVersion),
  );
  await step(
    'patch the connection on the current version',
    async () =>
      (written = await store.patchConnection('p', { token: 't2' }, written!.metadata.resourceVersion)).spec,
  );
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
  await step('delete the Service', () => store.deleteService('p', 'mc-p'));
  await step('delete it again: nothing of the proxy is left', () => store.deleteService('p', 'mc-p'));
  await step('delete the Service of a Cluster never served', () => store.deleteService('never', 'mc-never'));
  // A Service that is not the proxy's is never taken over nor deleted, whatever its name.
  await side.userService('f');
  await step("apply over a user's Service", () => store.applyService(intent('ClusterIP', 'f')));
  await step("delete a user's Service", () => store.deleteService('f', 'mc-f'));
  await step("the user's Service is untouched", () => side.serviceLabels('f'));
  await step('apply the Service again', () => store.applyService(intent('ClusterIP')));
  await side.pauseWatch();
  await side.replaceWithUserService('p');
  await step("delete it after a user replaced it (the store's cache still has the proxy's)", () =>
    store.deleteService('p', 'mc-p'),
  );
  await step("the user's Service in its place is untouched", () => side.serviceLabels('p'));
  store.record(cached, { type: 'Normal', reason: 'Test', message: 'recorded, never thrown' });
  await store.stop();
  await step('synced once stopped', async () => store.synced);
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
  const logger = new RecordingLogger();
  const realStore = new KubeClusterStore(kc, { serviceNamespace: NS, logger });
  const kubectlUserService = (cluster: string) =>
    host.kubectlOk(['create', 'service', 'clusterip', `mc-${cluster}`, '--tcp=6443:6000', '-n', NS]);
  const real: Side = {
    store: realStore,
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
    userService: async (cluster) => void (await kubectlUserService(cluster)),
    replaceWithUserService: async (cluster) => {
      await host.kubectlOk(['delete', 'service', `mc-${cluster}`, '-n', NS]);
      await kubectlUserService(cluster);
    },
    serviceLabels: async (cluster) =>
      JSON.parse(
        await host.kubectlOk([
          'get',
          'service',
          `mc-${cluster}`,
          '-n',
          NS,
          '-o',
          'jsonpath={.metadata.labels}',
        ]),
      ) as unknown,
    pauseWatch: () => realStore.stop(),
  };
  const fakeStore = new FakeClusterStore({ serviceNamespace: NS });
  // What `kubectl create service clusterip mc-<cluster> --tcp=6443:6000` creates.
  const fakeUserService = (cluster: string) =>
    void fakeStore.putService({
      metadata: { name: `mc-${cluster}`, labels: { app: `mc-${cluster}` } },
      spec: {
        type: 'ClusterIP',
        selector: { app: `mc-${cluster}` },
        ports: [{ name: '6443-6000', protocol: 'TCP', port: 6443, targetPort: 6000 }],
      },
    });
  const fake: Side = {
    store: fakeStore,
    put: async (name) => void fakeStore.put({ metadata: { name }, spec: P }),
    setIngress: async (cluster, ip) => fakeStore.setIngress(cluster, ip, `mc-${cluster}`),
    userService: async (cluster) => fakeUserService(cluster),
    replaceWithUserService: async (cluster) => {
      fakeStore.removeService(cluster);
      fakeUserService(cluster);
    },
    serviceLabels: async (cluster) => fakeStore.service(cluster)?.metadata?.labels,
    pauseWatch: async () => undefined,
  };
  const [want, got] = [await script(real), await script(fake)];
  expect(got).toEqual(want);
  const answers = Object.fromEntries(want);
  expect(answers['synced once started']).toEqual({ ok: true });
  expect(answers['synced once stopped']).toEqual({ ok: false });
  expect(answers['apply it again: same ClusterIP']).toEqual({ ok: true });
  expect(answers['patch it again: nothing changes, not even the resourceVersion']).toEqual({ ok: true });
  expect(answers['delete the Service']).toEqual({ ok: 'deleted' });
  expect(answers["apply over a user's Service"]).toMatchObject({ code: 409, reason: 'Conflict' });
  expect(answers["the user's Service in its place is untouched"]).toEqual({ ok: { app: 'mc-p' } });
  // The real store did send its DELETE, on the condition of the UID and resourceVersion it had
  // seen: the API server refused it, and the store read the Service again and left it alone.
  expect(logger.messages('warn')).toEqual(["Service is not tower-proxy's (any more): left alone"]);
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
    'ok',
    409,
    'ok',
    409,
    'ok',
    404,
    404,
    'ok',
    'ok',
    'ok',
    409,
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
    'ok',
  ]);
});
