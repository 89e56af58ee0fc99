import { FakeMetalApi } from '@knet/testing';
import { MetalClient, type MetalCall, type MetalClientOptions } from '../src';
import { failureOf, leaksOf, thrown, TOKEN } from './scripted-server';

/**
 * The client against @knet/testing's FakeMetalApi (itself checked against the metal/v1 spec and
 * the vendor's Go SDK): a device's life, every page of a tag-filtered listing, an elastic IP from
 * reservation to release, a small rate budget spent without a 429 call by call (the gate holds on
 * `X-RateLimit-Remaining: 0`) and with one extra request per 429 in a burst, injected 503/429
 * storms, and the kinds the provider branches on (unauthorized, forbidden for a failed
 * provisioning, gone, invalid).
 */
describe('MetalClient against FakeMetalApi', () => {
  let fake: FakeMetalApi;
  let project: string;

  beforeEach(async () => {
    fake = await FakeMetalApi.start({ tokens: [TOKEN], rateLimit: { limit: 1000, windowMs: 60_000 } });
    project = fake.addProject({ name: 'capi' });
  });
  afterEach(async () => {
    await fake.close();
  });
  afterAll(() => {
    expect(thrown.flatMap((e) => leaksOf(e))).toEqual([]);
  });

  /** A client on the fake's clock: its sleeps move that clock on. */
  function clientOf(o: Partial<MetalClientOptions> = {}): { client: MetalClient; calls: MetalCall[] } {
    const calls: MetalCall[] = [];
    const client = new MetalClient({
      token: TOKEN,
      apiUrl: fake.url,
      userAgent: 'capi-packet-manager/0.1.0',
      now: () => fake.now(),
      sleep: async (ms) => fake.advance(ms),
      random: () => 0,
      onCall: (c) => calls.push(c),
      ...o,
    });
    return { client, calls };
  }

  it('creates a device with tags, sees it go active, finds it by tags, renames and deletes it', async () => {
    const { client } = clientOf();
    expect((await client.getProject(project)).name).toBe('capi');
    const tags = ['capp:cluster-id:c1', 'capp:machine-uid:m1', 'kubernetes.io/role:master'];
    const created = await client.createDevice(project, {
      hostname: 'c1-control-plane-0',
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_22_04',
      metro: 'da',
      billing_cycle: 'hourly',
      userdata: '#cloud-config\n',
      tags,
    });
    expect(created).toMatchObject({ hostname: 'c1-control-plane-0', state: 'queued', tags });

    fake.advance(10_000);
    const active = await client.getDevice(created.id);
    expect(active.state).toBe('active');
    expect(active.ip_addresses?.map((a) => [a.address_family, a.public])).toEqual([
      [4, true],
      [4, false],
      [6, true],
    ]);
    expect((await client.findDevicesByTags(project, tags)).map((d) => d.id)).toEqual([created.id]);
    expect(await client.findDevicesByTags(project, ['capp:cluster-id:c1', 'capp:machine-uid:other'])).toEqual(
      [],
    );

    expect((await client.updateDevice(created.id, { hostname: 'renamed' })).hostname).toBe('renamed');
    await client.deleteDevice(created.id, { force_delete: true });
    fake.advance(10_000);
    expect((await failureOf(client.getDevice(created.id))).kind).toBe('gone');
    expect(fake.calls.find((c) => c.method === 'DELETE')?.query).toEqual({ force_delete: 'true' });
  });

  it('lists 25 tagged devices over the fake’s pages of 10, and only those', async () => {
    const { client, calls } = clientOf();
    for (let i = 0; i < 27; i++) {
      await client.createDevice(project, {
        hostname: `n${i}`,
        plan: 'c3.small.x86',
        operating_system: 'ubuntu_22_04',
        metro: 'da',
        tags: i < 25 ? ['capp:cluster-id:c1'] : ['capp:cluster-id:other'],
      });
    }
    calls.length = 0;
    const devices = await client.listProjectDevices(project, { tag: 'capp:cluster-id:c1' });
    expect(devices.map((d) => d.hostname)).toEqual(Array.from({ length: 25 }, (_, i) => `n${i}`));
    expect(calls.map((c) => `${c.operation} ${c.status}`)).toEqual(Array(3).fill('findProjectDevices 200'));
    expect(fake.calls.slice(-3).map((c) => c.query.page ?? '1')).toEqual(['1', '2', '3']);
  });

  it('reserves an elastic IP, assigns it to a device, unassigns and releases it', async () => {
    const { client } = clientOf();
    const device = await client.createDevice(project, {
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_22_04',
      metro: 'da',
    });
    fake.advance(10_000);
    const tags = ['cluster-api-provider-packet:cluster-id:c1'];
    const eip = await client.requestIpReservation(project, {
      type: 'public_ipv4',
      quantity: 1,
      metro: 'da',
      tags,
      fail_on_approval_required: true,
    });
    expect(eip).toMatchObject({ tags, cidr: 32 });
    const listed = await client.listIpReservations(project, { types: ['public_ipv4'] });
    expect(listed.map((r) => r.id)).toContain(eip.id);

    const assignment = await client.assignIpAddress(device.id, { address: `${eip.address}/32` });
    expect((await client.listIpAssignments(device.id)).map((a) => a.address)).toContain(eip.address);
    expect((await client.getIpAddress(assignment.id)).id).toBe(assignment.id);
    await client.unassignIpAddress(assignment.id);
    expect((await client.listIpAssignments(device.id)).map((a) => a.address)).not.toContain(eip.address);
    await client.deleteIpReservation(eip.id);
    expect((await failureOf(client.getIpAddress(eip.id))).kind).toBe('gone');
  });

  it('an exhausted quota with fail_on_approval_required is invalid', async () => {
    const small = fake.addProject({ ipQuota: 1 });
    const { client } = clientOf();
    const e = await failureOf(
      client.requestIpReservation(small, {
        type: 'public_ipv4',
        quantity: 2,
        metro: 'da',
        fail_on_approval_required: true,
      }),
    );
    expect(e).toMatchObject({ kind: 'invalid', status: 422 });
    expect(e.errors.length).toBeGreaterThan(0);
  });

  it('a failed provisioning answers 403: forbidden; a bad token is unauthorized', async () => {
    const { client } = clientOf();
    fake.failNextDevices(1);
    const device = await client.createDevice(project, {
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_22_04',
      metro: 'da',
    });
    fake.advance(10_000);
    expect(await failureOf(client.getDevice(device.id))).toMatchObject({ kind: 'forbidden', status: 403 });

    const stranger = clientOf({ token: 'not-a-token' }).client;
    expect(await failureOf(stranger.getProject(project))).toMatchObject({
      kind: 'unauthorized',
      status: 401,
    });
  });

  it('spends a small rate budget without a 429 when calls come one by one, and a burst costs one request per 429', async () => {
    await fake.close();
    fake = await FakeMetalApi.start({ tokens: [TOKEN], rateLimit: { limit: 5, windowMs: 60_000 } });
    project = fake.addProject();
    const { client } = clientOf({ maxWaitMs: 120_000 });
    for (let i = 0; i < 12; i++) await client.getProject(project);
    expect(fake.calls.map((c) => c.status)).toEqual(Array(12).fill(200));

    // 3 requests are left in the window; 8 calls at once: those already in flight when the
    // budget runs out collect a 429 each (at most 5), every other one waits at the gate.
    const burst = await Promise.all(Array.from({ length: 8 }, () => client.getProject(project)));
    expect(burst.map((p) => p.id)).toEqual(Array(8).fill(project));
    const limited = fake.calls.filter((c) => c.status === 429).length;
    expect(limited).toBeLessThanOrEqual(5);
    expect(fake.calls).toHaveLength(12 + 8 + limited);
  });

  it('rides out an injected 503 and 429 storm with one request per answer', async () => {
    const { client, calls } = clientOf({ maxAttempts: 6 });
    fake.inject({ method: 'GET', path: `/projects/${project}`, status: 503, times: 2 });
    fake.inject({ method: 'GET', path: `/projects/${project}`, status: 429, times: 3 });
    expect((await client.getProject(project)).id).toBe(project);
    expect(calls.map((c) => c.status)).toEqual([503, 503, 429, 429, 429, 200]);
  });
});
