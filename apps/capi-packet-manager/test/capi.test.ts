/**
 * capi-packet-manager (its shipped bundle, with the chart's ServiceAccount and RBAC) with the real
 * Cluster API v1.11 core manager against the test bed's API server, and the fake Metal API on
 * loopback. The Machines carry their bootstrap data
 * Secret directly (no bootstrap provider here: CABPK would need the workload cluster to be up);
 * nothing has the workload cluster's kubeconfig, so CAPI never dials the endpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dumpYaml } from '@kubernetes/client-node';
import { bootstrapCrds, infrastructureCrds } from '@knet/capi';
import {
  CapiCore,
  ControlPlane,
  FakeMetalApi,
  ManagedProcess,
  appBundle,
  freePort,
  until,
  workspaceRoot,
} from '@knet/testing';

jest.setTimeout(120_000);

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const TOKEN = 'capi-test-token-0123456789';
const PROJECT = '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b';
const INFRA = 'infrastructure.cluster.x-k8s.io';

let cp: ControlPlane;
let capi: CapiCore;
let api: FakeMetalApi;
let bundle: string;
let dir: string;
/** The chart's ServiceAccount: the manager runs with exactly the chart's RBAC. */
let kubeconfig: string;
const managers: ManagedProcess[] = [];

const kubectl = (args: string[], input?: unknown) =>
  cp.kubectlOk(
    args,
    input === undefined ? {} : { input: typeof input === 'string' ? input : JSON.stringify(input) },
  );
const apply = (objs: Json[]) =>
  kubectl(['apply', '-f', '-'], { apiVersion: 'v1', kind: 'List', items: objs });
const get = async (ns: string, resource: string, name: string): Promise<Json | undefined> => {
  const r = await cp.kubectl(['get', resource, name, '-n', ns, '-o', 'json']);
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as Json) : undefined;
};
const list = async (ns: string, resource: string, selector?: string): Promise<Json[]> =>
  (
    JSON.parse(
      await kubectl(['get', resource, '-n', ns, '-o', 'json', ...(selector ? ['-l', selector] : [])]),
    ) as {
      items: Json[];
    }
  ).items;
const devicesOf = (cluster: string) =>
  api.devices().filter((d) => d.tags.includes(`capp:cluster-id:${cluster}`));

/** Polls with the manager's and CAPI's last log lines in the failure message. */
const eventually = <T>(what: string, fn: () => Promise<T>, timeoutMs = 60_000) =>
  until(() => `${what}\n--- manager:\n${managers.at(-1)?.tail(15)}\n--- capi:\n${capi.logs(8)}`, fn, {
    timeoutMs,
    intervalMs: 250,
  });

async function startManager(namespace: string, token = TOKEN): Promise<ManagedProcess> {
  const port = await freePort();
  const m = ManagedProcess.start(
    `capi-packet-manager-${managers.length}`,
    process.execPath,
    [
      bundle,
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${namespace}`,
      '--metrics-host=127.0.0.1',
      `--metrics-port=${port}`,
      '--device-poll-interval=300ms',
      '--sync-period=10m',
      '--log-level=debug',
    ],
    join(dir, `manager-${managers.length}.log`),
    { ...process.env, PACKET_API_KEY: token, METAL_API_URL: api.url },
  );
  managers.push(m);
  return m;
}

/** A Cluster, its PacketCluster, `cps` control-plane Machines and a MachineDeployment of `workers`. */
function clusterObjects(ns: string, name: string, cps: number, workers: number): Json[] {
  const ref = (kind: string, n: string) => ({ apiGroup: INFRA, kind, name: n });
  const machineSpec = (infra: Json) => ({
    clusterName: name,
    version: 'v1.34.4',
    bootstrap: { dataSecretName: `${name}-bootstrap` },
    infrastructureRef: infra,
  });
  const pmSpec = { os: 'ubuntu_24_04', machineType: 'c3.small.x86', billingCycle: 'hourly' };
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: `${name}-bootstrap`,
        namespace: ns,
        labels: { 'cluster.x-k8s.io/cluster-name': name },
      },
      stringData: { value: `#cloud-config\nhostname: ${name}\n`, format: 'cloud-config' },
    },
    {
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'Cluster',
      metadata: { name, namespace: ns },
      spec: {
        clusterNetwork: {
          pods: { cidrBlocks: ['192.168.0.0/16'] },
          services: { cidrBlocks: ['172.26.0.0/16'] },
        },
        infrastructureRef: ref('PacketCluster', name),
      },
    },
    {
      apiVersion: `${INFRA}/v1beta1`,
      kind: 'PacketCluster',
      metadata: { name, namespace: ns },
      spec: { projectID: PROJECT, metro: 'da' },
    },
    ...Array.from({ length: cps }, (_, i) => [
      {
        apiVersion: 'cluster.x-k8s.io/v1beta2',
        kind: 'Machine',
        metadata: {
          name: `${name}-cp-${i}`,
          namespace: ns,
          labels: { 'cluster.x-k8s.io/cluster-name': name, 'cluster.x-k8s.io/control-plane': '' },
        },
        spec: machineSpec(ref('PacketMachine', `${name}-cp-${i}`)),
      },
      {
        apiVersion: `${INFRA}/v1beta1`,
        kind: 'PacketMachine',
        metadata: { name: `${name}-cp-${i}`, namespace: ns },
        spec: pmSpec,
      },
    ]).flat(),
    {
      apiVersion: `${INFRA}/v1beta1`,
      kind: 'PacketMachineTemplate',
      metadata: { name: `${name}-worker`, namespace: ns },
      spec: { template: { spec: pmSpec } },
    },
    {
      apiVersion: 'cluster.x-k8s.io/v1beta2',
      kind: 'MachineDeployment',
      metadata: { name: `${name}-worker`, namespace: ns },
      spec: {
        clusterName: name,
        replicas: workers,
        selector: { matchLabels: { 'cluster.x-k8s.io/cluster-name': name } },
        template: {
          metadata: { labels: { 'cluster.x-k8s.io/cluster-name': name } },
          spec: machineSpec(ref('PacketMachineTemplate', `${name}-worker`)),
        },
      },
    },
  ];
}

async function readyMachines(ns: string, cluster: string): Promise<Json[]> {
  return (await list(ns, 'packetmachines', `cluster.x-k8s.io/cluster-name=${cluster}`)).filter(
    (m) => m['status']?.ready === true,
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'knet-capi-'));
  cp = await ControlPlane.start({ controllerManager: true });
  [capi, api, bundle] = await Promise.all([
    CapiCore.start(cp),
    FakeMetalApi.start({
      tokens: [TOKEN],
      durations: { queuedMs: 200, provisioningMs: 700, deprovisioningMs: 300 },
    }),
    appBundle('capi-packet-manager'),
  ]);
  api.addProject({ id: PROJECT, ipQuota: 8 });
  await kubectl(
    ['apply', '-f', '-'],
    [...infrastructureCrds(), ...bootstrapCrds()].map((c) => dumpYaml(c)).join('---\n'),
  );
  for (const c of infrastructureCrds()) {
    await kubectl(['wait', '--for=condition=Established', '--timeout=30s', `crd/${c.metadata.name}`]);
  }
  for (const ns of ['capi', 'paused', 'crash', 'bad', 'boot']) await kubectl(['create', 'namespace', ns]);
  // The chart's ServiceAccount and RBAC (its Deployment cannot run here: no node); the CRDs are
  // applied above from the same source as the chart's crds/.
  const installed = await cp.helm([
    'install',
    'capi-packet-manager',
    join(workspaceRoot(), 'charts/capi-packet-manager'),
    '-n',
    'capi-system',
    '--create-namespace',
    '--skip-crds',
    '--set',
    'credentials.apiKey=unused-here',
  ]);
  if (installed.exitCode !== 0) throw new Error(`helm install failed: ${installed.stderr}`);
  kubeconfig = await cp.serviceAccountKubeconfig('capi-system', 'capi-packet-manager');
}, 600_000);

afterAll(async () => {
  await Promise.all(managers.map((m) => m.stop()));
  await capi?.stop();
  await cp?.stop();
  await api?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('capi-packet-manager with Cluster API core', () => {
  beforeAll(async () => {
    await startManager('capi');
    await apply(clusterObjects('capi', 'c1', 1, 2));
  });

  it('1 control plane + 2 workers: endpoint, three devices, providerIDs, addresses, ready', async () => {
    const pcl = await eventually('PacketCluster ready with an endpoint', async () => {
      const p = await get('capi', 'packetcluster', 'c1');
      return p?.['status']?.ready === true && p['spec'].controlPlaneEndpoint?.host ? p : undefined;
    });
    expect(pcl['spec'].controlPlaneEndpoint.port).toBe(6443);
    expect(pcl['status'].initialization).toEqual({ provisioned: true });
    await eventually('Cluster infrastructure provisioned (CAPI core copied the endpoint)', async () => {
      const c = await get('capi', 'cluster', 'c1');
      return (
        c?.['status']?.initialization?.infrastructureProvisioned === true &&
        c['spec'].controlPlaneEndpoint?.host === pcl['spec'].controlPlaneEndpoint.host
      );
    });
    await eventually(
      'three PacketMachines ready',
      async () => (await readyMachines('capi', 'c1')).length === 3,
    );
    expect(devicesOf('c1')).toHaveLength(3);
    const machines = await eventually('CAPI Machines with providerIDs and addresses', async () => {
      const ms = await list('capi', 'machines', 'cluster.x-k8s.io/cluster-name=c1');
      return ms.length === 3 && ms.every((m) => m['spec'].providerID && m['status']?.addresses?.length)
        ? ms
        : undefined;
    });
    const ids = new Set(devicesOf('c1').map((d) => `equinixmetal://${d.id}`));
    for (const m of machines) {
      expect(ids.has(m['spec'].providerID)).toBe(true);
      expect(m['status'].addresses).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ type: 'ExternalIP' }),
          expect.objectContaining({ type: 'InternalIP' }),
        ]),
      );
    }
    // The elastic IP went to the control plane's device.
    const cpDevice = api.devices().find((d) => d.hostname === 'c1-cp-0');
    expect(cpDevice?.ip_addresses.some((a) => a.address === pcl['spec'].controlPlaneEndpoint.host)).toBe(
      true,
    );
  });

  it('ready machines cost no Metal API call', async () => {
    const before = api.calls.length;
    await new Promise((r) => setTimeout(r, 3000));
    expect(api.calls.slice(before)).toEqual([]);
  });

  it('scales workers 2 → 5 → 1', async () => {
    await kubectl(['scale', 'machinedeployment/c1-worker', '-n', 'capi', '--replicas=5']);
    await eventually(
      'six ready machines',
      async () => (await readyMachines('capi', 'c1')).length === 6,
      90_000,
    );
    expect(devicesOf('c1')).toHaveLength(6);
    await kubectl(['scale', 'machinedeployment/c1-worker', '-n', 'capi', '--replicas=1']);
    await eventually(
      'two machines and two devices left',
      async () =>
        (await list('capi', 'packetmachines')).length === 2 &&
        devicesOf('c1').filter((d) => d.state !== 'deprovisioning').length === 2,
      90_000,
    );
    const deletes = api.calls.filter((c) => c.method === 'DELETE' && c.path.startsWith('/devices/'));
    expect(deletes).toHaveLength(4);
    expect(deletes.every((c) => c.query['force_delete'] === 'true')).toBe(true);
  });

  it('deleting the cluster removes every device and finalizer', async () => {
    await kubectl(['delete', 'cluster', 'c1', '-n', 'capi', '--wait=false']);
    await eventually(
      'no Cluster, PacketCluster, PacketMachine or device left',
      async () =>
        (await list('capi', 'clusters')).length === 0 &&
        (await list('capi', 'packetclusters')).length === 0 &&
        (await list('capi', 'packetmachines')).length === 0 &&
        devicesOf('c1').length === 0,
      90_000,
    );
    // CAPEM keeps the elastic IP (eipReclaimPolicy Retain by default): so does this.
    expect(
      api.reservations().filter((r) => r.tags.includes('cluster-api-provider-packet:cluster-id:c1')),
    ).toHaveLength(1);
  });
});

describe('killed after every Metal API call', () => {
  it('leaks no device, duplicates none, reserves one elastic IP', async () => {
    await apply(clusterObjects('crash', 'k1', 1, 1));
    const allReady = async () =>
      (await readyMachines('crash', 'k1')).length === 2 &&
      (await get('crash', 'packetcluster', 'k1'))?.['status']?.ready === true;
    let kills = 0;
    // Every run is killed right after the first call no earlier run made (same method, path,
    // query and body), inside the fake's hook: the call took effect, the manager never sees the
    // answer and cannot send another. Re-reads after a restart repeat, so each run gets one step
    // further, and every distinct call of the provisioning — the reservation, each create, the
    // elastic IP's assignment — is followed by a crash.
    const signature = (c: (typeof api.calls)[number]) =>
      `${c.method} ${c.path} ${JSON.stringify(c.query)} ${JSON.stringify(c.body ?? null)}`;
    const made = new Set(api.calls.map(signature));
    const killedAfter: string[] = [];
    try {
      for (let round = 1; round <= 80; round++) {
        const m = await startManager('crash');
        let dying: Promise<void> | undefined;
        const killed = new Promise<void>((resolve) => {
          api.onCall(async (c) => {
            const sig = signature(c);
            if (made.has(sig) && !dying) return;
            made.add(sig);
            // A call already on its way (the manager works on several objects at once) took
            // effect too, and its answer is never seen either.
            killedAfter.push(`${c.method} ${c.path}`);
            if (dying) return dying;
            dying = m.kill();
            await dying;
            resolve();
          });
        });
        const outcome = await Promise.race([
          killed.then(() => 'killed' as const),
          eventually('all ready', async () => ((await allReady()) ? ('ready' as const) : undefined), 30_000),
        ]);
        api.onCall(undefined);
        if (outcome === 'ready') {
          await m.stop();
          break;
        }
        kills++;
      }
    } finally {
      api.onCall(undefined);
    }
    expect(await allReady()).toBe(true);
    // A crash came right after each call that changes something at the provider.
    const mutations = killedAfter.filter((c) => c.startsWith('POST') || c.startsWith('DELETE'));
    expect(mutations.map((c) => c.replace(/[0-9a-f-]{36}/g, '<id>')).sort()).toEqual([
      'POST /devices/<id>/ips',
      'POST /projects/<id>/devices',
      'POST /projects/<id>/devices',
      'POST /projects/<id>/ips',
    ]);
    expect(kills).toBeGreaterThanOrEqual(4);
    const devices = devicesOf('k1');
    expect(devices).toHaveLength(2);
    const hostnames = devices.map((d) => d.hostname).sort();
    expect(hostnames[0]).toBe('k1-cp-0');
    expect(hostnames[1]).toMatch(/^k1-worker-/);
    expect(
      api.reservations().filter((r) => r.tags.includes('cluster-api-provider-packet:cluster-id:k1')),
    ).toHaveLength(1);
    expect(
      api.devices().filter((d) => d.tags.includes('capp:cluster-id:k1') && d.state === 'deprovisioning'),
    ).toEqual([]);
  });
});

describe('PacketKubeadmConfig: the bootstrap provider in the same manager', () => {
  it('gives the control plane kubeadm init data and workers pinned joins; the CA stays in the management cluster', async () => {
    const BOOT = 'bootstrap.cluster.x-k8s.io';
    const objs = clusterObjects('boot', 'bs', 1, 2).filter((o) => o['kind'] !== 'Secret');
    for (const o of objs) {
      if (o['kind'] === 'Machine') {
        o['spec'].bootstrap = {
          configRef: { apiGroup: BOOT, kind: 'PacketKubeadmConfig', name: o['metadata'].name },
        };
      }
      if (o['kind'] === 'MachineDeployment') {
        o['spec'].template.spec.bootstrap = {
          configRef: { apiGroup: BOOT, kind: 'PacketKubeadmConfigTemplate', name: 'bs-worker' },
        };
      }
    }
    objs.push(
      {
        apiVersion: `${BOOT}/v1beta1`,
        kind: 'PacketKubeadmConfig',
        metadata: { name: 'bs-cp-0', namespace: 'boot' },
        spec: {},
      },
      {
        apiVersion: `${BOOT}/v1beta1`,
        kind: 'PacketKubeadmConfigTemplate',
        metadata: { name: 'bs-worker', namespace: 'boot' },
        spec: { template: { spec: { tokenTTL: '2h' } } },
      },
    );
    await startManager('boot');
    await apply(objs);
    await eventually(
      'three ready machines with bootstrap data',
      async () => (await readyMachines('boot', 'bs')).length === 3,
      90_000,
    );
    const configs = await list('boot', 'packetkubeadmconfigs');
    expect(configs).toHaveLength(3);
    for (const c of configs)
      expect(c['status']).toMatchObject({ ready: true, initialization: { dataSecretCreated: true } });
    const userdata = devicesOf('bs').map((d) => ({ host: d.hostname, data: d.userdata }));
    const init = userdata.filter((u) => u.data.includes('kubeadm init'));
    expect(init.map((u) => u.host)).toEqual(['bs-cp-0']);
    expect(userdata.filter((u) => u.data.includes('kind: JoinConfiguration'))).toHaveLength(2);
    // clusterctl get kubeconfig reads this Secret.
    const kc = await get('boot', 'secret', 'bs-kubeconfig');
    const endpoint = (await get('boot', 'packetcluster', 'bs'))?.['spec'].controlPlaneEndpoint;
    expect(Buffer.from(kc?.['data'].value, 'base64').toString()).toContain(`https://${endpoint.host}:6443`);
    // No CA private key on any device: the leak counter first catches one planted.
    const keys = await Promise.all(
      ['ca', 'etcd', 'proxy'].map(async (p) =>
        Buffer.from((await get('boot', 'secret', `bs-${p}`))?.['data']['tls.key'], 'base64').toString(),
      ),
    );
    const bodies = keys.map((k) => k.split('\n').filter((l) => l && !l.startsWith('-----'))[1]!);
    const leaks = (text: string) => bodies.filter((b) => text.includes(b)).length;
    expect(leaks(keys.join('\n'))).toBe(3);
    expect(userdata.map((u) => leaks(u.data))).toEqual([0, 0, 0]);
  });
});

describe('paused clusters', () => {
  it('are left alone until unpaused', async () => {
    const objs = clusterObjects('paused', 'p1', 1, 1);
    (objs[1] as Json)['spec'].paused = true;
    await startManager('paused');
    await apply(objs);
    await new Promise((r) => setTimeout(r, 4000));
    expect(
      api.calls.filter((c) => JSON.stringify([c.query, c.body ?? null]).includes('cluster-id:p1')),
    ).toEqual([]);
    expect(devicesOf('p1')).toHaveLength(0);
    const pcl = await get('paused', 'packetcluster', 'p1');
    expect(pcl?.['spec'].controlPlaneEndpoint).toBeUndefined();
    await kubectl([
      'patch',
      'cluster',
      'p1',
      '-n',
      'paused',
      '--type=merge',
      '-p',
      '{"spec":{"paused":false}}',
    ]);
    await eventually(
      'two ready machines after unpausing',
      async () => (await readyMachines('paused', 'p1')).length === 2,
    );
  });
});

describe('bad credentials', () => {
  it('give one clear condition and one log line', async () => {
    const m = await startManager('bad', 'not-the-token');
    await apply(clusterObjects('bad', 'b1', 1, 0));
    const pcl = await eventually('PacketCluster Ready=False CredentialsInvalid', async () => {
      const p = await get('bad', 'packetcluster', 'b1');
      const ready = p?.['status']?.conditions?.find((c: Json) => c.type === 'Ready');
      return ready?.reason === 'CredentialsInvalid' ? ready : undefined;
    });
    expect(pcl.status).toBe('False');
    expect(pcl.message).toMatch(/API key \(401\)/);
    const log = m.tail(200);
    expect(log.match(/refused the API key/g)).toHaveLength(1);
    expect(log).not.toContain('not-the-token');
  });
});

describe("the chart's RBAC", () => {
  it('was enough for every call the managers above made (no 403 from the API server in any log)', async () => {
    const logs = managers.map((m) => m.tail(100_000));
    // The check catches a real refusal first: the ServiceAccount may not read Nodes.
    const refused = await cp.kubectl(['get', 'nodes', `--kubeconfig=${kubeconfig}`]);
    expect(refused.exitCode).not.toBe(0);
    expect(/forbidden/i.test(refused.stderr)).toBe(true);
    expect(logs.length).toBeGreaterThan(5);
    expect(logs.filter((l) => /forbidden/i.test(l))).toEqual([]);
  });
});
