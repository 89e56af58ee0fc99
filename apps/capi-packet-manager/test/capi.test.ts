/**
 * capi-packet-manager (its shipped bundle) with the real Cluster API v1.11 core manager against the
 * test bed's API server, and the fake Metal API on loopback. The Machines carry their bootstrap data
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
      `--kubeconfig=${cp.kubeconfigPath}`,
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
  for (const ns of ['capi', 'paused', 'crash', 'bad']) await kubectl(['create', 'namespace', ns]);
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
    // query and body): re-reads after a restart repeat, so each run gets one step further, and
    // every distinct call of the whole provisioning — the reservation, each create, the elastic
    // IP's assignment — is followed by a crash before the next call can go out.
    const signature = (c: (typeof api.calls)[number]) =>
      `${c.method} ${c.path} ${JSON.stringify(c.query)} ${JSON.stringify(c.body ?? null)}`;
    const made = new Set(api.calls.map(signature));
    const killedAfter: string[] = [];
    for (let round = 1; round <= 80; round++) {
      let next = api.calls.length;
      const m = await startManager('crash');
      const deadline = Date.now() + 30_000;
      let checked = Date.now();
      let ready = false;
      let fresh = false;
      // The fake records a call as it answers it; polling every 2 ms kills the manager before it
      // can send another (a next call waits at least for this answer to arrive).
      while (!fresh && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2));
        for (; next < api.calls.length; next++) {
          const sig = signature(api.calls[next]!);
          if (!made.has(sig)) {
            fresh = true;
            killedAfter.push(`${api.calls[next]!.method} ${api.calls[next]!.path}`);
          }
          made.add(sig);
        }
        if (!fresh && Date.now() - checked > 1000) {
          checked = Date.now();
          ready = await allReady();
          if (ready) break;
        }
      }
      if (!fresh) {
        if (!ready) {
          const state = JSON.stringify({
            kills,
            pcl: (await get('crash', 'packetcluster', 'k1'))?.['status'],
            pms: (await list('crash', 'packetmachines')).map((x) => [x['metadata'], x['spec'], x['status']]),
          });
          throw new Error(`no new Metal API call for 30 s and not ready: ${state}\n${m.tail(40)}`);
        }
        await m.stop();
        break;
      }
      await m.kill();
      kills++;
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
    expect(kills).toBe(killedAfter.length);
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

describe('paused clusters', () => {
  it('are left alone until unpaused', async () => {
    const objs = clusterObjects('paused', 'p1', 1, 1);
    (objs[1] as Json)['spec'].paused = true;
    await startManager('paused');
    await apply(objs);
    await new Promise((r) => setTimeout(r, 4000));
    expect(
      api.calls.filter(
        (c) => c.path.startsWith(`/projects/${PROJECT}`) && JSON.stringify(c.body ?? '').includes('p1'),
      ),
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
