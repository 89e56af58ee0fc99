import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  FakeMetalApi,
  METAL_SDK_CHECK,
  ensureGoTool,
  execArgv,
  loadMetalSpec,
  metalSdkModuleDir,
  validateSchema,
  type MetalDevice,
  type MetalIpAssignment,
  type MetalIpReservation,
  type MetalMeta,
  type MetalSpec,
  type SchemaObject,
  type SchemaProblem,
} from '../src';

// FakeMetalApi held against the vendor's own contract: the metal/v1 OpenAPI spec shipped in
// github.com/equinix/equinix-sdk-go v0.50.0 (from the Go module cache) and that module's
// generated Go client (tools/metal-sdk). The fake's behaviour itself is pinned in
// src/metal-api.spec.ts.

jest.setTimeout(300_000); // a cold Go build cache: `go mod download` and the SDK build

const TOKEN = 'test-token';
const STRICT = { unknownProperties: 'reject' } as const;
const DEVICE = { plan: 'c3.small.x86', operating_system: 'ubuntu_22_04', metro: 'da' };

let spec: MetalSpec;

beforeAll(async () => {
  spec = loadMetalSpec(await metalSdkModuleDir());
});

interface Reply<T> {
  status: number;
  headers: Headers;
  /** The JSON body; undefined when there was none (204). */
  body: T;
}

async function call<T = Record<string, unknown>>(
  api: FakeMetalApi,
  method: string,
  path: string,
  body?: unknown,
  o: { token?: string | null } = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  const token = o.token === undefined ? TOKEN : o.token;
  if (token !== null) headers['X-Auth-Token'] = token;
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: (text === '' ? undefined : JSON.parse(text)) as T,
  };
}

const lines = (problems: SchemaProblem[]) => problems.map((p) => `${p.at}: ${p.message}`);

describe('the Metal OpenAPI spec from equinix-sdk-go', () => {
  it('bundles into one document whose every $ref resolves, with the operations the fake serves', () => {
    expect(spec.basePath).toBe('/metal/v1');
    const refs = new Set<string>();
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) return n.forEach(walk);
      if (n === null || typeof n !== 'object') return;
      for (const [k, v] of Object.entries(n)) {
        if (k === '$ref' && typeof v === 'string') refs.add(v);
        else walk(v);
      }
    };
    walk(spec.document);
    expect(refs.size).toBeGreaterThan(200);
    const unresolved = [...refs].filter((r) => {
      const [, kind, name] = r.split('/').slice(1);
      return !spec.document.components[kind as string]?.[name as string];
    });
    expect(unresolved).toEqual([]);
    const ids = (method: string, path: string) => spec.operation(method, path)?.operation.operationId;
    const id = randomUUID();
    expect([
      ids('GET', `/projects/${id}`),
      ids('POST', `/projects/${id}/devices`),
      ids('GET', `/projects/${id}/devices`),
      ids('GET', `/devices/${id}`),
      ids('PUT', `/devices/${id}`),
      ids('DELETE', `/devices/${id}`),
      ids('POST', `/devices/${id}/ips`),
      ids('GET', `/devices/${id}/ips`),
      ids('POST', `/projects/${id}/ips`),
      ids('GET', `/projects/${id}/ips`),
      ids('GET', `/ips/${id}`),
      ids('DELETE', `/ips/${id}`),
    ]).toEqual([
      'findProjectById',
      'createDevice',
      'findProjectDevices',
      'findDeviceById',
      'updateDevice',
      'deleteDevice',
      'createIPAssignment',
      'findIPAssignments',
      'requestIPReservation',
      'findIPReservations',
      'findIPAddressById',
      'deleteIPAddress',
    ]);
    expect(spec.operation('GET', '/no/such/thing')).toBeUndefined();
  });

  describe('the validator', () => {
    const defs: Record<string, SchemaObject> = {
      Href: { type: 'object', required: ['href'], properties: { href: { type: 'string' } } },
      Named: { type: 'object', properties: { name: { type: 'string' } } },
    };
    const resolveRef = (ref: string): SchemaObject => {
      const s = defs[ref.replace('#/components/schemas/', '')];
      if (!s) throw new Error(`no ${ref}`);
      return s;
    };
    const check = (schema: SchemaObject, value: unknown, strict = false) =>
      lines(validateSchema(schema, value, resolveRef, strict ? STRICT : {}));
    const obj = (properties: Record<string, SchemaObject>, more: SchemaObject = {}): SchemaObject => ({
      type: 'object',
      properties,
      ...more,
    });

    it.each<[string, SchemaObject, unknown, string[]]>([
      ['a wrong type', { type: 'integer' }, 'x', ['/: expected integer, got string']],
      ['a fraction for an integer', { type: 'integer' }, 1.5, ['/: expected integer, got number']],
      ['an integer for a number', { type: 'number' }, 2, []],
      [
        'a missing required field',
        obj({ id: { type: 'string' } }, { required: ['id'] }),
        {},
        ["/: missing required property 'id'"],
      ],
      ['a bad enum value', { type: 'string', enum: ['a', 'b'] }, 'c', ['/: "c" is not one of "a", "b"']],
      ['a bad uuid', { type: 'string', format: 'uuid' }, 'abc', ['/: "abc" is not a valid uuid']],
      [
        'a bad date-time',
        { type: 'string', format: 'date-time' },
        '2024-05-01 10:00',
        ['/: "2024-05-01 10:00" is not a valid date-time'],
      ],
      ['a good date-time', { type: 'string', format: 'date-time' }, '2024-05-01T10:00:00.5+02:00', []],
      [
        'an int32 overflow',
        { type: 'integer', format: 'int32' },
        2 ** 31,
        ['/: 2147483648 is out of the int32 range'],
      ],
      ['null where not nullable', { type: 'string' }, null, ['/: null where the schema is not nullable']],
      ['null where nullable', { type: 'string', nullable: true }, null, []],
      [
        'a nested path',
        obj({ items: { type: 'array', items: { $ref: '#/components/schemas/Href' } } }),
        { items: [{ href: 'a' }, {}] },
        ["/items/1: missing required property 'href'"],
      ],
      [
        'additionalProperties: false',
        obj({ a: { type: 'string' } }, { additionalProperties: false }),
        { a: 'x', b: 1 },
        ["/b: property 'b' is not in the schema"],
      ],
      [
        'an additionalProperties schema',
        { type: 'object', additionalProperties: { type: 'integer' } },
        { a: 1, b: 'x' },
        ['/b: expected integer, got string'],
      ],
      [
        'allOf: every part',
        { allOf: [{ $ref: '#/components/schemas/Href' }, obj({ n: { type: 'integer' } })] },
        { n: 'x' },
        ["/: missing required property 'href'", '/n: expected integer, got string'],
      ],
      [
        'oneOf: two match',
        { oneOf: [{ $ref: '#/components/schemas/Named' }, { $ref: '#/components/schemas/Href' }] },
        { href: 'a' },
        ['/: matches 2 of the oneOf schemas, must match exactly one'],
      ],
      [
        'oneOf: none matches',
        { oneOf: [{ type: 'string' }, { type: 'integer' }] },
        true,
        [
          '/: matches none of the oneOf schemas; the closest (1 problems) says:',
          '/: expected string, got boolean',
        ],
      ],
      ['anyOf: one is enough', { anyOf: [{ type: 'string' }, { type: 'boolean' }] }, true, []],
    ])('%s', (_, schema, value, expected) => {
      expect(check(schema, value)).toEqual(expected);
    });

    it('strict mode refuses properties a schema does not list, but knows allOf siblings and free-form objects', () => {
      const named = { $ref: '#/components/schemas/Named' };
      expect(check(named, { name: 'a', nmae: 'typo' })).toEqual([]);
      expect(check(named, { name: 'a', nmae: 'typo' }, true)).toEqual([
        "/nmae: property 'nmae' is not in the schema",
      ]);
      expect(
        check({ allOf: [named, { $ref: '#/components/schemas/Href' }] }, { name: 'a', href: 'b' }, true),
      ).toEqual([]);
      expect(check(obj({ data: { type: 'object' } }), { data: { anything: 1 } }, true)).toEqual([]);
      expect(check(obj({ a: { type: 'string' } }, { additionalProperties: true }), { b: 1 }, true)).toEqual(
        [],
      );
    });

    it('catches deliberately broken fake answers against the real Device, Meta and IPReservation schemas', async () => {
      const api = await FakeMetalApi.start();
      try {
        const p = api.addProject();
        const device = (await call<MetalDevice>(api, 'POST', `/projects/${p}/devices`, DEVICE)).body;
        const res = (
          await call<MetalIpReservation>(api, 'POST', `/projects/${p}/ips`, {
            type: 'public_ipv4',
            quantity: 1,
            metro: 'da',
          })
        ).body;
        const list = (await call<{ meta: MetalMeta }>(api, 'GET', `/projects/${p}/devices?per_page=1`)).body;
        const deviceOk = (d: unknown) =>
          lines(spec.checkResponse('GET', `/devices/${device.id}`, 200, d, STRICT));
        expect(deviceOk(device)).toEqual([]);
        const [first, ...rest] = device.ip_addresses;
        expect(deviceOk({ ...device, state: 'booting' })[0]).toMatch(
          /^\/state: "booting" is not one of "queued"/,
        );
        expect(deviceOk({ ...device, id: 'dev-1' })).toEqual(['/id: "dev-1" is not a valid uuid']);
        expect(deviceOk({ ...device, created_at: 'yesterday' })).toEqual([
          '/created_at: "yesterday" is not a valid date-time',
        ]);
        expect(deviceOk({ ...device, ip_addresses: [{ ...first, cidr: '31' }, ...rest] })).toEqual([
          '/ip_addresses/0/cidr: expected integer, got string',
        ]);
        expect(deviceOk({ ...device, public_ipv4: '203.0.113.1' })).toEqual([
          "/public_ipv4: property 'public_ipv4' is not in the schema",
        ]);
        expect(deviceOk({ ...device, tags: null })).toEqual(['/tags: null where the schema is not nullable']);
        const listOk = (m: unknown) =>
          lines(spec.checkResponse('GET', `/projects/${p}/devices`, 200, { devices: [], meta: m }, STRICT));
        expect(listOk(list.meta)).toEqual([]);
        expect(listOk({ ...list.meta, next: {} })).toEqual(["/meta/next: missing required property 'href'"]);
        expect(listOk({ ...list.meta, next: null })).toEqual([
          '/meta/next: null where the schema is not nullable',
        ]);
        expect(listOk({ ...list.meta, total: '2' })).toEqual(['/meta/total: expected integer, got string']);
        // IPReservation says additionalProperties: false — an unknown field fails even without strict mode,
        // and then neither branch of the 201's oneOf fits.
        const resOk = (r: unknown) => lines(spec.checkResponse('POST', `/projects/${p}/ips`, 201, r));
        expect(resOk(res)).toEqual([]);
        const extra = resOk({ ...res, quantity: 1 });
        expect(extra[0]).toMatch(/^\/: matches none of the oneOf schemas/);
        expect(extra).toContain("/quantity: property 'quantity' is not in the schema");
        const { type: _, ...untyped } = res;
        expect(resOk(untyped)).toContain("/: missing required property 'type'");
        expect(lines(spec.checkResponse('DELETE', `/ips/${res.id}`, 204, { errors: [] }))[0]).toMatch(
          /declares no body for 204/,
        );
        expect(lines(spec.checkResponse('GET', `/ips/${res.id}`, 418, {}))[0]).toMatch(
          /^\/: status 418 is not declared for findIPAddressById/,
        );
      } finally {
        await api.close();
      }
    });
  });
});

describe('FakeMetalApi against the spec', () => {
  let api: FakeMetalApi;
  let clock = Date.parse('2026-02-01T08:00:00Z');
  beforeEach(async () => {
    api = await FakeMetalApi.start({
      now: () => clock,
      durations: { queuedMs: 1000, provisioningMs: 4000, deprovisioningMs: 2000 },
      capacity: { 'm3.large.x86': 1 },
      rateLimit: { limit: 500, windowMs: 60_000 },
    });
  });
  afterEach(() => api?.close());

  it('serves or refuses with 501 exactly the methods the spec has on the paths it models', () => {
    const byTemplate = new Map<string, string[]>();
    for (const op of api.operations)
      byTemplate.set(op.template, [...(byTemplate.get(op.template) ?? []), op.method]);
    for (const [template, methods] of byTemplate) {
      expect([template, [...methods].sort()]).toEqual([template, [...spec.methodsOf(template)].sort()]);
    }
    expect(byTemplate.size).toBe(6);
  });

  it('every modelled operation answers each status the spec declares for it, with a body that fits its schema', async () => {
    /** (operation, status) → the problems of each answer; every answer is checked in strict mode. */
    const seen = new Map<string, Set<number>>();
    const problems: string[] = [];
    async function hit<T = Record<string, unknown>>(method: string, path: string, body?: unknown, o = {}) {
      const r = await call<T>(api, method, path, body, o);
      const bare = path.split('?')[0] as string;
      const found = spec.operation(method, bare);
      const key = `${method} ${found?.template ?? bare}`;
      seen.set(key, (seen.get(key) ?? new Set()).add(r.status));
      for (const line of lines(spec.checkResponse(method, bare, r.status, r.body, STRICT))) {
        problems.push(`${key} → ${r.status} ${line}`);
      }
      return r;
    }
    const forbidden = (method: string, path: string) => api.inject({ method, path, status: 403 });
    const nobody = randomUUID();
    const p = api.addProject({ ipQuota: 2 });
    const keyless = api.addProject({ sshKeys: 0 });

    // Projects.
    await hit('GET', `/projects/${p}`);
    await hit('GET', `/projects/${nobody}`);
    await hit('GET', `/projects/${p}`, undefined, { token: null });
    forbidden('GET', `/projects/${p}`);
    await hit('GET', `/projects/${p}`);

    // Devices: create, list in pages with the tag filter, states on the clock.
    const created: MetalDevice[] = [];
    for (let i = 0; i < 12; i++) {
      created.push(
        (await hit<MetalDevice>('POST', `/projects/${p}/devices`, { ...DEVICE, tags: ['tour'] })).body,
      );
    }
    const { metro: _, ...noMetro } = DEVICE;
    await hit('POST', `/projects/${p}/devices`, { ...noMetro, facility: ['sv15'], billing_cycle: 'daily' });
    await hit('POST', `/projects/${p}/devices`, { operating_system: 'ubuntu_22_04' });
    await hit('POST', `/projects/${keyless}/devices`, DEVICE);
    await hit('POST', `/projects/${nobody}/devices`, DEVICE);
    await hit('POST', `/projects/${p}/devices`, DEVICE, { token: 'wrong' });
    forbidden('POST', `/projects/${p}/devices`);
    await hit('POST', `/projects/${p}/devices`, DEVICE);
    const pages = [];
    for (const q of ['?tag=tour', '?tag=tour&page=2', '?tag=tour&per_page=5&page=9', '?per_page=20']) {
      pages.push(
        (await hit<{ devices: MetalDevice[] }>('GET', `/projects/${p}/devices${q}`)).body.devices.length,
      );
    }
    expect(pages).toEqual([10, 2, 0, 13]);
    await hit('GET', `/projects/${nobody}/devices`);
    await hit('GET', `/projects/${p}/devices`, undefined, { token: null });
    forbidden('GET', `/projects/${p}/devices`);
    await hit('GET', `/projects/${p}/devices`);
    const d = created[0] as MetalDevice;
    const states = [];
    for (const ms of [0, 2000, 3000]) {
      clock += ms;
      states.push((await hit<MetalDevice>('GET', `/devices/${d.id}`)).body.state);
    }
    expect(states).toEqual(['queued', 'provisioning', 'active']);
    api.failNextDevices(1);
    const failed = (await hit<MetalDevice>('POST', `/projects/${p}/devices`, DEVICE)).body;
    clock += 5000;
    await hit('GET', `/devices/${failed.id}`);
    await hit('GET', `/devices/${nobody}`);
    await hit('GET', `/devices/${d.id}`, undefined, { token: null });
    await hit('PUT', `/devices/${d.id}`, { hostname: 'renamed', tags: ['tour', 'cp'], locked: false });
    await hit('PUT', `/devices/${d.id}`, { tags: 'cp' });
    await hit('PUT', `/devices/${failed.id}`, { hostname: 'x' });
    await hit('PUT', `/devices/${nobody}`, { hostname: 'x' });
    await hit('PUT', `/devices/${d.id}`, { hostname: 'x' }, { token: null });

    // IP reservations and assignments.
    const res = (
      await hit<MetalIpReservation>('POST', `/projects/${p}/ips`, {
        type: 'public_ipv4',
        quantity: 2,
        metro: 'da',
        tags: ['eip'],
      })
    ).body;
    const pending = (
      await hit<MetalIpReservation>('POST', `/projects/${p}/ips`, {
        type: 'public_ipv4',
        quantity: 1,
        metro: 'da',
      })
    ).body;
    expect([res.state, pending.state]).toEqual(['created', 'pending']);
    await hit('POST', `/projects/${p}/ips`, {
      type: 'global_ipv4',
      quantity: 1,
      fail_on_approval_required: true,
    });
    await hit('POST', `/projects/${nobody}/ips`, { type: 'global_ipv4', quantity: 1 });
    await hit('POST', `/projects/${p}/ips`, { type: 'global_ipv4', quantity: 1 }, { token: null });
    forbidden('POST', `/projects/${p}/ips`);
    await hit('POST', `/projects/${p}/ips`, { type: 'global_ipv4', quantity: 1 });
    await hit('GET', `/projects/${p}/ips?types=public_ipv4&per_page=1`);
    await hit('GET', `/projects/${nobody}/ips`);
    await hit('GET', `/projects/${p}/ips`, undefined, { token: null });
    forbidden('GET', `/projects/${p}/ips`);
    await hit('GET', `/projects/${p}/ips`);
    const assigned = (
      await hit<MetalIpAssignment>('POST', `/devices/${d.id}/ips`, { address: `${res.address}/32` })
    ).body;
    await hit('POST', `/devices/${d.id}/ips`, { address: `${res.address}/32` });
    await hit('POST', `/devices/${nobody}/ips`, { address: `${res.address}/32` });
    await hit('POST', `/devices/${d.id}/ips`, { address: `${res.address}/32` }, { token: null });
    await hit('GET', `/devices/${d.id}/ips`);
    await hit('GET', `/devices/${nobody}/ips`);
    await hit('GET', `/devices/${d.id}/ips`, undefined, { token: null });
    await hit('GET', `/devices/${d.id}`);
    for (const id of [res.id, pending.id, assigned.id, d.ip_addresses[0]?.id]) await hit('GET', `/ips/${id}`);
    await hit('GET', `/ips/${nobody}`);
    await hit('GET', `/ips/${res.id}`, undefined, { token: null });
    forbidden('GET', `/ips/${res.id}`);
    await hit('GET', `/ips/${res.id}`);
    await hit('GET', `/projects/${p}/ips`);
    await hit('DELETE', `/ips/${assigned.id}`);
    await hit('DELETE', `/ips/${d.ip_addresses[0]?.id}`);
    await hit('DELETE', `/ips/${res.id}`);
    await hit('DELETE', `/ips/${nobody}`);
    await hit('DELETE', `/ips/${pending.id}`, undefined, { token: null });

    // Deletes.
    await hit('PUT', `/devices/${d.id}`, { locked: true });
    await hit('DELETE', `/devices/${d.id}`);
    await hit('PUT', `/devices/${d.id}`, { locked: false });
    await hit('DELETE', `/devices/${d.id}?force_delete=true`);
    await hit('GET', `/devices/${d.id}`);
    await hit('DELETE', `/devices/${failed.id}`);
    await hit('DELETE', `/devices/${nobody}`);
    await hit('DELETE', `/devices/${d.id}`, undefined, { token: null });
    clock += 2000;
    await hit('GET', `/devices/${d.id}`);

    expect(problems).toEqual([]);
    const modelled = api.operations.filter((o) => o.modelled);
    const coverage = Object.fromEntries(
      modelled.map((o) => [
        `${o.method} ${o.template}`,
        [...(seen.get(`${o.method} ${o.template}`) ?? [])].sort(),
      ]),
    );
    const declared = Object.fromEntries(
      modelled.map((o) => [
        `${o.method} ${o.template}`,
        spec.declaredStatuses(o.method, o.template.replace('{id}', nobody)).sort(),
      ]),
    );
    expect(coverage).toEqual(declared);
    expect(Object.keys(coverage)).toHaveLength(12);
  });

  it('429, 500 and 503 are not declared by the spec for these operations; their bodies still fit its Error schema', async () => {
    const p = api.addProject();
    const errorSchema = spec.schema('Error');
    const answers: Reply<unknown>[] = [];
    api.inject({ method: 'GET', status: 429 });
    answers.push(await call(api, 'GET', `/projects/${p}`));
    api.inject({ method: 'POST', status: 500, after: true });
    answers.push(await call(api, 'POST', `/projects/${p}/devices`, { ...DEVICE, plan: 'm3.large.x86' }));
    answers.push(await call(api, 'POST', `/projects/${p}/devices`, { ...DEVICE, plan: 'm3.large.x86' }));
    api.inject({ path: /^\/ips\//, status: 503 });
    answers.push(await call(api, 'GET', `/ips/${randomUUID()}`));
    answers.push(await call(api, 'GET', '/no/such/route'));
    answers.push(await call(api, 'PATCH', `/ips/${randomUUID()}`, {}));
    expect(answers.map((a) => a.status)).toEqual([429, 500, 503, 503, 404, 501]);
    expect(answers.map((a) => lines(spec.validate(errorSchema, a.body, STRICT)))).toEqual(
      answers.map(() => []),
    );
    expect(lines(spec.checkResponse('GET', `/projects/${p}`, 429, answers[0]?.body))[0]).toMatch(
      /status 429 is not declared for findProjectById/,
    );
    const budget = await FakeMetalApi.start({ rateLimit: { limit: 1, windowMs: 60_000 } });
    try {
      const q = budget.addProject();
      await call(budget, 'GET', `/projects/${q}`);
      const over = await call(budget, 'GET', `/projects/${q}`);
      expect(over.status).toBe(429);
      expect(lines(spec.validate(errorSchema, over.body, STRICT))).toEqual([]);
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      await budget.close();
    }
  });

  it('bodies the fake accepts fit the spec’s request schemas; bodies it refuses for their shape do not', async () => {
    const p = api.addProject();
    const d = (await call<MetalDevice>(api, 'POST', `/projects/${p}/devices`, DEVICE)).body;
    const r = (
      await call<MetalIpReservation>(api, 'POST', `/projects/${p}/ips`, {
        type: 'public_ipv4',
        quantity: 1,
        metro: 'da',
      })
    ).body;
    const { metro: _, ...noMetro } = DEVICE;
    const cases: [path: string, body: Record<string, unknown>, accepted: boolean][] = [
      [
        `/projects/${p}/devices`,
        { ...DEVICE, hostname: 'a', tags: ['t'], billing_cycle: 'hourly', userdata: '' },
        true,
      ],
      [`/projects/${p}/devices`, { ...noMetro, facility: ['da11', 'any'] }, true],
      [
        `/projects/${p}/devices`,
        { ...DEVICE, ip_addresses: [{ address_family: 4, public: false }], no_ssh_keys: true },
        true,
      ],
      [
        `/projects/${p}/devices`,
        { ...DEVICE, ssh_keys: [{ label: 'k', key: 'ssh-ed25519 AAAA' }], locked: true },
        true,
      ],
      [`/projects/${p}/devices`, { operating_system: 'ubuntu_22_04', metro: 'da' }, false],
      [`/projects/${p}/devices`, { plan: 'c3.small.x86', metro: 'da' }, false],
      [`/projects/${p}/devices`, noMetro, false],
      [`/projects/${p}/devices`, { ...DEVICE, facility: ['da11'] }, false],
      [`/projects/${p}/devices`, { ...DEVICE, billing_cycle: 'weekly' }, false],
      [`/projects/${p}/devices`, { ...DEVICE, tags: 'a' }, false],
      [`/projects/${p}/devices`, { ...DEVICE, locked: 'yes' }, false],
      [`/projects/${p}/devices`, { ...DEVICE, project_ssh_keys: ['not-a-uuid'] }, false],
      [
        `/projects/${p}/ips`,
        { type: 'public_ipv4', quantity: 1, metro: 'da', tags: ['a'], details: 'x' },
        true,
      ],
      [`/projects/${p}/ips`, { type: 'public_ipv4', metro: 'da' }, false],
      [`/projects/${p}/ips`, { quantity: 1, metro: 'da' }, false],
      [`/projects/${p}/ips`, { type: 'public_ipv4', quantity: '1', metro: 'da' }, false],
      [`/devices/${d.id}/ips`, { address: `${r.address}/32` }, true],
      [`/devices/${d.id}/ips`, { customdata: {} }, false],
      [`/devices/${d.id}/ips`, { address: 7 }, false],
    ];
    const verdicts = [];
    for (const [path, body] of cases) {
      const fake = (await call(api, 'POST', path, body)).status;
      verdicts.push([path, body, fake < 300, spec.checkRequest('POST', path, body).length === 0]);
    }
    expect(verdicts).toEqual(cases.map(([path, body, ok]) => [path, body, ok, ok]));
    const put = { hostname: 'h', description: 'd', tags: ['x'], customdata: { a: 1 }, always_pxe: true };
    expect(spec.checkRequest('PUT', `/devices/${d.id}`, put, STRICT)).toEqual([]);
    expect((await call(api, 'PUT', `/devices/${d.id}`, put)).status).toBe(200);
  });
});

describe('equinix-sdk-go’s own client against FakeMetalApi', () => {
  let api: FakeMetalApi | undefined;
  afterAll(() => api?.close());

  it('creates 12 tagged devices, lists them by tag over every page, waits, reserves and assigns an IP, deletes — green', async () => {
    const tool = await ensureGoTool(METAL_SDK_CHECK, (l) => process.stderr.write(`metal-sdk: ${l}\n`));
    api = await FakeMetalApi.start({
      durations: { queuedMs: 100, provisioningMs: 300, deprovisioningMs: 200 },
    });
    const p = api.addProject();
    const run = await execArgv([tool.bin['metal-sdk'], '-url', api.url, '-project', p, '-timeout', '60s'], {
      env: { ...process.env, METAL_AUTH_TOKEN: TOKEN },
      timeoutMs: 90_000,
      check: false,
    });
    expect([run.exitCode, run.stderr]).toEqual([0, '']);
    const summary = JSON.parse(run.stdout) as Record<string, unknown>;
    const device = summary['device'] as string;
    const reservation = summary['reservation'] as string;
    expect(summary).toEqual({
      created: 12,
      createdStates: ['queued'],
      addressesAtCreate: 3,
      rejectedStatus: 422,
      rejectedErrors: ["plan 'no.such.plan' is not a valid plan"],
      listedByTag: 12,
      listedByTagPerPage5: 12,
      outsiderListed: false,
      device,
      activeAfterPolls: expect.any(Number),
      hostname: 'sdk-renamed',
      reservation,
      reservationAddress: '198.51.100.0',
      reservationState: 'created',
      assignment: expect.any(String),
      assignedAddress: '198.51.100.0',
      reservationsListed: 1,
      assignmentsOnReservation: 1,
      deviceAddresses: 4,
      lookedUpKinds: ['*metalv1.IPReservation', '*metalv1.IPAssignment'],
      deletedDevice: device,
      reservationGoneStatus: 404,
    });
    expect(summary['activeAfterPolls']).toBeGreaterThan(1);

    // What the SDK sent, as the fake logged it.
    const calls = api.calls;
    const lists = calls
      .filter((c) => c.method === 'GET' && c.path === `/projects/${p}/devices`)
      .map((c) => c.query);
    expect(lists).toEqual([
      { page: '1', tag: 'knet-sdk-check' },
      { page: '2', tag: 'knet-sdk-check' },
      { page: '1', per_page: '5', tag: 'knet-sdk-check' },
      { page: '2', per_page: '5', tag: 'knet-sdk-check' },
      { page: '3', per_page: '5', tag: 'knet-sdk-check' },
    ]);
    const creates = calls.filter((c) => c.method === 'POST' && c.path === `/projects/${p}/devices`);
    expect(creates.map((c) => c.status)).toEqual([...Array<number>(13).fill(201), 422]);
    // The SDK sends its models' defaults too (always_pxe, locked, no_ssh_keys, an empty reservation id).
    expect(creates[0]?.body).toEqual({
      always_pxe: false,
      hardware_reservation_id: '',
      locked: false,
      no_ssh_keys: false,
      hostname: 'sdk-00',
      metro: 'da',
      plan: 'c3.small.x86',
      operating_system: 'ubuntu_22_04',
      billing_cycle: 'hourly',
      tags: ['knet-sdk-check', 'index:0'],
      userdata: '#cloud-config\n{}\n',
    });
    expect(calls.find((c) => c.method === 'DELETE' && c.path === `/devices/${device}`)?.query).toEqual({
      force_delete: 'true',
    });
    expect(
      calls.filter((c) => c.method === 'POST' && c.path === `/projects/${p}/ips`).map((c) => c.body),
    ).toEqual([
      {
        type: 'public_ipv4',
        quantity: 1,
        metro: 'da',
        tags: ['knet-sdk-check', 'eip'],
        fail_on_approval_required: true,
      },
    ]);
    expect(calls.filter((c) => c.status >= 400).map((c) => [c.method, c.status])).toEqual([
      ['POST', 422],
      ['GET', 404],
    ]);
    expect(JSON.stringify(calls)).not.toContain(TOKEN);
    // The fake's state agrees: 13 devices (one deprovisioning or gone), the reservation gone.
    const left = api.devices();
    expect(left.filter((x) => x.id !== device)).toHaveLength(12);
    expect(left.find((x) => x.id === device)?.state ?? 'gone').toMatch(/^(deprovisioning|gone)$/);
    expect(api.reservations()).toEqual([]);
  });

  it('fails (exit 1, one line naming the call) when an answer breaks the spec: the SDK check is not vacuous', async () => {
    const tool = await ensureGoTool(METAL_SDK_CHECK);
    const fake = await FakeMetalApi.start({ durations: { queuedMs: 50, provisioningMs: 50 } });
    const broken: [what: RegExp, mutate: Mutation][] = [
      [
        /^metal-sdk: requestIPReservation: /,
        (m, path, b) => (m === 'POST' && path.endsWith('/ips') ? { ...b, quantity: 1 } : b),
      ],
      [
        /^metal-sdk: findDeviceById: /,
        (m, path, b) => (m === 'GET' && path.includes('/devices/') ? { ...b, state: 'booting' } : b),
      ],
    ];
    try {
      for (const [what, mutate] of broken) {
        const proxy = await rewritingProxy(fake.url, mutate);
        try {
          const run = await execArgv(
            [tool.bin['metal-sdk'], '-url', proxy.url, '-project', fake.addProject()],
            {
              env: { ...process.env, METAL_AUTH_TOKEN: TOKEN },
              timeoutMs: 60_000,
              check: false,
            },
          );
          expect([run.exitCode, run.stdout]).toEqual([1, '']);
          expect(run.stderr).toMatch(what);
          expect(run.stderr.trim().split('\n')).toHaveLength(1);
          expect(run.stderr).not.toContain(TOKEN);
        } finally {
          await proxy.close();
        }
      }
    } finally {
      await fake.close();
    }
  });
});

type Mutation = (method: string, path: string, body: Record<string, unknown>) => Record<string, unknown>;

/** A loopback proxy in front of `base` that passes each JSON answer through `mutate`. */
async function rewritingProxy(
  base: string,
  mutate: Mutation,
): Promise<{ url: string; close(): Promise<void> }> {
  const origin = new URL(base).origin;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      const token = req.headers['x-auth-token'];
      if (typeof token === 'string') headers['X-Auth-Token'] = token;
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      fetch(`${origin}${req.url ?? '/'}`, { method: req.method ?? 'GET', headers, ...(body ? { body } : {}) })
        .then(async (up) => {
          const text = await up.text();
          const path = (req.url ?? '/').split('?')[0] as string;
          const out = text === '' ? '' : JSON.stringify(mutate(req.method ?? 'GET', path, JSON.parse(text)));
          res.writeHead(up.status, {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(out),
          });
          res.end(out);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${new URL(base).pathname}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
