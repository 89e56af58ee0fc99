/**
 * The PacketKubeadmConfig loop on the in-memory store: what it creates, the role it picks, and that
 * no CA private key reaches any bootstrap data.
 */
import { loadYaml } from '@kubernetes/client-node';
import {
  BOOTSTRAP_API_VERSION,
  CLUSTER_NAME_LABEL,
  caCertHash,
  type CapiCluster,
  type PacketKubeadmConfig,
} from '@knet/capi';
import { createCertificateAuthority } from '@knet/crypto';
import { RecordingLogger } from '@knet/runtime';
import { BootstrapReconciler } from './bootstrap-reconciler';
import { CLUSTER, EIP, NS, cluster, machine } from './fixture';
import { FakeStore } from './store';

jest.setTimeout(30_000);

const NOW = new Date('2026-12-06T10:00:00Z');

function withEndpoint(over: Parameters<typeof cluster>[0] = {}): CapiCluster {
  const c = cluster(over);
  c.spec!.controlPlaneEndpoint = { host: EIP, port: 6443 };
  return c;
}

function config(name: string, spec: PacketKubeadmConfig['spec'] = {}): PacketKubeadmConfig {
  return {
    apiVersion: BOOTSTRAP_API_VERSION,
    kind: 'PacketKubeadmConfig',
    metadata: {
      name,
      namespace: NS,
      uid: `uid-cfg-${name}`,
      labels: { [CLUSTER_NAME_LABEL]: CLUSTER },
      ownerReferences: [
        { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Machine', name, uid: `uid-${name}` },
      ],
    },
    spec,
  };
}

function bed(c: CapiCluster = withEndpoint(), now = NOW) {
  const store = new FakeStore();
  store.put(c);
  const r = new BootstrapReconciler({ store, logger: new RecordingLogger(), now: () => now });
  const add = (name: string, controlPlane: boolean, spec?: PacketKubeadmConfig['spec']) => {
    store.put(machine(name, { controlPlane, dataSecret: false }));
    store.put(config(name, spec));
  };
  const cfg = (name: string) => store.objects.get(`PacketKubeadmConfig/${NS}/${name}`) as PacketKubeadmConfig;
  const data = (name: string) => store.secrets.get(`${NS}/${name}`)?.['value'];
  return { store, r, add, cfg, data };
}

const ready = (c: PacketKubeadmConfig) => c.status?.conditions?.find((x) => x.type === 'Ready');

describe('BootstrapReconciler', () => {
  it('waits for the cluster infrastructure and its endpoint', async () => {
    const b = bed(cluster({ provisioned: false }));
    b.add('cp-0', true);
    expect(await b.r.reconcile(NS, 'cp-0')).toEqual({});
    expect(ready(b.cfg('cp-0'))).toMatchObject({
      status: 'False',
      reason: 'WaitingForClusterInfrastructure',
    });
    expect(b.store.created).toEqual([]);
  });

  it('the first control plane: key material, kubeconfig, token, lock, then kubeadm init data', async () => {
    const b = bed();
    b.add('cp-0', true);
    await b.r.reconcile(NS, 'cp-0');
    expect(b.store.created.map((o) => `${o.kind}/${o.name}`)).toEqual([
      `Secret/${CLUSTER}-ca`,
      `Secret/${CLUSTER}-etcd`,
      `Secret/${CLUSTER}-proxy`,
      `Secret/${CLUSTER}-sa`,
      `Secret/${CLUSTER}-kubelet-signer`,
      `Secret/${CLUSTER}-kubeconfig`,
      `Secret/${CLUSTER}-bootstrap-token`,
      `ConfigMap/${CLUSTER}-lock`,
      'Secret/cp-0',
    ]);
    // Everything per cluster is owned by the Cluster (gone with it); the data by its config.
    for (const o of b.store.created.slice(0, 8))
      expect(o.ownerReferences?.[0]).toMatchObject({ kind: 'Cluster' });
    expect(b.store.created[8]!.ownerReferences?.[0]).toMatchObject({
      kind: 'PacketKubeadmConfig',
      controller: true,
    });
    expect(b.store.created[8]!.type).toBe('cluster.x-k8s.io/secret');
    expect(b.cfg('cp-0').status).toMatchObject({
      ready: true,
      dataSecretName: 'cp-0',
      initialization: { dataSecretCreated: true },
    });
    const userdata = b.data('cp-0')!;
    expect(userdata.startsWith('#cloud-config')).toBe(true);
    expect(userdata).toContain('kubeadm init');
    expect(b.store.secrets.get(`${NS}/${CLUSTER}-kubeconfig`)?.['value']).toContain(
      `server: "https://${EIP}:6443"`,
    );
    expect(b.store.events.map((e) => e.reason)).toContain('DataSecretCreated');
  });

  it('workers join with the CA pinned and the cluster token; no CA private key in any bootstrap data', async () => {
    const b = bed();
    b.add('cp-0', true);
    b.add('w-0', false);
    b.add('w-1', false);
    for (const n of ['cp-0', 'w-0', 'w-1']) await b.r.reconcile(NS, n);
    const ca = b.store.secrets.get(`${NS}/${CLUSTER}-ca`)!;
    const hash = caCertHash(ca['tls.crt']!);
    const token = b.store.secrets.get(`${NS}/${CLUSTER}-bootstrap-token`)!['token']!;
    for (const w of ['w-0', 'w-1']) {
      const doc = loadYaml<{ write_files: { path: string; content: string }[] }>(b.data(w)!);
      const kubeadm = doc.write_files.find((f) => f.path.endsWith('kubeadm.yaml'))!.content;
      expect(kubeadm).toContain('kind: JoinConfiguration');
      expect(kubeadm).toContain(hash);
      expect(kubeadm).toContain(token);
      expect(kubeadm).not.toContain('unsafeSkipCAVerification: true');
    }
    // The leak counter first catches a planted key, then finds none in the real data.
    const keys = ['ca', 'etcd', 'proxy'].map(
      (p) => b.store.secrets.get(`${NS}/${CLUSTER}-${p}`)!['tls.key']!,
    );
    const bodies = keys.map((k) => k.split('\n').filter((l) => l && !l.startsWith('-----'))[1]!);
    const leaks = (text: string) => bodies.filter((body) => text.includes(body)).length;
    expect(leaks(`planted ${keys[0]}`)).toBe(1);
    for (const n of ['cp-0', 'w-0', 'w-1']) expect(leaks(b.data(n)!)).toBe(0);
  });

  it('keeps an existing cluster CA (made before, or by CABPK/KCP) and pins it', async () => {
    const b = bed();
    const ca = await createCertificateAuthority('kubernetes');
    b.store.secrets.set(`${NS}/${CLUSTER}-ca`, { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem });
    b.add('w-0', false);
    await b.r.reconcile(NS, 'w-0');
    expect(b.store.created.map((o) => o.name)).not.toContain(`${CLUSTER}-ca`);
    expect(b.data('w-0')).toContain(caCertHash(ca.certPem));
  });

  it('a second control plane is refused with a clear condition (one control plane per cluster)', async () => {
    const b = bed();
    b.add('cp-0', true);
    b.add('cp-1', true);
    await b.r.reconcile(NS, 'cp-0');
    await b.r.reconcile(NS, 'cp-1');
    expect(ready(b.cfg('cp-1'))).toMatchObject({
      status: 'False',
      reason: 'ControlPlaneJoinUnsupported',
      severity: 'Error',
    });
    expect(b.data('cp-1')).toBeUndefined();
    expect(
      b.store.events.some((e) => e.type === 'Warning' && e.reason === 'ControlPlaneJoinUnsupported'),
    ).toBe(true);
  });

  it('concurrent passes agree on one set of key material', async () => {
    const b = bed();
    for (const n of ['w-0', 'w-1', 'w-2']) b.add(n, false);
    const first = await Promise.allSettled(['w-0', 'w-1', 'w-2'].map((n) => b.r.reconcile(NS, n)));
    for (const [i, r] of first.entries()) if (r.status === 'rejected') await b.r.reconcile(NS, `w-${i}`);
    const hash = caCertHash(b.store.secrets.get(`${NS}/${CLUSTER}-ca`)!['tls.crt']!);
    for (const n of ['w-0', 'w-1', 'w-2']) expect(b.data(n)).toContain(hash);
    expect(b.store.created.filter((o) => o.name === `${CLUSTER}-ca`)).toHaveLength(1);
  });

  it('joins wait when the cluster token is about to expire; init does not', async () => {
    const b = bed(withEndpoint(), NOW);
    b.add('w-0', false, { tokenTTL: '20m' });
    expect(await b.r.reconcile(NS, 'w-0')).toEqual({ requeueAfterMs: 300_000 });
    expect(ready(b.cfg('w-0'))).toMatchObject({ reason: 'WaitingForJoinToken' });
    expect(b.data('w-0')).toBeUndefined();
    b.add('cp-0', true);
    await b.r.reconcile(NS, 'cp-0');
    expect(b.data('cp-0')).toContain('kubeadm init');
  });

  it('paused: nothing is created', async () => {
    const b = bed(withEndpoint({ paused: true }));
    b.add('cp-0', true);
    await b.r.reconcile(NS, 'cp-0');
    expect(b.store.created).toEqual([]);
    expect(b.store.writes).toEqual([]);
  });

  it('a ready config is left alone', async () => {
    const b = bed();
    b.add('cp-0', true);
    await b.r.reconcile(NS, 'cp-0');
    const writes = b.store.writes.length;
    await b.r.reconcile(NS, 'cp-0');
    expect(b.store.writes.length).toBe(writes);
  });
});
