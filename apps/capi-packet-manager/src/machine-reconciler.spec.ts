/**
 * The PacketMachine and PacketCluster loops on the in-memory store, against the fake Metal API
 * (real HTTP on loopback, the real @knet/metal client) on one virtual clock: the fake's device
 * states and rate-limit windows and the client's waits all move on it, so nothing sleeps.
 */
import { PACKET_MACHINE_FINALIZER, type PacketCluster, type PacketMachine } from '@knet/capi';
import { MetalClient } from '@knet/metal';
import { RecordingLogger } from '@knet/runtime';
import { FakeMetalApi } from '@knet/testing';
import { ClusterReconciler } from './cluster-reconciler';
import { ClusterDeviceCache } from './device-cache';
import { CLUSTER, NS, PROJECT, cluster, machine, packetCluster, packetMachine } from './fixture';
import { MachineReconciler } from './machine-reconciler';
import { CREATE_INTENT_ANNOTATION } from './plan';
import { ProblemLog } from './problems';
import { FakeStore } from './store';

const TOKEN = 'test-token';
let api: FakeMetalApi;
let t: number;

beforeAll(async () => {
  t = Date.parse('2026-12-06T10:00:00Z');
  api = await FakeMetalApi.start({ tokens: [TOKEN], now: () => t });
});
afterAll(() => api.close());
beforeEach(() => {
  api.reset();
  api.addProject({ id: PROJECT });
});

interface Bed {
  store: FakeStore;
  machines: MachineReconciler;
  clusters: ClusterReconciler;
  logger: RecordingLogger;
  client: MetalClient;
}

function bed(token = TOKEN): Bed {
  const store = new FakeStore();
  const logger = new RecordingLogger();
  const client = new MetalClient({
    token,
    apiUrl: api.url,
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
    random: () => 0.5,
  });
  const problems = new ProblemLog(logger);
  const machines = new MachineReconciler({
    store,
    metal: client,
    devices: new ClusterDeviceCache(client, { now: () => t }),
    problems,
    logger,
    pollIntervalMs: 15_000,
  });
  const clusters = new ClusterReconciler({ store, metal: client, problems });
  store.put(cluster());
  store.put(packetCluster());
  return { store, machines, clusters, logger, client };
}

function addMachine(b: Bed, name: string, controlPlane = false): void {
  b.store.put(machine(name, { controlPlane }));
  b.store.put(packetMachine(name));
  b.store.secrets.set(`${NS}/${name}-bootstrap`, { value: `#cloud-config\nhostname: ${name}\n` });
}

const pm = (b: Bed, name: string) => b.store.objects.get(`PacketMachine/${NS}/${name}`) as PacketMachine;
const calls = (method: string, path: RegExp) =>
  api.calls.filter((c) => c.method === method && path.test(c.path));
const creates = () => calls('POST', /^\/projects\/[^/]+\/devices$/);

/** Reconciles until the loop asks for no requeue or `max` passes, moving the clock by each requeue. */
async function settle(b: Bed, name: string, max = 20): Promise<void> {
  for (let n = 0; n < max; n++) {
    const r = await b.machines.reconcile(NS, name);
    if (r.requeueAfterMs === undefined) return;
    t += r.requeueAfterMs;
  }
}

describe('MachineReconciler', () => {
  it('creates one device with its tags, ssh keys and userdata, then reports it ready', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    const obj = pm(b, 'w-0');
    obj.spec.sshKeys = [
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfakekeyfakekeyfakekeyfakekeyfakekey user@host',
    ];
    obj.spec.tags = ['team:a'];
    b.store.put(obj);
    await settle(b, 'w-0');
    const got = pm(b, 'w-0');
    expect(got.status?.ready).toBe(true);
    expect(got.status?.initialization?.provisioned).toBe(true);
    expect(got.status?.instanceStatus).toBe('active');
    expect(got.spec.providerID).toMatch(/^equinixmetal:\/\/[0-9a-f-]{36}$/);
    expect(got.status?.addresses?.map((a) => a.type)).toEqual(
      expect.arrayContaining(['Hostname', 'ExternalIP', 'InternalIP']),
    );
    expect(got.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    expect(creates()).toHaveLength(1);
    const body = creates()[0]!.body as Record<string, unknown>;
    expect(body).toMatchObject({
      hostname: 'w-0',
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_24_04',
      metro: 'da',
      userdata: '#cloud-config\nhostname: w-0\n',
      tags: [
        'capp:cluster-id:c1',
        'capp:machine-uid:w-0',
        'capp:namespace:ns',
        'kubernetes.io/role:node',
        'team:a',
      ],
      ssh_keys: [{ label: 'w-0-0', key: obj.spec.sshKeys[0] }],
    });
    const [device] = api.devices();
    expect(device!.tags).toEqual(body['tags']);
    expect(b.store.events.map((e) => e.reason)).toEqual(
      expect.arrayContaining(['DeviceCreated', 'DeviceActive']),
    );
  });

  it('a ready machine costs no Metal API call', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    await settle(b, 'w-0');
    const before = api.calls.length;
    for (let i = 0; i < 5; i++) await b.machines.reconcile(NS, 'w-0');
    expect(api.calls.length).toBe(before);
  });

  it('a crash between create and the providerID write finds the device by its tags: no second device', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    // The create takes effect but its answer is lost (500 after the effect).
    api.inject({ method: 'POST', path: /\/devices$/, status: 500, after: true });
    expect(await b.machines.reconcile(NS, 'w-0')).toEqual({ requeueAfterMs: 60_000 });
    expect(pm(b, 'w-0').status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'MetalApiError',
    });
    expect(api.devices()).toHaveLength(1);
    expect(pm(b, 'w-0').metadata.annotations?.[CREATE_INTENT_ANNOTATION]).toBeDefined();
    expect(pm(b, 'w-0').spec.providerID).toBeUndefined();
    await settle(b, 'w-0');
    expect(api.devices()).toHaveLength(1);
    expect(creates()).toHaveLength(1);
    expect(pm(b, 'w-0').spec.providerID).toBe(`equinixmetal://${api.devices()[0]!.id}`);
    expect(pm(b, 'w-0').status?.ready).toBe(true);
  });

  it('a crash after the intent is recorded but before the create creates exactly one device', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    b.store.failNext('getSecretValue');
    await expect(b.machines.reconcile(NS, 'w-0')).rejects.toThrow(/getSecretValue/);
    expect(api.devices()).toHaveLength(0);
    await settle(b, 'w-0');
    expect(api.devices()).toHaveLength(1);
  });

  it('a 429 storm: waits for the reset instead of multiplying calls, then succeeds', async () => {
    const b = bed();
    for (const n of ['w-0', 'w-1', 'w-2']) addMachine(b, n);
    const storm = api.inject({
      method: 'POST',
      status: 429,
      times: 3,
      headers: { 'Retry-After': '5', 'X-RateLimit-Remaining': '0' },
    });
    await Promise.all(['w-0', 'w-1', 'w-2'].map((n) => settle(b, n)));
    expect(storm.hits).toBe(3);
    expect(api.devices()).toHaveLength(3);
    // Three creates answered plus three 429s: no create was sent twice after success.
    expect(creates().filter((c) => c.status === 201)).toHaveLength(3);
    for (const n of ['w-0', 'w-1', 'w-2']) expect(pm(b, n).status?.ready).toBe(true);
  });

  it("the API busy past the client's retries: a condition, and the controller told to hold off as long as the API asked", async () => {
    const b = bed();
    addMachine(b, 'w-0');
    const busy = api.inject({ status: 503, times: Infinity, headers: { 'Retry-After': '7' } });
    expect(await b.machines.reconcile(NS, 'w-0')).toEqual({ requeueAfterMs: 7000, holdOff: true });
    expect(pm(b, 'w-0').status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'MetalApiUnavailable',
    });
    busy.cancel();
    // Any other failure leaves the controller free to look again when something changes.
    api.inject({ status: 500 });
    expect(await b.machines.reconcile(NS, 'w-0')).toEqual({ requeueAfterMs: 60_000 });
    await settle(b, 'w-0');
    expect(pm(b, 'w-0').status?.ready).toBe(true);
  });

  it('a device that fails provisioning: terminal condition, Warning event, no retry', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    api.failNextDevices(1);
    await settle(b, 'w-0');
    const got = pm(b, 'w-0');
    expect(got.status?.failureReason).toBe('InstanceProvisionFailed');
    expect(got.status?.ready).toBe(false);
    expect(got.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'InstanceProvisionFailed',
      severity: 'Error',
    });
    expect(b.store.events.some((e) => e.type === 'Warning' && e.reason === 'InstanceProvisionFailed')).toBe(
      true,
    );
    const n = api.calls.length;
    await b.machines.reconcile(NS, 'w-0');
    expect(api.calls.length).toBe(n);
  });

  it('bad credentials: one clear condition per object and one log line for all of them', async () => {
    const b = bed('wrong-token');
    for (const n of ['w-0', 'w-1', 'w-2']) addMachine(b, n);
    for (const n of ['w-0', 'w-1', 'w-2']) {
      pm(b, n).metadata.annotations = { [CREATE_INTENT_ANNOTATION]: 'x' };
    }
    for (let pass = 0; pass < 3; pass++) {
      for (const n of ['w-0', 'w-1', 'w-2']) await b.machines.reconcile(NS, n);
    }
    for (const n of ['w-0', 'w-1', 'w-2']) {
      expect(pm(b, n).status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
        status: 'False',
        reason: 'CredentialsInvalid',
      });
    }
    const lines = b.logger.messages().filter((m) => /API key/.test(m));
    expect(lines).toHaveLength(1);
    expect(b.logger.text()).not.toContain('wrong-token');
    expect(api.devices()).toHaveLength(0);
  });

  it('paused: no call, no write', async () => {
    const b = bed();
    b.store.put(cluster({ paused: true }));
    addMachine(b, 'w-0');
    const writes = b.store.writes.length;
    await b.machines.reconcile(NS, 'w-0');
    expect(api.calls).toHaveLength(0);
    expect(b.store.writes.slice(writes).filter((w) => !w.startsWith('status'))).toEqual([]);
  });

  it('assigns the elastic IP to the first active control plane only', async () => {
    const b = bed();
    const [res] = await Promise.all([
      b.client.requestIpReservation(PROJECT, { type: 'public_ipv4', quantity: 1, metro: 'da' }),
    ]);
    const pcl = packetCluster();
    pcl.spec.controlPlaneEndpoint = { host: res!.address!, port: 6443 };
    b.store.put(pcl);
    addMachine(b, 'cp-0', true);
    await settle(b, 'cp-0');
    addMachine(b, 'cp-1', true);
    await settle(b, 'cp-1');
    expect(calls('POST', /^\/devices\/[^/]+\/ips$/)).toHaveLength(1);
    const holder = api.devices().find((d) => d.ip_addresses.some((a) => a.address === res!.address));
    expect(holder?.hostname).toBe('cp-0');
    expect(pm(b, 'cp-1').status?.ready).toBe(true);
  });

  it('deletes the device with force_delete and lets go; a device already gone (404) is not an error', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    addMachine(b, 'w-1');
    await settle(b, 'w-0');
    await settle(b, 'w-1');
    b.store.delete('PacketMachine', NS, 'w-0');
    await b.machines.reconcile(NS, 'w-0');
    const del = calls('DELETE', /^\/devices\//);
    expect(del).toHaveLength(1);
    expect(del[0]!.query['force_delete']).toBe('true');
    expect(b.store.objects.has(`PacketMachine/${NS}/w-0`)).toBe(false);
    // w-1's device vanished behind our back: deletion still completes.
    const id = pm(b, 'w-1').spec.providerID!.split('//')[1]!;
    await b.client.deleteDevice(id, { force_delete: true });
    t += 60_000;
    b.store.delete('PacketMachine', NS, 'w-1');
    await b.machines.reconcile(NS, 'w-1');
    expect(b.store.objects.has(`PacketMachine/${NS}/w-1`)).toBe(false);
  });

  it('the finalizer is added before anything else', async () => {
    const b = bed();
    addMachine(b, 'w-0');
    const obj = pm(b, 'w-0');
    obj.metadata.finalizers = undefined;
    b.store.put(obj);
    await b.machines.reconcile(NS, 'w-0');
    expect(pm(b, 'w-0').metadata.finalizers).toEqual([PACKET_MACHINE_FINALIZER]);
    expect(b.store.writes[0]).toMatch(/^finalizer\+/);
  });
});

describe('ClusterReconciler', () => {
  const pcl = (b: Bed) => b.store.objects.get(`PacketCluster/${NS}/${CLUSTER}`) as PacketCluster;

  it('reserves an elastic IP once, sets the endpoint and ready; a ready cluster makes no call', async () => {
    const b = bed();
    b.store.put(packetCluster({ endpoint: false }));
    await b.clusters.reconcile(NS, CLUSTER);
    const got = pcl(b);
    const [res] = api
      .reservations()
      .filter((r) => r.tags.includes(`cluster-api-provider-packet:cluster-id:${CLUSTER}`));
    expect(got.spec.controlPlaneEndpoint).toEqual({ host: res!.address, port: 6443 });
    expect(got.status).toMatchObject({
      ready: true,
      initialization: { provisioned: true },
      eipReservationID: res!.id,
    });
    const n = api.calls.length;
    await b.clusters.reconcile(NS, CLUSTER);
    expect(api.calls.length).toBe(n);
  });

  it('a crash between the reservation and the endpoint write finds the reservation by tag', async () => {
    const b = bed();
    b.store.put(packetCluster({ endpoint: false }));
    b.store.failNext('patch');
    await expect(b.clusters.reconcile(NS, CLUSTER)).rejects.toThrow();
    await b.clusters.reconcile(NS, CLUSTER);
    expect(calls('POST', /\/ips$/)).toHaveLength(1);
    expect(pcl(b).status?.ready).toBe(true);
  });

  it('quota exceeded (422): a clear condition, no endpoint', async () => {
    const b = bed();
    api.reset();
    api.addProject({ id: PROJECT, ipQuota: 0 });
    b.store.put(packetCluster({ endpoint: false }));
    await b.clusters.reconcile(NS, CLUSTER);
    expect(pcl(b).spec.controlPlaneEndpoint).toBeUndefined();
    expect(pcl(b).status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'ElasticIPReservationRejected',
    });
  });

  it('deletion keeps the EIP by default and releases it with eipReclaimPolicy Delete', async () => {
    const b = bed();
    b.store.put(packetCluster({ endpoint: false }));
    await b.clusters.reconcile(NS, CLUSTER);
    b.store.delete('PacketCluster', NS, CLUSTER);
    await b.clusters.reconcile(NS, CLUSTER);
    expect(b.store.objects.has(`PacketCluster/${NS}/${CLUSTER}`)).toBe(false);
    expect(api.reservations()).toHaveLength(1);

    api.reset();
    api.addProject({ id: PROJECT });
    const c = bed();
    const p = packetCluster({ endpoint: false });
    p.spec.eipReclaimPolicy = 'Delete';
    c.store.put(p);
    await c.clusters.reconcile(NS, CLUSTER);
    c.store.delete('PacketCluster', NS, CLUSTER);
    await c.clusters.reconcile(NS, CLUSTER);
    expect(c.store.objects.has(`PacketCluster/${NS}/${CLUSTER}`)).toBe(false);
    expect(api.reservations()).toHaveLength(0);
  });
});
