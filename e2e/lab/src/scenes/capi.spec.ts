/**
 * The capi scene's views (`@knet/testing`'s capi-lab.ts): a Machine or cluster row compares what
 * the API objects say with what the fake Metal API holds, and names the first disagreement in one
 * line. The devices and the elastic IP here are real answers of FakeMetalApi on loopback (created
 * over HTTP, moved on by its clock), the objects what kubectl prints for CAPI v1.11 and the
 * provider; the bootstrap rewrite runs on @knet/capi's own `packet-bootstrap` manifests, and the
 * SSH key line is read by the real ssh-keygen.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { eipTag } from '@knet/capi';
import {
  FakeMetalApi,
  capiBootstrapProblem,
  capiBootstrapView,
  capiClusterProblem,
  capiClusterView,
  capiMachineProblem,
  capiMachineViews,
  formatCapiMachine,
  metalRequestsCounted,
  sshPublicKeyLine,
  type CapiBootstrapView,
  type CapiMachineView,
  type CapiObject,
  type CapiObjects,
  type MetalDevice,
} from '@knet/testing';

const TOKEN = 'capi-lab-spec-token';
const CLUSTER = 'lab';

let api: FakeMetalApi;
let project: string;
let cpDevice: MetalDevice;
let workerDevice: MetalDevice;
let endpoint: string;

async function call(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`${api.url}${path}`, {
    method,
    headers: { 'X-Auth-Token': TOKEN, 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as Record<string, unknown>;
}

const createDevice = async (hostname: string) =>
  (
    await call('POST', `/projects/${project}/devices`, {
      hostname,
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_24_04',
      metro: 'da',
      tags: [`capp:cluster-id:${CLUSTER}`],
      userdata: userdata(hostname),
    })
  )['id'] as string;

/** The bootstrap data of a Machine, as its Secret holds it and its device was created with. */
const userdata = (machine: string) => `#cloud-config\nhostname: ${machine}\n`;

const deviceById = (id: string) => api.devices().find((d) => d.id === id) as MetalDevice;

beforeAll(async () => {
  api = await FakeMetalApi.start({
    tokens: [TOKEN],
    durations: { queuedMs: 1000, provisioningMs: 1000, deprovisioningMs: 1000 },
  });
  project = api.addProject();
  const [cpId, workerId] = [await createDevice('lab-cp-0'), await createDevice('lab-worker-0')];
  api.advance(5000);
  const eip = await call('POST', `/projects/${project}/ips`, {
    type: 'public_ipv4',
    metro: 'da',
    quantity: 1,
    tags: [eipTag(CLUSTER)],
  });
  endpoint = eip['address'] as string;
  await call('POST', `/devices/${cpId}/ips`, { address: endpoint });
  cpDevice = deviceById(cpId as string);
  workerDevice = deviceById(workerId as string);
});

afterAll(() => api?.close());

/** A Machine and its PacketMachine as kubectl prints them once the device is active. */
function machinePair(name: string, device: MetalDevice, controlPlane: boolean): CapiObject[] {
  const labels = {
    'cluster.x-k8s.io/cluster-name': CLUSTER,
    ...(controlPlane ? { 'cluster.x-k8s.io/control-plane': '' } : {}),
  };
  const addresses = [
    { type: 'Hostname', address: device.hostname },
    ...device.ip_addresses.map((a) => ({ type: a.public ? 'ExternalIP' : 'InternalIP', address: a.address })),
  ];
  const providerID = `equinixmetal://${device.id}`;
  return [
    {
      kind: 'Machine',
      metadata: { name, labels },
      spec: {
        clusterName: CLUSTER,
        providerID,
        bootstrap: { dataSecretName: name },
        infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'PacketMachine', name },
      },
      status: { phase: 'Provisioned', addresses },
    },
    {
      kind: 'PacketMachine',
      metadata: { name, labels },
      spec: { providerID },
      status: {
        ready: true,
        instanceStatus: device.state,
        addresses,
        conditions: [
          { type: 'InstanceReady', status: 'True', reason: 'Ready', message: '' },
          { type: 'Ready', status: 'True', reason: 'Ready', message: '' },
        ],
      },
    },
  ];
}

function objects(): CapiObjects {
  const [m0, pm0] = machinePair('lab-cp-0', cpDevice, true);
  const [m1, pm1] = machinePair('lab-worker-0', workerDevice, false);
  const other = machinePair('other-cp-0', workerDevice, true)[0] as CapiObject;
  (other.metadata.labels as Record<string, string>)['cluster.x-k8s.io/cluster-name'] = 'other';
  return {
    clusters: [
      {
        kind: 'Cluster',
        metadata: { name: CLUSTER },
        spec: { controlPlaneEndpoint: { host: endpoint, port: 6443 } },
        status: { initialization: { infrastructureProvisioned: true } },
      },
    ],
    packetClusters: [
      {
        kind: 'PacketCluster',
        metadata: { name: CLUSTER },
        spec: { controlPlaneEndpoint: { host: endpoint, port: 6443 } },
        status: { ready: true },
      },
    ],
    machines: [m1, other, m0] as CapiObject[],
    packetMachines: [pm0, pm1] as CapiObject[],
    packetKubeadmConfigs: [],
    secrets: [cpDevice, workerDevice].map((d) => ({
      kind: 'Secret',
      metadata: { name: d.hostname },
      data: { value: Buffer.from(userdata(d.hostname)).toString('base64'), format: 'Y2xvdWQtY29uZmln' },
    })),
  };
}

const views = (o = objects()) => capiMachineViews(o, CLUSTER, api.devices());

describe('capiMachineViews', () => {
  it("shows the cluster's Machines by name, each with its PacketMachine and the device the fake holds", () => {
    const [cp, worker, ...rest] = views();
    expect(rest).toEqual([]);
    expect(cp).toMatchObject({
      name: 'lab-cp-0',
      role: 'control plane',
      phase: 'Provisioned',
      providerID: `equinixmetal://${cpDevice.id}`,
      packetMachine: {
        name: 'lab-cp-0',
        ready: true,
        instanceStatus: 'active',
        condition: { reason: 'Ready' },
      },
      device: { id: cpDevice.id, shortId: cpDevice.short_id, state: 'active', hostname: 'lab-cp-0' },
      dataSecretName: 'lab-cp-0',
      userdataIsBootstrapData: true,
      deleting: false,
    });
    // The fake's public v4, private v4 and v6 addresses, and the elastic IP on the control plane.
    expect(cp?.device?.addresses).toHaveLength(4);
    expect(cp?.addresses.sort()).toEqual([...(cp?.device?.addresses ?? [])].sort());
    expect(cp?.addresses).toContain(endpoint);
    expect(worker).toMatchObject({ name: 'lab-worker-0', role: 'worker' });
    expect(worker?.device?.addresses).toHaveLength(3);
  });

  it("finds the device by the PacketMachine's providerID before CAPI copied it to the Machine", () => {
    const o = objects();
    delete (o.machines.find((m) => m.metadata.name === 'lab-worker-0')?.spec as Record<string, unknown>)[
      'providerID'
    ];
    const worker = views(o).find((m) => m.name === 'lab-worker-0');
    expect(worker?.providerID).toBe('');
    expect(worker?.device?.id).toBe(workerDevice.id);
  });
  it("compares the device's userdata with the Machine's bootstrap data Secret", () => {
    const o = objects();
    const secret = o.secrets.find((x) => x.metadata.name === 'lab-worker-0') as CapiObject;
    secret.data = { value: Buffer.from(userdata('someone-else')).toString('base64') };
    expect(views(o).map((m) => [m.name, m.userdataIsBootstrapData])).toEqual([
      ['lab-cp-0', true],
      ['lab-worker-0', false],
    ]);
    o.secrets = [];
    expect(views(o).map((m) => m.userdataIsBootstrapData)).toEqual([undefined, undefined]);
  });
});

describe('capiMachineProblem', () => {
  const cp = () => views()[0] as CapiMachineView;
  const pm = (v: CapiMachineView) => v.packetMachine as NonNullable<CapiMachineView['packetMachine']>;

  it('has none for a provisioned Machine whose device is active and whose addresses are its', () => {
    expect(views().map(capiMachineProblem)).toEqual([undefined, undefined]);
  });

  it.each<[string, (v: CapiMachineView) => void, string]>([
    ['being deleted', (v) => (v.deleting = true), 'lab-cp-0 is being deleted'],
    ['no PacketMachine', (v) => delete v.packetMachine, 'lab-cp-0 has no PacketMachine yet'],
    [
      'a failed PacketMachine',
      (v) => {
        pm(v).failureReason = 'InstanceProvisionFailed';
        pm(v).condition = {
          type: 'Ready',
          status: 'False',
          reason: 'InstanceProvisionFailed',
          message: 'device x is failed',
        };
      },
      'lab-cp-0 failed: InstanceProvisionFailed: device x is failed',
    ],
    [
      'no device yet',
      (v) => {
        delete v.device;
        v.providerID = '';
        pm(v).condition = { type: 'Ready', status: 'False', reason: 'WaitingForBootstrapData', message: '' };
      },
      'lab-cp-0 has no device yet (WaitingForBootstrapData)',
    ],
    [
      'a providerID naming no device',
      (v) => delete v.device,
      `lab-cp-0's providerID equinixmetal://<id> names no device of the Metal API`,
    ],
    [
      'a device still provisioning',
      (v) => ((v.device as { state: string }).state = 'provisioning'),
      "lab-cp-0's device <short> is provisioning",
    ],
    [
      'a PacketMachine behind its device',
      (v) => (pm(v).instanceStatus = 'provisioning'),
      'lab-cp-0: the PacketMachine says provisioning, the device is active',
    ],
    [
      'a PacketMachine not ready',
      (v) => (pm(v).ready = false),
      'lab-cp-0: the PacketMachine is not ready (Ready)',
    ],
    [
      'a Ready condition not True',
      (v) =>
        (pm(v).condition = { type: 'Ready', status: 'False', reason: 'Deleting', message: 'on its way out' }),
      'lab-cp-0: Ready=False (Deleting: on its way out)',
    ],
    [
      'no providerID on the Machine yet',
      (v) => (v.providerID = ''),
      'lab-cp-0: CAPI has not copied the providerID to the Machine yet',
    ],
    [
      'a Machine still provisioning',
      (v) => (v.phase = 'Provisioning'),
      'lab-cp-0: Machine phase Provisioning',
    ],
    [
      'addresses not the device’s',
      (v) => (v.addresses = v.addresses.filter((a) => a !== endpoint)),
      "lab-cp-0's addresses <without the EIP> are not its device's <all>",
    ],
    ['no bootstrap data Secret', (v) => (v.dataSecretName = ''), 'lab-cp-0 has no bootstrap data Secret'],
    [
      'a bootstrap data Secret that is gone',
      (v) => delete v.userdataIsBootstrapData,
      "lab-cp-0's bootstrap data Secret lab-cp-0 is gone",
    ],
    [
      'userdata that is not the bootstrap data',
      (v) => (v.userdataIsBootstrapData = false),
      "lab-cp-0's device userdata is not its bootstrap data (Secret lab-cp-0)",
    ],
  ])('names %s', (_, change, expected) => {
    const v = cp();
    const all = [...(v.device?.addresses ?? [])].sort();
    change(v);
    expect(capiMachineProblem(v)).toBe(
      expected
        .replace('<id>', cpDevice.id)
        .replace('<short>', cpDevice.short_id)
        .replace('<without the EIP>', all.filter((a) => a !== endpoint).join(', '))
        .replace('<all>', all.join(', ')),
    );
  });
});

describe('formatCapiMachine', () => {
  it('fits a table row: role, phase, PacketMachine and device state, providerID, IPv4 (+EIP, +v6), reason', () => {
    const [cp, worker] = views();
    const v4 = (d: MetalDevice) =>
      d.ip_addresses.filter((a) => a.address_family === 4 && a.address !== endpoint).map((a) => a.address);
    expect(formatCapiMachine(cp as CapiMachineView, endpoint)).toBe(
      `cp Provisioned · pm active · dev active · providerID→${cpDevice.short_id} · ${v4(cpDevice).join(' ')} +EIP +v6 · Ready`,
    );
    expect(formatCapiMachine(worker as CapiMachineView, endpoint)).toBe(
      `worker Provisioned · pm active · dev active · providerID→${workerDevice.short_id} · ${v4(workerDevice).join(' ')} +v6 · Ready`,
    );
    // Within the live table's result column at 150 columns (150 - 29 for the name - 19 for ` · 136 ms · 3 s ago`).
    expect(formatCapiMachine(cp as CapiMachineView, endpoint).length).toBeLessThanOrEqual(102);
    expect(formatCapiMachine({ ...(cp as CapiMachineView), providerID: '' }, endpoint)).toContain(
      `dev active · no providerID (${cpDevice.short_id})`,
    );
  });
});

describe('capiClusterView and capiClusterProblem', () => {
  const view = (o = objects()) =>
    capiClusterView(o, CLUSTER, eipTag(CLUSTER), api.devices(), api.reservations());

  it('shows the endpoint, where the fake has its address, and CAPI’s copy', () => {
    const v = view();
    expect(v).toEqual({
      name: CLUSTER,
      endpoint: `${endpoint}:6443`,
      clusterEndpoint: `${endpoint}:6443`,
      packetClusterReady: true,
      infrastructureProvisioned: true,
      reservations: [{ id: expect.any(String), address: endpoint }],
      endpointOn: ['lab-cp-0'],
    });
    expect(capiClusterProblem(v, 'lab-cp-0')).toBeUndefined();
  });

  it.each<[string, (o: CapiObjects) => void, string, string?]>([
    [
      'no endpoint yet',
      (o) => delete (o.packetClusters[0] as CapiObject).spec?.['controlPlaneEndpoint'],
      'PacketCluster lab has no control-plane endpoint yet',
    ],
    [
      'a PacketCluster not ready',
      (o) => ((o.packetClusters[0] as CapiObject).status = {}),
      'PacketCluster lab is not ready',
    ],
    [
      'an endpoint CAPI has not copied',
      (o) => delete (o.clusters[0] as CapiObject).spec?.['controlPlaneEndpoint'],
      "Cluster lab's endpoint is unset",
    ],
    [
      'an endpoint CAPI copied wrong',
      (o) =>
        ((o.clusters[0] as CapiObject).spec = { controlPlaneEndpoint: { host: '192.0.2.9', port: 6443 } }),
      "Cluster lab's endpoint 192.0.2.9:6443 is not the PacketCluster's <endpoint>:6443",
    ],
    [
      'infrastructure not provisioned',
      (o) => ((o.clusters[0] as CapiObject).status = {}),
      'Cluster lab: infrastructure not provisioned',
    ],
    [
      'the elastic IP on another device',
      () => undefined,
      'the elastic IP <endpoint> is on lab-cp-0, not lab-worker-0',
      'lab-worker-0',
    ],
  ])('names %s', (_, change, expected, controlPlane = 'lab-cp-0') => {
    const o = objects();
    change(o);
    expect(capiClusterProblem(view(o), controlPlane)).toBe(expected.replaceAll('<endpoint>', endpoint));
  });

  it('names an endpoint that is not the tagged reservation’s address, and a second reservation', () => {
    const v = view();
    expect(
      capiClusterProblem({ ...v, reservations: [{ id: 'r', address: '198.51.100.77' }] }, 'lab-cp-0'),
    ).toBe(`the endpoint ${endpoint} is not the tagged reservation's 198.51.100.77`);
    expect(
      capiClusterProblem({ ...v, reservations: [...v.reservations, ...v.reservations] }, 'lab-cp-0'),
    ).toBe('2 elastic IP reservations are tagged for lab, not 1');
  });
});

describe('metalRequestsCounted', () => {
  it("sums the manager's request counter over its labels", () => {
    const text = [
      '# HELP capi_packet_metal_api_requests_total Metal API requests',
      '# TYPE capi_packet_metal_api_requests_total counter',
      'capi_packet_metal_api_requests_total{operation="createDevice",status="201"} 3',
      'capi_packet_metal_api_requests_total{operation="listDevices",status="200"} 11',
      'capi_packet_metal_api_requests_total{operation="getDevice",status="none"} 1',
      'capi_packet_reconcile_duration_seconds_count{kind="PacketMachine",outcome="ok"} 40',
    ].join('\n');
    expect(metalRequestsCounted(text)).toBe(15);
  });

  it('refuses a metrics page without the counter (another app on the port, or no request yet)', () => {
    expect(() => metalRequestsCounted('process_cpu_seconds_total 1\n')).toThrow(
      'no capi_packet_metal_api_requests_total in the manager metrics',
    );
  });
});

describe('capiBootstrapView and capiBootstrapProblem', () => {
  const PIN = 'sha256:5f0c6fd2a1b4e8c3d7a9b0e1f2c3d4e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1';
  const b64 = (t: string) => Buffer.from(t).toString('base64');
  const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
    type: 'pkcs1',
    format: 'pem',
  }) as string;
  const saKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'sec1',
    format: 'pem',
  }) as string;
  /** A line both the sa Secret's value and every userdata hold: not part of a key, never a leak. */
  const SHARED = 'apt-get install -y kubelet="$PACKAGE" kubeadm="$PACKAGE" kubectl="$PACKAGE"';
  const caCert =
    '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGVzIGFyZSBwdWJsaWMgYW5kIG1heSBnbw==\n-----END CERTIFICATE-----\n';
  /** `text` as the content of a cloud-init write_files entry (a YAML block, indented). */
  const file = (path: string, text: string) =>
    `- path: ${path}\n  content: |\n${text
      .trim()
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')}\n`;
  const init = [
    '#cloud-config\nwrite_files:\n',
    file('/etc/kubernetes/pki/ca.crt', caCert),
    file('/etc/kubernetes/pki/sa.key', saKey),
    file('/run/kubeadm/kubeadm.yaml', 'apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration'),
    `runcmd:\n- ${SHARED}\n`,
  ].join('');
  const join = (pin = PIN, skip = false) =>
    [
      '#cloud-config\nwrite_files:\n',
      file(
        '/run/kubeadm/kubeadm.yaml',
        `kind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    caCertHashes:\n    - ${pin}\n${skip ? '    unsafeSkipCAVerification: true\n' : ''}`,
      ),
      `runcmd:\n- ${SHARED}\n`,
    ].join('');

  function setting(o: {
    cp?: string;
    worker?: string;
    configs?: boolean[];
    server?: string;
    keys?: boolean;
  }) {
    const objs = objects();
    const labels = { 'cluster.x-k8s.io/cluster-name': CLUSTER };
    objs.packetKubeadmConfigs = (o.configs ?? [true, true]).map((ready, n) => ({
      kind: 'PacketKubeadmConfig',
      metadata: { name: n === 0 ? 'lab-cp-0' : 'lab-worker-0', labels },
      status: ready ? { ready: true, dataSecretName: n === 0 ? 'lab-cp-0' : 'lab-worker-0' } : {},
    }));
    objs.secrets.push(
      {
        kind: 'Secret',
        metadata: { name: 'lab-ca' },
        data: { 'tls.crt': b64(caCert), ...(o.keys === false ? {} : { 'tls.key': b64(rsaKey) }) },
      },
      {
        kind: 'Secret',
        metadata: { name: 'lab-etcd' },
        data: o.keys === false ? {} : { 'tls.key': b64(ecKey) },
      },
      { kind: 'Secret', metadata: { name: 'lab-sa' }, data: { 'tls.key': b64(`# sa\n${SHARED}\n${saKey}`) } },
      {
        kind: 'Secret',
        metadata: { name: 'lab-kubeconfig' },
        data: {
          value: b64(
            // Quoted, as the bootstrap provider writes it.
            `apiVersion: v1\nclusters:\n- cluster:\n    server: "${o.server ?? `https://${endpoint}:6443`}"\n  name: lab\n`,
          ),
        },
      },
    );
    const devices = [
      { ...cpDevice, userdata: o.cp ?? init },
      { ...workerDevice, userdata: o.worker ?? join() },
    ];
    return capiBootstrapView(objs, CLUSTER, devices, {
      caPin: PIN,
      keys: { 'lab-ca': 'no device', 'lab-etcd': 'no device', 'lab-sa': 'control planes' },
    });
  }
  const problem = (v: CapiBootstrapView) =>
    capiBootstrapProblem(v, { machines: 2, controlPlane: 'lab-cp-0', endpoint: `${endpoint}:6443` });

  it('shows who inits and who joins pinned, the kubeconfig, and no key out of place (a CA certificate and the sa key on the control plane are fine)', () => {
    const v = setting({});
    expect(v).toEqual({
      configs: [
        { name: 'lab-cp-0', ready: true, dataSecretName: 'lab-cp-0' },
        { name: 'lab-worker-0', ready: true, dataSecretName: 'lab-worker-0' },
      ],
      init: ['lab-cp-0'],
      join: ['lab-worker-0'],
      pinned: ['lab-worker-0'],
      kubeconfigServer: `https://${endpoint}:6443`,
      keys: [
        { name: 'lab-ca/tls.key', allowedOn: 'no device' },
        { name: 'lab-etcd/tls.key', allowedOn: 'no device' },
        { name: 'lab-sa/tls.key', allowedOn: 'control planes' },
      ],
      leaks: [],
      planted: 3,
      devices: 2,
    });
    expect(problem(v)).toBeUndefined();
  });

  it.each<[string, Parameters<typeof setting>[0], string]>([
    [
      'a whole key in userdata',
      { worker: `${join()}${ecKey}` },
      'PRIVATE KEY WHERE IT MUST NOT BE: lab-etcd/tls.key on lab-worker-0',
    ],
    [
      'one line of a key in userdata',
      { cp: `${init}# ${rsaKey.split('\n')[5]}\n` },
      'PRIVATE KEY WHERE IT MUST NOT BE: lab-ca/tls.key on lab-cp-0',
    ],
    [
      'a control-plane-only key on a worker',
      { worker: `${join()}${saKey}` },
      'PRIVATE KEY WHERE IT MUST NOT BE: lab-sa/tls.key on lab-worker-0',
    ],
    ['a config without data', { configs: [true, false] }, 'no bootstrap data yet for lab-worker-0'],
    ['a Machine without config', { configs: [true] }, '1 PacketKubeadmConfigs for 2 Machines'],
    [
      'kubeadm init on a worker',
      {
        worker: `#cloud-config\nwrite_files:\n${file('/run/kubeadm/kubeadm.yaml', 'kind: InitConfiguration')}`,
      },
      'kubeadm init on lab-cp-0, lab-worker-0, not lab-cp-0',
    ],
    ['no kubeadm init', { cp: join() }, 'kubeadm init on no device, not lab-cp-0'],
    ['a device neither inits nor joins', { worker: '#cloud-config\n' }, '0 of 1 devices join'],
    ['a join pinning another CA', { worker: join('sha256:00') }, 'joins without the CA pinned: lab-worker-0'],
    [
      'a join skipping the CA check',
      { worker: join(PIN, true) },
      'joins without the CA pinned: lab-worker-0',
    ],
    [
      'a kubeconfig for another server',
      { server: 'https://192.0.2.1:6443' },
      'the kubeconfig Secret points at https://192.0.2.1:6443, not https://<endpoint>:6443',
    ],
    [
      'no CA key to search for',
      { keys: false },
      "no CA private key in the cluster's Secrets to search the devices for",
    ],
  ])('names %s', (_, o, expected) => {
    expect(problem(setting(o))).toBe(expected.replace('<endpoint>', endpoint));
  });

  it('refuses a clean result from a search that misses planted keys', () => {
    expect(problem({ ...setting({}), planted: 1 })).toBe(
      'the key search finds only 1 of 3 keys planted in userdata',
    );
  });
});

describe('sshPublicKeyLine', () => {
  it('is an ed25519 key line ssh-keygen reads, fresh each time', () => {
    const line = sshPublicKeyLine('knet-lab');
    const r = spawnSync('ssh-keygen', ['-l', '-f', '-'], { input: `${line}\n` });
    expect({ status: r.status, stderr: r.stderr.toString() }).toEqual({ status: 0, stderr: '' });
    expect(r.stdout.toString()).toMatch(/^256 SHA256:\S+ knet-lab \(ED25519\)\n$/);
    expect(sshPublicKeyLine('knet-lab')).not.toBe(line);
  });
});
