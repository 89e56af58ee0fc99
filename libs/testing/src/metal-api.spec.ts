import http from 'node:http';
import type net from 'node:net';
import { postStreamed, rawExchange } from './http-probes';
import {
  FakeMetalApi,
  METAL_MAX_BODY_BYTES,
  type FakeMetalApiOptions,
  type MetalDevice,
  type MetalIpAssignment,
  type MetalIpReservation,
  type MetalMeta,
} from './metal-api';

// The fake through raw HTTP, as a client sees it. Its answers are checked against the vendor's
// OpenAPI spec and Go SDK in test/metal-api.test.ts; this file pins its behaviour.

const TOKEN = 'test-token';

interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

type ErrorBody = { errors?: string[]; error?: string };

async function call<T = Record<string, unknown>>(
  api: FakeMetalApi,
  method: string,
  path: string,
  body?: unknown,
  o: { token?: string | null; raw?: string } = {},
): Promise<Reply<T & ErrorBody>> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers['X-Auth-Token'] = token;
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers,
    ...(o.raw !== undefined ? { body: o.raw } : body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? ({} as T) : JSON.parse(text) };
}

const DEVICE = { plan: 'c3.small.x86', operating_system: 'ubuntu_22_04', metro: 'da' };

/** A fake per test on a manual clock (`tick`), closed after it even when the test failed half-way. */
function apiPerTest(opts: FakeMetalApiOptions = {}): { api: () => FakeMetalApi; tick: (ms: number) => void } {
  let api: FakeMetalApi | undefined;
  let clock = Date.parse('2026-01-05T10:00:00Z');
  beforeEach(async () => {
    api = await FakeMetalApi.start({
      now: () => clock,
      durations: { queuedMs: 1000, provisioningMs: 4000, deprovisioningMs: 2000 },
      ...opts,
    });
  });
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });
  return { api: () => api!, tick: (ms) => (clock += ms) };
}

async function create(api: FakeMetalApi, project: string, extra: Record<string, unknown> = {}) {
  return call<MetalDevice>(api, 'POST', `/projects/${project}/devices`, { ...DEVICE, ...extra });
}

describe('FakeMetalApi devices', () => {
  const { api, tick } = apiPerTest();

  it('create answers 201: a queued device with public and private IPv4 and IPv6 from documentation ranges', async () => {
    const p = api().addProject({ sshKeys: 2 });
    const r = await create(api(), p, { hostname: 'cp-0', tags: ['a', 'b'], userdata: '#cloud-config' });
    expect(r.status).toBe(201);
    const d = r.body;
    expect(d).toMatchObject({
      hostname: 'cp-0',
      state: 'queued',
      tags: ['a', 'b'],
      billing_cycle: 'hourly',
      userdata: '#cloud-config',
      metro: { code: 'da' },
      facility: { code: 'da11', metro: { code: 'da' } },
      plan: { slug: 'c3.small.x86' },
      operating_system: { slug: 'ubuntu_22_04', distro: 'ubuntu', version: '22.04' },
      project: { href: `/metal/v1/projects/${p}` },
      href: `/metal/v1/devices/${d.id}`,
    });
    expect(d.ssh_keys).toHaveLength(2);
    const [pub4, priv4, pub6] = d.ip_addresses;
    expect(pub4).toMatchObject({ address_family: 4, public: true, management: true, cidr: 31 });
    expect(pub4?.address).toMatch(/^203\.0\.113\.\d+$/);
    expect(pub4?.netmask).toBe('255.255.255.254');
    expect(priv4).toMatchObject({
      address_family: 4,
      public: false,
      cidr: 31,
      address: '10.0.0.1',
      gateway: '10.0.0.0',
    });
    expect(pub6).toMatchObject({ address_family: 6, public: true, cidr: 127 });
    expect(pub6?.address).toMatch(/^2001:db8::/);
    const second = (await create(api(), p)).body;
    expect(second.ip_addresses[0]?.address).not.toBe(pub4?.address);
    expect(second.hostname).toBe(`device-${second.id.slice(0, 8)}`);
    tick(1);
    expect((await call<MetalDevice>(api(), 'GET', `/devices/${d.id}`)).body).toEqual(d);
  });

  it('states move on the clock: queued → provisioning (with a percentage) → active; advance() skips ahead', async () => {
    const p = api().addProject();
    const id = (await create(api(), p)).body.id;
    const get = async () => (await call<MetalDevice>(api(), 'GET', `/devices/${id}`)).body;
    expect((await get()).state).toBe('queued');
    tick(1000);
    expect(await get()).toMatchObject({ state: 'provisioning', provisioning_percentage: 0 });
    tick(1000);
    expect(await get()).toMatchObject({ state: 'provisioning', provisioning_percentage: 25 });
    api().advance(3000);
    const active = await get();
    expect(active.state).toBe('active');
    expect(active.provisioning_percentage).toBeUndefined();
  });

  it('marked devices fail: GET/PUT/DELETE answer 403 "not authorized", /ips 404, and the listing leaves them out', async () => {
    const p = api().addProject();
    api().failNextDevices(1);
    const stop = api().failDevicesWhere((r) => r.body['hostname'] === 'doomed');
    const first = (await create(api(), p, { hostname: 'first', tags: ['t'] })).body;
    const doomed = (await create(api(), p, { hostname: 'doomed', tags: ['t'] })).body;
    stop();
    const fine = (await create(api(), p, { hostname: 'doomed', tags: ['t'] })).body;
    const late = (await create(api(), p, { hostname: 'late', tags: ['t'] })).body;
    tick(2000);
    api().failDevice(late.id);
    expect((await call(api(), 'GET', `/devices/${late.id}`)).status).toBe(403);
    tick(3000);
    for (const d of [first, doomed, late]) {
      const got = await call(api(), 'GET', `/devices/${d.id}`);
      expect(got.status).toBe(403);
      expect(got.body).toEqual({ errors: ['You are not authorized to view this device'] });
      expect((await call(api(), 'PUT', `/devices/${d.id}`, { hostname: 'x' })).status).toBe(403);
      expect((await call(api(), 'DELETE', `/devices/${d.id}`)).status).toBe(403);
      expect((await call(api(), 'GET', `/devices/${d.id}/ips`)).status).toBe(404);
    }
    expect((await call<MetalDevice>(api(), 'GET', `/devices/${fine.id}`)).body.state).toBe('active');
    const list = await call<{ devices: MetalDevice[] }>(api(), 'GET', `/projects/${p}/devices?tag=t`);
    expect(list.body.devices.map((d) => d.id)).toEqual([fine.id]);
    expect(
      api()
        .devices()
        .filter((d) => d.state === 'failed'),
    ).toHaveLength(3);
  });

  it('create refuses what the spec requires with 422 and every problem listed', async () => {
    const p = api().addProject();
    const post = (body: unknown, raw?: string) =>
      call(api(), 'POST', `/projects/${p}/devices`, body, raw === undefined ? {} : { raw });
    const empty = await post({});
    expect(empty.status).toBe(422);
    expect(empty.body.errors).toEqual([
      'plan is required',
      'operating_system is required',
      'metro or facility is required',
    ]);
    const wrong = await post({
      plan: 'x9.huge',
      operating_system: 'windows_95',
      metro: 'zz',
      billing_cycle: 'weekly',
    });
    expect(wrong.body.errors).toEqual([
      "plan 'x9.huge' is not a valid plan",
      "operating_system 'windows_95' is not a valid operating system",
      "metro 'zz' is not a valid metro",
      'billing_cycle must be one of hourly, daily, monthly, yearly',
    ]);
    expect((await post({ ...DEVICE, facility: ['sv15'] })).body.errors).toEqual([
      'metro and facility are mutually exclusive',
    ]);
    expect((await post({ ...DEVICE, tags: 'a' })).body.errors).toEqual([
      'tags must be a list of the documented shape',
    ]);
    expect((await post(undefined, '{"plan":')).body.errors).toEqual(['Request body is not valid JSON']);
    expect((await post([DEVICE])).body.errors).toEqual(['The request body must be a JSON object']);
    expect(api().devices()).toHaveLength(0);
    const { metro: _, ...noMetro } = DEVICE;
    const byFacility = await post({ ...noMetro, facility: ['nowhere', 'sv15', 'da11'] });
    expect(byFacility.status).toBe(201);
    expect(byFacility.body).toMatchObject({ facility: { code: 'sv15' }, metro: { code: 'sv' } });
    expect((await post({ ...noMetro, facility: 'ewr1' })).body).toMatchObject({ metro: { code: 'ny' } });
    expect((await post({ ...DEVICE, metro: 'any', billing_cycle: 'monthly' })).body).toMatchObject({
      metro: { code: 'da' },
      billing_cycle: 'monthly',
    });
  });

  it('no SSH key anywhere → 422 (CAPEM PR #788); keys in the request or no_ssh_keys pass, and new keys join the project', async () => {
    const p = api().addProject({ sshKeys: 0 });
    const refused = await create(api(), p);
    expect(refused.status).toBe(422);
    expect(refused.body.errors?.[0]).toMatch(/^No SSH keys/);
    const none = await create(api(), p, { no_ssh_keys: true });
    expect(none.status).toBe(201);
    expect(none.body.ssh_keys).toEqual([]);
    const given = await create(api(), p, { ssh_keys: [{ label: 'ops', key: 'ssh-ed25519 AAAA ops' }] });
    expect(given.status).toBe(201);
    expect(given.body.ssh_keys).toHaveLength(1);
    const now = await create(api(), p);
    expect(now.status).toBe(201);
    expect(now.body.ssh_keys).toEqual(given.body.ssh_keys);
    const foreign = await create(api(), p, { project_ssh_keys: ['00000000-0000-4000-8000-000000000000'] });
    expect(foreign.body.errors?.[0]).toMatch(/is not a key of the project/);
  });

  it('ip_addresses must include private IPv4; a device may go without public addresses', async () => {
    const p = api().addProject();
    const noPrivate = await create(api(), p, { ip_addresses: [{ address_family: 4, public: true }] });
    expect(noPrivate.body.errors).toEqual(['ip_addresses: a private IPv4 address is required']);
    const privateOnly = await create(api(), p, { ip_addresses: [{ address_family: 4, public: false }] });
    expect(privateOnly.status).toBe(201);
    expect(privateOnly.body.ip_addresses.map((a) => [a.address_family, a.public])).toEqual([[4, false]]);
  });

  it('hardware reservations: next-available takes a free one of the plan; a taken or unknown one → 422', async () => {
    const p = api().addProject();
    const hw = api().addHardwareReservation(p, { plan: 'm3.large.x86', metro: 'da' });
    const wrongPlan = await create(api(), p, { hardware_reservation_id: 'next-available' });
    expect(wrongPlan.body.errors).toEqual([
      'no available hardware reservation of plan c3.small.x86 in the project',
    ]);
    const got = await create(api(), p, { plan: 'm3.large.x86', hardware_reservation_id: 'next-available' });
    expect(got.body.hardware_reservation).toEqual({ id: hw, href: `/metal/v1/hardware-reservations/${hw}` });
    const taken = await create(api(), p, { plan: 'm3.large.x86', hardware_reservation_id: hw });
    expect(taken.status).toBe(422);
    await call(api(), 'DELETE', `/devices/${got.body.id}`);
    tick(2000);
    expect((await create(api(), p, { plan: 'm3.large.x86', hardware_reservation_id: hw })).status).toBe(201);
  });

  it('PUT changes the mutable fields; wrong types → 422 and nothing changes', async () => {
    const p = api().addProject();
    const d = (await create(api(), p, { tags: ['a'] })).body;
    tick(10);
    const bad = await call(api(), 'PUT', `/devices/${d.id}`, { hostname: 'n', locked: 'yes' });
    expect(bad.body.errors).toEqual(['locked must be true or false']);
    const put = await call<MetalDevice>(api(), 'PUT', `/devices/${d.id}`, {
      hostname: 'renamed',
      description: 'worker',
      tags: ['b'],
      customdata: { k: 1 },
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      hostname: 'renamed',
      description: 'worker',
      tags: ['b'],
      customdata: { k: 1 },
    });
    expect(put.body.updated_at).not.toBe(d.updated_at);
    expect((await call(api(), 'PUT', `/devices/00000000-0000-4000-8000-000000000000`, {})).status).toBe(404);
  });

  it('DELETE → 204, deprovisioning, then 404; a locked device → 422; the addresses go back to the pool', async () => {
    const p = api().addProject();
    const d = (await create(api(), p, { locked: true })).body;
    expect((await call(api(), 'DELETE', `/devices/${d.id}?force_delete=true`)).body.errors?.[0]).toMatch(
      /locked/,
    );
    await call(api(), 'PUT', `/devices/${d.id}`, { locked: false });
    expect((await call(api(), 'DELETE', `/devices/${d.id}?force_delete=true`)).status).toBe(204);
    expect((await call<MetalDevice>(api(), 'GET', `/devices/${d.id}`)).body.state).toBe('deprovisioning');
    expect((await call(api(), 'DELETE', `/devices/${d.id}`)).status).toBe(204);
    expect(
      (await call<{ devices: MetalDevice[] }>(api(), 'GET', `/projects/${p}/devices`)).body.devices,
    ).toHaveLength(1);
    tick(2000);
    expect((await call(api(), 'GET', `/devices/${d.id}`)).status).toBe(404);
    expect((await call(api(), 'DELETE', `/devices/${d.id}`)).status).toBe(404);
    expect(api().devices()).toEqual([]);
    const again = (await create(api(), p)).body;
    expect(again.ip_addresses.map((a) => a.address)).toEqual(d.ip_addresses.map((a) => a.address));
  });

  it('a plan at its capacity answers 503; a deleted device frees its slot', async () => {
    const small = await FakeMetalApi.start({ capacity: { 'c3.small.x86': 1 } });
    try {
      const p = small.addProject();
      const first = await create(small, p);
      const full = await create(small, p);
      expect(full.status).toBe(503);
      expect(full.body.errors).toEqual([
        'There are no c3.small.x86 servers available in da; try another metro or plan',
      ]);
      expect((await create(small, p, { plan: 'm3.small.x86' })).status).toBe(201);
      await call(small, 'DELETE', `/devices/${first.body.id}`);
      expect((await create(small, p)).status).toBe(201);
    } finally {
      await small.close();
    }
  });
});

describe('FakeMetalApi listings', () => {
  const { api } = apiPerTest();

  it('tag and hostname filter on the server; pages of 10; meta with first/last/previous/next hrefs as the spec’s Meta', async () => {
    const p = api().addProject();
    const other = api().addProject();
    for (let i = 0; i < 25; i++) await create(api(), p, { hostname: `w-${i}`, tags: ['t', `i:${i}`] });
    for (let i = 0; i < 3; i++) await create(api(), p, { hostname: `x-${i}`, tags: ['u'] });
    await create(api(), other, { tags: ['t'] });
    const page = (q: string) =>
      call<{ devices: MetalDevice[]; meta: MetalMeta }>(api(), 'GET', `/projects/${p}/devices${q}`);
    const base = `/metal/v1/projects/${p}/devices`;
    const one = await page('?tag=t');
    expect(one.body.devices.map((d) => d.hostname)).toEqual(Array.from({ length: 10 }, (_, i) => `w-${i}`));
    expect(one.body.meta).toEqual({
      self: { href: `${base}?tag=t&page=1` },
      first: { href: `${base}?tag=t&page=1` },
      last: { href: `${base}?tag=t&page=3` },
      next: { href: `${base}?tag=t&page=2` },
      total: 25,
      current_page: 1,
      last_page: 3,
    });
    const three = await page('?tag=t&page=3');
    expect(three.body.devices).toHaveLength(5);
    expect(three.body.meta.previous).toEqual({ href: `${base}?tag=t&page=2` });
    expect(three.body.meta.next).toBeUndefined();
    // Following next hrefs as a client does: every device once.
    const seen: string[] = [];
    let href: string | undefined = `${base}?tag=t&per_page=4`;
    while (href) {
      const r: Reply<{ devices: MetalDevice[]; meta: MetalMeta }> = await call<{
        devices: MetalDevice[];
        meta: MetalMeta;
      }>(api(), 'GET', href.slice('/metal/v1'.length));
      seen.push(...r.body.devices.map((d) => d.id));
      href = r.body.meta.next?.href;
    }
    expect(new Set(seen).size).toBe(25);
    const capped = await page('?tag=t&per_page=5000');
    expect(capped.body.devices).toHaveLength(25);
    expect(capped.body.meta.last_page).toBe(1);
    const beyond = await page('?tag=t&page=9');
    expect(beyond.body.devices).toEqual([]);
    expect(beyond.body.meta).toMatchObject({
      current_page: 9,
      last_page: 3,
      previous: { href: `${base}?tag=t&page=3` },
    });
    expect((await page('?hostname=x-')).body.devices.map((d) => d.hostname)).toEqual(['x-0', 'x-1', 'x-2']);
    expect((await page('?tag=nobody')).body.meta).toMatchObject({ total: 0, last_page: 1 });
    expect((await page('')).body.meta.total).toBe(28);
  });
});

describe('FakeMetalApi IP reservations', () => {
  const { api, tick } = apiPerTest();

  async function reserve(project: string, body: Record<string, unknown>) {
    return call<MetalIpReservation>(api(), 'POST', `/projects/${project}/ips`, body);
  }

  it('within the quota a block of 198.51.100.0/24 is created; over it → 422 with fail_on_approval_required, else pending until approved', async () => {
    const p = api().addProject({ ipQuota: 4 });
    const a = await reserve(p, { type: 'public_ipv4', quantity: 2, metro: 'da', tags: ['eip'] });
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({
      type: 'public_ipv4',
      state: 'created',
      address: '198.51.100.0',
      network: '198.51.100.0',
      cidr: 31,
      netmask: '255.255.255.254',
      public: true,
      address_family: 4,
      tags: ['eip'],
      metro: { code: 'da' },
      assignments: [],
    });
    const b = await reserve(p, { type: 'public_ipv4', quantity: 1, facility: 'sv15' });
    expect(b.body).toMatchObject({ address: '198.51.100.2', cidr: 32, metro: { code: 'sv' } });
    const refused = await reserve(p, {
      type: 'public_ipv4',
      quantity: 2,
      metro: 'da',
      fail_on_approval_required: true,
    });
    expect(refused.status).toBe(422);
    expect(refused.body.errors?.[0]).toMatch(/exceeds the project.s quota \(3 of 4 used\)/);
    const pending = await reserve(p, { type: 'public_ipv4', quantity: 2, metro: 'da' });
    expect(pending.status).toBe(201);
    expect(pending.body.state).toBe('pending');
    expect(pending.body.address).toBeUndefined();
    const approved = api().approveReservation(pending.body.id);
    expect(approved).toMatchObject({ state: 'created', address: '198.51.100.4', cidr: 31 });
    const global = await reserve(api().addProject(), { type: 'global_ipv4', quantity: 1 });
    expect(global.body).toMatchObject({ type: 'global_ipv4', global_ip: true, address: '192.0.2.0' });
    expect(global.body.metro).toBeUndefined();
  });

  it('a request is checked: type, quantity a power of two, a location for public_ipv4', async () => {
    const p = api().addProject();
    expect((await reserve(p, {})).body.errors).toEqual(['type is required', 'quantity is required']);
    expect((await reserve(p, { type: 'public_ipv4', quantity: 3 })).body.errors).toEqual([
      'quantity 3 must be a power of two from 1 to 256',
      'metro or facility is required',
    ]);
    expect((await reserve(p, { type: 'private_ipv4', quantity: 1 })).body.errors?.[0]).toMatch(
      /not requestable here/,
    );
    expect((await reserve(p, { type: 'elastic', quantity: 1 })).status).toBe(422);
    expect(api().reservations()).toEqual([]);
  });

  it('assignment: inside a created reservation of the device’s project and metro, not taken; both sides see it', async () => {
    const p = api().addProject();
    const d = (await create(api(), p)).body;
    const block = (await reserve(p, { type: 'public_ipv4', quantity: 4, metro: 'da' })).body;
    const elsewhere = (await reserve(p, { type: 'public_ipv4', quantity: 1, metro: 'sv' })).body;
    const foreign = (await reserve(api().addProject(), { type: 'public_ipv4', quantity: 1, metro: 'da' }))
      .body;
    const assign = (id: string, address: unknown) =>
      call<MetalIpAssignment>(api(), 'POST', `/devices/${id}/ips`, { address });
    const a = await assign(d.id, '198.51.100.1/32');
    expect(a.status).toBe(201);
    expect(a.body).toMatchObject({
      address: '198.51.100.1',
      cidr: 32,
      public: true,
      management: false,
      assigned_to: { href: `/metal/v1/devices/${d.id}` },
      parent_block: { network: '198.51.100.0', cidr: 30, href: `/metal/v1/ips/${block.id}` },
    });
    expect((await assign(d.id, '198.51.100.1')).body.errors?.[0]).toMatch(/already assigned/);
    expect((await assign(d.id, '198.51.100.0/31')).body.errors?.[0]).toMatch(/already assigned/);
    expect((await assign(d.id, `${elsewhere.address}/32`)).body.errors?.[0]).toMatch(/reserved in metro sv/);
    expect((await assign(d.id, `${foreign.address}/32`)).body.errors?.[0]).toMatch(
      /not inside an IP reservation/,
    );
    expect((await assign(d.id, 'not-an-ip')).status).toBe(422);
    expect((await assign(d.id, 7)).body.errors).toEqual(['address must be a string']);
    const onDevice = await call<{ ip_addresses: MetalIpAssignment[] }>(api(), 'GET', `/devices/${d.id}/ips`);
    expect(onDevice.body.ip_addresses.map((x) => x.address)).toContain('198.51.100.1');
    expect(onDevice.body.ip_addresses).toHaveLength(4);
    const res = await call<MetalIpReservation>(api(), 'GET', `/ips/${block.id}`);
    expect(res.body.assignments.map((x) => x.id)).toEqual([a.body.id]);
    expect((await call<MetalIpAssignment>(api(), 'GET', `/ips/${a.body.id}`)).body).toEqual(a.body);
    tick(10);
    expect((await call<MetalDevice>(api(), 'GET', `/devices/${d.id}`)).body.ip_addresses).toContainEqual(
      a.body,
    );
  });

  it('DELETE /ips/{id}: an assignment unassigns, a reservation goes with its assignments, management addresses → 403', async () => {
    const p = api().addProject();
    const d = (await create(api(), p)).body;
    const block = (await reserve(p, { type: 'public_ipv4', quantity: 2, metro: 'da' })).body;
    const a1 = (
      await call<MetalIpAssignment>(api(), 'POST', `/devices/${d.id}/ips`, { address: '198.51.100.0' })
    ).body;
    const a2 = (
      await call<MetalIpAssignment>(api(), 'POST', `/devices/${d.id}/ips`, { address: '198.51.100.1' })
    ).body;
    expect((await call(api(), 'DELETE', `/ips/${a1.id}`)).status).toBe(204);
    expect((await call(api(), 'GET', `/ips/${a1.id}`)).status).toBe(404);
    expect(
      api()
        .reservations()[0]
        ?.assignments.map((x) => x.id),
    ).toEqual([a2.id]);
    const mgmt = d.ip_addresses[0] as MetalIpAssignment;
    expect((await call(api(), 'DELETE', `/ips/${mgmt.id}`)).status).toBe(403);
    expect((await call(api(), 'DELETE', `/ips/${block.id}`)).status).toBe(204);
    expect((await call(api(), 'GET', `/ips/${a2.id}`)).status).toBe(404);
    const left = await call<{ ip_addresses: MetalIpAssignment[] }>(api(), 'GET', `/devices/${d.id}/ips`);
    expect(left.body.ip_addresses.every((x) => x.management)).toBe(true);
    const reused = (await reserve(p, { type: 'public_ipv4', quantity: 2, metro: 'da' })).body;
    expect(reused.address).toBe(block.address);
  });

  it('a device’s elastic assignments are released when it is deleted', async () => {
    const p = api().addProject();
    const d = (await create(api(), p)).body;
    const block = (await reserve(p, { type: 'public_ipv4', quantity: 1, metro: 'da' })).body;
    await call(api(), 'POST', `/devices/${d.id}/ips`, { address: block.address });
    await call(api(), 'DELETE', `/devices/${d.id}`);
    expect(api().reservations()[0]?.assignments).toEqual([]);
    const next = (await create(api(), p)).body;
    expect((await call(api(), 'POST', `/devices/${next.id}/ips`, { address: block.address })).status).toBe(
      201,
    );
    expect(
      (await call(api(), 'POST', `/devices/${d.id}/ips`, { address: block.address })).body.errors,
    ).toEqual(['The device is being deprovisioned']);
  });

  it('the project listing filters by types (repeated or comma-separated) in pages of 250', async () => {
    const p = api().addProject({ ipQuota: 1000 });
    for (let i = 0; i < 3; i++) await reserve(p, { type: 'public_ipv4', quantity: 1, metro: 'da' });
    await reserve(p, { type: 'global_ipv4', quantity: 1 });
    const list = (q: string) =>
      call<{ ip_addresses: MetalIpReservation[]; meta: MetalMeta }>(api(), 'GET', `/projects/${p}/ips${q}`);
    expect((await list('')).body.meta).toMatchObject({ total: 4, last_page: 1 });
    expect((await list('?types=global_ipv4')).body.ip_addresses.map((r) => r.type)).toEqual(['global_ipv4']);
    expect((await list('?types=global_ipv4&types=public_ipv4')).body.meta.total).toBe(4);
    expect((await list('?types=public_ipv4,global_ipv4&per_page=3')).body.meta).toMatchObject({
      total: 4,
      last_page: 2,
    });
    expect((await list('?types=public_ipv6')).body.ip_addresses).toEqual([]);
  });
});

describe('FakeMetalApi faults, budget and the request log', () => {
  const { api, tick } = apiPerTest({ rateLimit: { limit: 5, windowMs: 60_000 } });

  it('a fault answered before the effect: nothing happens; it counts its hits, runs out, and can be cancelled', async () => {
    const p = api().addProject();
    const f = api().inject({ method: 'POST', path: `/projects/${p}/devices`, status: 503, times: 2 });
    const r1 = await create(api(), p);
    expect(r1.status).toBe(503);
    expect(r1.body).toEqual({ errors: ['Service unavailable'] });
    expect((await create(api(), p)).status).toBe(503);
    expect(f.hits).toBe(2);
    expect(api().devices()).toEqual([]);
    expect((await create(api(), p)).status).toBe(201);
    const forever = api().inject({ path: /^\/devices\//, status: 404, times: Infinity });
    const id = api().devices()[0]?.id as string;
    for (let i = 0; i < 3; i++) expect((await call(api(), 'GET', `/devices/${id}`)).status).toBe(404);
    forever.cancel();
    expect((await call(api(), 'GET', `/devices/${id}`)).status).toBe(200);
    expect(
      api()
        .calls.filter((c) => c.fault === 'before')
        .map((c) => c.status),
    ).toEqual([503, 503, 404, 404, 404]);
  });

  it('a fault answered after the effect: the device exists though the client saw a 500', async () => {
    const p = api().addProject();
    api().inject({ method: 'POST', status: 500, after: true, body: { error: 'boom' } });
    const r = await create(api(), p, { hostname: 'ghost' });
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ error: 'boom' });
    expect(
      api()
        .devices()
        .map((d) => d.hostname),
    ).toEqual(['ghost']);
    expect(api().calls[0]).toMatchObject({ status: 500, fault: 'after' });
  });

  it('an injected 429 says Retry-After and Remaining 0 unless its headers say otherwise', async () => {
    const p = api().addProject();
    api().inject({ status: 429 });
    const r = await call(api(), 'GET', `/projects/${p}`);
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('1');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    api().inject({ status: 429, headers: { 'Retry-After': '30' } });
    expect((await call(api(), 'GET', `/projects/${p}`)).headers.get('retry-after')).toBe('30');
  });

  it('every answer carries the rate-limit headers; over the budget → 429 with Retry-After, which costs nothing', async () => {
    const p = api().addProject();
    const resetAt = String(Math.ceil((api().now() + 60_000) / 1000));
    const seen: (string | null)[][] = [];
    for (let i = 0; i < 5; i++) {
      const r = await call(api(), 'GET', `/projects/${p}`);
      seen.push([
        String(r.status),
        r.headers.get('x-ratelimit-limit'),
        r.headers.get('x-ratelimit-remaining'),
      ]);
      expect(r.headers.get('x-ratelimit-reset')).toBe(resetAt);
      tick(1000);
    }
    expect(seen).toEqual([0, 1, 2, 3, 4].map((i) => ['200', '5', String(4 - i)]));
    tick(10_000);
    const over = await call(api(), 'GET', `/projects/${p}`);
    expect(over.status).toBe(429);
    expect(over.body).toEqual({ errors: ['Rate limit exceeded'] });
    expect(over.headers.get('retry-after')).toBe('45');
    expect(over.headers.get('x-ratelimit-remaining')).toBe('0');
    expect((await call(api(), 'GET', '/nowhere')).headers.get('x-ratelimit-remaining')).toBe('0');
    tick(45_000);
    const fresh = await call(api(), 'GET', `/projects/${p}`);
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('x-ratelimit-remaining')).toBe('4');
    expect(fresh.headers.get('x-ratelimit-reset')).toBe(String(Math.ceil((api().now() + 60_000) / 1000)));
  });

  it('a missing or wrong token → 401 {"error"}, spending nothing; the log holds no token', async () => {
    const p = api().addProject();
    const none = await call(api(), 'GET', `/projects/${p}`, undefined, { token: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error: 'Invalid authentication token' });
    const wrong = await call(api(), 'POST', `/projects/${p}/devices`, DEVICE, {
      token: 'sekrit-wrong-token',
    });
    expect(wrong.status).toBe(401);
    expect(api().devices()).toEqual([]);
    expect((await call(api(), 'GET', `/projects/${p}`)).headers.get('x-ratelimit-remaining')).toBe('4');
    const log = JSON.stringify(api().calls);
    expect(log).not.toContain('sekrit-wrong-token');
    expect(log).not.toContain(TOKEN);
    expect(api().calls.map((c) => [c.method, c.path, c.status])).toEqual([
      ['GET', `/projects/${p}`, 401],
      ['POST', `/projects/${p}/devices`, 401],
      ['GET', `/projects/${p}`, 200],
    ]);
    expect(api().calls[1]?.body).toEqual(DEVICE);
  });

  it('routes: unknown → 404 before auth, a spec method the fake does not model → 501, another method → 404', async () => {
    const p = api().addProject();
    const unknown = await call(api(), 'GET', '/plans', undefined, { token: null });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ errors: ['Not found'] });
    expect((await fetch(`${api().url.replace('/metal/v1', '')}/devices`)).status).toBe(404);
    const patch = await call(api(), 'PATCH', `/ips/${p}`, {});
    expect(patch.status).toBe(501);
    expect(patch.body.errors).toEqual([
      'PATCH /ips/{id} is in the Metal API but not modelled by FakeMetalApi',
    ]);
    expect((await call(api(), 'POST', `/devices/${p}`, {})).status).toBe(404);
    expect((await call(api(), 'GET', `/projects/${p}/devices?page=1`)).status).toBe(200);
    expect(api().calls.map((c) => c.query)).toEqual([{}, {}, {}, {}, { page: '1' }]);
  });

  it('reset() forgets projects, devices, reservations, faults, marks, budgets and calls', async () => {
    const p = api().addProject();
    await create(api(), p);
    await call(api(), 'POST', `/projects/${p}/ips`, { type: 'public_ipv4', quantity: 1, metro: 'da' });
    api().inject({ status: 500, times: Infinity });
    api().failNextDevices(3);
    api().reset();
    expect([api().devices(), api().reservations(), api().calls]).toEqual([[], [], []]);
    expect((await call(api(), 'GET', `/projects/${p}`)).status).toBe(404);
    const q = api().addProject();
    const d = (await create(api(), q)).body;
    expect(d.ip_addresses[0]?.address).toBe('203.0.113.1');
    tick(5000);
    expect((await call<MetalDevice>(api(), 'GET', `/devices/${d.id}`)).body.state).toBe('active');
    // Four requests since the reset (the 404, create, GET, this one); without it the budget of 5 was spent.
    expect((await call(api(), 'GET', `/projects/${q}`)).headers.get('x-ratelimit-remaining')).toBe('1');
  });
});

describe('FakeMetalApi with hostile clients', () => {
  let api: FakeMetalApi;
  beforeEach(async () => {
    api = await FakeMetalApi.start({ http: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  });
  afterEach(() => api.close());

  /** A raw request; resolves to what the server sent until it closed the connection. */
  const raw = (write: (s: net.Socket) => void, opts: { end?: boolean } = {}) =>
    rawExchange(api.url, write, opts);

  it('a body over 1 MiB is 413, announced or streamed, and the connection is closed', async () => {
    const p = api.addProject();
    const big = JSON.stringify({ ...DEVICE, userdata: 'x'.repeat(METAL_MAX_BODY_BYTES) });
    const announced = await call(api, 'POST', `/projects/${p}/devices`, undefined, { raw: big });
    expect(announced.status).toBe(413);
    expect(announced.headers.get('connection')).toBe('close');
    const streamed = await postStreamed(
      `${api.url}/projects/${p}/devices`,
      { 'Content-Type': 'application/json', 'X-Auth-Token': TOKEN },
      METAL_MAX_BODY_BYTES,
    );
    expect(streamed).toBe(413);
    expect(api.devices()).toEqual([]);
    expect(api.calls).toHaveLength(0);
  });

  it('a client that stalls in its head or body is cut off (408); a truncated body gets Node’s 400', async () => {
    const p = api.addProject();
    const t0 = Date.now();
    expect(await raw((s) => s.write('GET /metal/v1/projects HTTP/1.1\r\nHost: x\r\n'))).toMatch(
      /^HTTP\/1\.1 408/,
    );
    const head = `POST /metal/v1/projects/${p}/devices HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKEN}\r\nContent-Length: 100\r\n\r\n{"pl`;
    expect(await raw((s) => s.write(head))).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await raw((s) => s.write(head), { end: true })).toBe(
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n',
    );
    expect(api.calls).toHaveLength(0);
    expect((await create(api, p)).status).toBe(201);
  });

  it('odd request targets get 404 and the fake keeps serving', async () => {
    const p = api.addProject();
    for (const target of ['http://[', `//x/metal/v1/projects/${p}`, `http://h/metal/v1/projects/${p}`, '*']) {
      const got = await raw(
        (s) => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${TOKEN}\r\n\r\n`),
        {
          end: true,
        },
      );
      expect([target, got.split('\r\n')[0]]).toEqual([target, 'HTTP/1.1 404 Not Found']);
    }
    expect((await call(api, 'GET', `/projects/${p}`)).status).toBe(200);
  });

  it('close() does not wait for idle keep-alive connections', async () => {
    const agent = new http.Agent({ keepAlive: true });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${api.url}/projects/x`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(401);
    const t0 = Date.now();
    await api.close();
    expect(Date.now() - t0).toBeLessThan(1_000);
    agent.destroy();
    await expect(fetch(`${api.url}/projects/x`)).rejects.toThrow();
  });
});
