/**
 * capi-packet-manager (its shipped bundle, with the chart's ServiceAccount and RBAC) with the real
 * Cluster API v1.11 core manager against the test bed's API server, and the fake Metal API on
 * loopback. The Machines carry their bootstrap data Secret directly (no bootstrap provider, except
 * in the PacketKubeadmConfig test: CABPK would need the workload cluster to be up); nothing has
 * the workload cluster's kubeconfig, so CAPI never dials the endpoint. Last, the manager's
 * metrics port against hostile clients.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapCrds, infrastructureCrds } from '@knet/capi';
import {
  CapiCore,
  ControlPlane,
  FakeMetalApi,
  ManagedProcess,
  ReopeningPool,
  appBundle,
  capiClusterObjects,
  capiPacketManagerCommand,
  freePort,
  gcAndMeasure,
  sleep,
  until,
  workspaceRoot,
  type KubeJson as Json,
} from '@knet/testing';

jest.setTimeout(120_000);

const TOKEN = 'capi-test-token-0123456789';
const PROJECT = '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b';

let cp: ControlPlane;
let capi: CapiCore;
let api: FakeMetalApi;
let dir: string;
/** The chart's ServiceAccount: the manager runs with exactly the chart's RBAC. */
let kubeconfig: string;
type Manager = ManagedProcess & { metricsPort: number };
const managers: Manager[] = [];

const kubectl = (args: string[], input?: string) => cp.kubectlOk(args, input === undefined ? {} : { input });
const apply = (objs: Json[]) => cp.apply(objs);
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

async function startManager(
  namespace: string,
  o: { token?: string; nodeFlags?: string[] } = {},
): Promise<Manager> {
  const port = await freePort();
  const { cmd, args, env } = await capiPacketManagerCommand({
    kubeconfig,
    namespace,
    metalApiUrl: api.url,
    token: o.token ?? TOKEN,
    metricsPort: port,
    flags: ['--device-poll-interval=300ms', '--sync-period=10m', '--log-level=debug'],
    nodeFlags: o.nodeFlags ?? [],
  });
  const m = ManagedProcess.start(
    `capi-packet-manager-${managers.length}`,
    cmd,
    args,
    join(dir, `manager-${managers.length}.log`),
    env,
  );
  const manager = Object.assign(m, { metricsPort: port });
  managers.push(manager);
  return manager;
}

/** A Cluster, its PacketCluster, `cps` control-plane Machines and a MachineDeployment of `workers`. */
const clusterObjects = (ns: string, name: string, cps: number, workers: number, paused = false) =>
  capiClusterObjects({ namespace: ns, name, projectId: PROJECT, controlPlanes: cps, workers, paused });

async function readyMachines(ns: string, cluster: string): Promise<Json[]> {
  return (await list(ns, 'packetmachines', `cluster.x-k8s.io/cluster-name=${cluster}`)).filter(
    (m) => m['status']?.ready === true,
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'knet-capi-'));
  cp = await ControlPlane.start({ controllerManager: true });
  [capi, api] = await Promise.all([
    CapiCore.start(cp),
    FakeMetalApi.start({
      tokens: [TOKEN],
      durations: { queuedMs: 200, provisioningMs: 700, deprovisioningMs: 300 },
    }),
    appBundle('capi-packet-manager'), // built meanwhile, for every manager below
  ]);
  api.addProject({ id: PROJECT, ipQuota: 8 });
  await cp.apply([...infrastructureCrds(), ...bootstrapCrds()]);
  for (const c of infrastructureCrds()) {
    await kubectl(['wait', '--for=condition=Established', '--timeout=30s', `crd/${c.metadata.name}`]);
  }
  for (const ns of ['capi', 'paused', 'crash', 'bad', 'boot', 'calm', 'storm', 'failing', 'hostile'])
    await kubectl(['create', 'namespace', ns]);
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
    const objs = clusterObjects('paused', 'p1', 1, 1, true);
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

/** All calls a cluster's provisioning made, from applying its objects to every object ready. */
async function provision(ns: string, name: string): Promise<{ calls: typeof api.calls; log: string }> {
  const before = api.calls.length;
  const m = await startManager(ns);
  await apply(clusterObjects(ns, name, 1, 1));
  await eventually(
    `${ns}/${name}: the PacketCluster and both PacketMachines ready`,
    async () =>
      (await readyMachines(ns, name)).length === 2 &&
      (await get(ns, 'packetcluster', name))?.['status']?.ready === true,
    90_000,
  );
  await m.stop();
  return { calls: api.calls.slice(before), log: readFileSync(m.logFile, 'utf8') };
}

describe('a 503 storm', () => {
  it('ends ready with one extra call per refusal, none sooner than Retry-After, and no create made twice', async () => {
    // Only the manager under test talks to the fake from here (ready machines cost no call, but a
    // manager with bad credentials would keep trying).
    await Promise.all(managers.map((m) => m.stop()));
    const calm = await provision('calm', 'q1');
    // Two refusals for the device creates, two for the device listings, eight for whatever comes
    // (the elastic IP's lookups, first of all).
    const STORM = 12;
    const busy = { status: 503, headers: { 'Retry-After': '1' } } as const;
    const devices = /^\/projects\/[^/]+\/devices$/;
    const faults = [
      api.inject({ ...busy, method: 'POST', path: devices, times: 2 }),
      api.inject({ ...busy, method: 'GET', path: devices, times: 2 }),
      api.inject({ ...busy, times: 8 }),
    ];
    const storm = await provision('storm', 's1');
    expect(faults.map((f) => f.hits)).toEqual([2, 2, 8]);
    const refused = storm.calls.filter((c) => c.fault);
    const answered = storm.calls.filter((c) => !c.fault);
    expect(refused).toHaveLength(STORM);
    expect(refused.every((c) => c.status === 503)).toBe(true);
    // No call came sooner than the server asked (Retry-After: 1): the client waits it out (up to
    // 4 attempts, the debug log says each wait), then the reconciler's requeue honours it too.
    const retries = storm.log
      .split('\n')
      .filter((l) => l.includes('Metal API call failed: retrying'))
      .map((l) => JSON.parse(l) as { status: number; waitMs: number; kind: string });
    expect(retries.length).toBeGreaterThanOrEqual(STORM / 2);
    expect(retries.every((r) => r.status === 503 && r.kind === 'transient' && r.waitMs === 1000)).toBe(true);
    const signature = (c: (typeof storm.calls)[number]) =>
      `${c.method} ${c.path} ${JSON.stringify(c.query)} ${JSON.stringify(c.body ?? null)}`;
    const tooSoon = refused.flatMap((r) =>
      storm.calls
        .filter((c) => c.at > r.at && c.at - r.at < 950 && signature(c) === signature(r))
        .map((c) => `${c.method} ${c.path} ${c.at - r.at} ms after a 503`),
    );
    expect(tooSoon).toEqual([]);
    // The storm's cost is its refusals: apart from them, the same calls as the calm run. Device
    // listings while a device provisions follow the clock, so their number may differ by a few.
    const mutations = (calls: typeof storm.calls) =>
      calls
        .filter((c) => c.method !== 'GET')
        .map((c) => `${c.method} ${c.path.replace(/[0-9a-f-]{36}/g, '<id>')}`)
        .sort();
    expect(mutations(answered)).toEqual(mutations(calm.calls));
    expect(answered.length).toBeLessThanOrEqual(calm.calls.length + 4);
    expect(devicesOf('s1')).toHaveLength(2);
    expect(
      api.reservations().filter((r) => r.tags.includes('cluster-api-provider-packet:cluster-id:s1')),
    ).toHaveLength(1);
  });
});

describe('a device that fails provisioning', () => {
  it('gives a clear condition and an Event, costs no further call, and is replaced once its Machine goes', async () => {
    const stopFailing = api.failDevicesWhere((r) => String(r.body['hostname']).startsWith('f1-worker-'));
    try {
      await startManager('failing');
      await apply(clusterObjects('failing', 'f1', 1, 1));
      const failed = await eventually('the worker PacketMachine failed', async () =>
        (await list('failing', 'packetmachines')).find((p) => p['status']?.failureReason),
      );
      stopFailing();
      const name: string = failed['metadata'].name;
      expect(name).toMatch(/^f1-worker-/);
      expect(failed['status']).toMatchObject({
        ready: false,
        failureReason: 'InstanceProvisionFailed',
        failureMessage: expect.stringMatching(/provisioning failed|is failed/),
      });
      expect(failed['status'].conditions.find((c: Json) => c.type === 'Ready')).toMatchObject({
        status: 'False',
        reason: 'InstanceProvisionFailed',
        severity: 'Error',
      });
      const events = JSON.parse(
        await kubectl([
          'get',
          'events',
          '-n',
          'failing',
          '-o',
          'json',
          `--field-selector=involvedObject.name=${name},involvedObject.kind=PacketMachine`,
        ]),
      ) as { items: Json[] };
      expect(events.items.filter((e) => e['type'] === 'Warning').map((e) => e['reason'])).toContain(
        'InstanceProvisionFailed',
      );
      // A failed machine stays failed (as CAPEM's): no call for it until someone acts.
      const id = String(failed['spec'].providerID ?? '').replace('equinixmetal://', '');
      expect(id).not.toBe('');
      const before = api.calls.length;
      await sleep(3000);
      expect(api.calls.slice(before).filter((c) => c.path.includes(id))).toEqual([]);
      // What a MachineHealthCheck (or a user) does: delete the Machine; its MachineSet makes another.
      const owner = (failed['metadata'].ownerReferences as Json[]).find((o) => o['kind'] === 'Machine');
      await kubectl(['delete', 'machine', owner?.['name'], '-n', 'failing', '--wait=false']);
      await eventually(
        'the failed PacketMachine gone and a new worker ready',
        async () => {
          const pms = await list('failing', 'packetmachines');
          return (
            pms.length === 2 &&
            !pms.some((p) => p['metadata'].name === name) &&
            (await readyMachines('failing', 'f1')).length === 2
          );
        },
        90_000,
      );
      // The API refuses everything about a failed device (403), its deletion included: the
      // finalizer did not wait for it.
      expect(
        devicesOf('f1')
          .map((d) => d.state)
          .sort(),
      ).toEqual(['active', 'active', 'failed']);
    } finally {
      stopFailing();
    }
  });
});

describe('bad credentials', () => {
  it('give one clear condition and one log line', async () => {
    const m = await startManager('bad', { token: 'not-the-token' });
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

describe("the manager's metrics port against hostile clients", () => {
  // The runtime's defaults: a request head within 10 s (checked every second), a whole request
  // within 30 s, heads up to 16 KiB; and the manager's cap of 64 connections.
  const HEAD_MS = 10_000;
  const REQUEST_MS = 30_000;
  const CAP = 64;
  type Kind = 'idle' | 'slow-head' | 'truncated-body' | 'oversized-head';
  const KINDS: Kind[] = ['idle', 'slow-head', 'truncated-body', 'oversized-head'];
  const deadline: Record<Kind, number> = {
    idle: HEAD_MS,
    'slow-head': HEAD_MS,
    'truncated-body': REQUEST_MS,
    'oversized-head': 0,
  };
  /** What each kind sends; none of them closes its side. */
  function behave(s: Socket, kind: Kind): void {
    s.resume(); // reads (and drops) what the server answers, so its close is seen
    switch (kind) {
      case 'idle':
        return;
      case 'slow-head': {
        s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        const timer = setInterval(() => (s.destroyed ? clearInterval(timer) : s.write('a')), 100);
        return;
      }
      case 'truncated-body':
        s.write('POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial');
        return;
      case 'oversized-head':
        s.write(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(64 * 1024)}\r\n\r\n`);
        return;
    }
  }
  /** The manager's sockets on the port that are not closed yet (LISTEN and TIME_WAIT aside). */
  const serverSockets = (port: number) =>
    readFileSync('/proc/net/tcp', 'utf8')
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length > 3 && parseInt(f[1]?.split(':')[1] ?? '', 16) === port)
      .filter((f) => f[3] !== '0A' && f[3] !== '06').length;
  const status = async (port: number, path: string) =>
    (await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined))?.status;

  let m: Manager;
  let inspectPort: number;
  beforeAll(async () => {
    inspectPort = await freePort();
    m = await startManager('hostile', { nodeFlags: [`--inspect=127.0.0.1:${inspectPort}`] });
    await eventually('the manager is ready', async () => (await status(m.metricsPort, '/readyz')) === 200);
  });
  afterAll(() => m?.stop());

  it('closes idle, slow, truncated and oversized clients within their deadlines, holds bounded memory, and still answers probes', async () => {
    for (let k = 0; k < 20; k++) expect(await status(m.metricsPort, '/metrics')).toBe(200);
    const before = await gcAndMeasure(inspectPort);
    const pool = new ReopeningPool({ port: m.metricsPort, size: 40, kinds: KINDS, behave });
    try {
      await sleep(REQUEST_MS + 4000);
      // Probes and scrapes still answered while strangers keep coming.
      for (const path of ['/healthz', '/readyz', '/metrics'])
        expect(await status(m.metricsPort, path)).toBe(200);
      const after = await gcAndMeasure(inspectPort);
      expect(pool.open).toBeGreaterThan(20);
      // Bounded: what the manager retains after a GC barely moves, and its RSS grows by buffers
      // in flight at most.
      expect(after.heapUsed + after.external - (before.heapUsed + before.external)).toBeLessThan(10);
      expect(after.rss - before.rss).toBeLessThan(32);
      for (const kind of KINDS) {
        const times = pool.closed.filter((x) => x.kind === kind).map((x) => x.afterMs);
        // Each closed by the server, within its deadline plus the check's second and some slack.
        expect({
          kind,
          seen: times.length > 0,
          late: times.filter((t) => t > deadline[kind] + 2500),
        }).toEqual({
          kind,
          seen: true,
          late: [],
        });
        // …and not before it (an idle or slow client gets its whole deadline).
        if (kind === 'idle' || kind === 'slow-head')
          expect(Math.min(...times)).toBeGreaterThanOrEqual(deadline[kind] - 1000);
      }
    } finally {
      pool.stop();
    }
    await until(
      'no socket of the manager left open on the port',
      async () => serverSockets(m.metricsPort) === 0,
      10_000,
    );
  }, 120_000);

  it(`refuses connections past ${CAP} at accept, and serves again once they go`, async () => {
    // The check first sees open connections.
    const sockets: Socket[] = [];
    let closedByServer = 0;
    for (let k = 0; k < CAP + 40; k++) {
      const s = netConnect(m.metricsPort, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('close', () => closedByServer++);
      sockets.push(s);
    }
    await until(
      'every connection accepted or refused',
      async () => sockets.every((s) => !s.connecting),
      10_000,
    );
    // (A keep-alive connection of this test's own fetch may hold a slot too.)
    await until('the 40 past the cap closed by the manager', async () => closedByServer >= 40, 10_000);
    await sleep(500);
    const open = sockets.filter((s) => !s.destroyed && !s.readableEnded).length;
    expect(open + closedByServer).toBe(CAP + 40);
    expect(open).toBeGreaterThanOrEqual(CAP - 2);
    expect(open).toBeLessThanOrEqual(CAP);
    expect(await status(m.metricsPort, '/healthz')).toBeUndefined();
    for (const s of sockets) s.destroy();
    await until(
      'a probe answered again',
      async () => (await status(m.metricsPort, '/healthz')) === 200,
      10_000,
    );
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
