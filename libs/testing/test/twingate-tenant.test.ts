import http from 'node:http';
import type net from 'node:net';
import { buildSchema, parse, validate } from 'graphql';
import {
  FakeTwingateTenant,
  TENANT_MAX_BODY_BYTES,
  TWINGATE_SDL,
  postStreamed,
  rawExchange,
  sleep,
  type FakeTenantOptions,
} from '../src';

// The fake tenant through raw HTTP, as a client sees it.

interface GqlError {
  message: string;
  path?: (string | number)[];
  locations?: { line: number; column: number }[];
}

interface Answer<T> {
  status: number;
  headers: Headers;
  body: { data?: T; errors?: GqlError[]; error?: string };
}

interface Page<T> {
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { cursor: string; node: T }[];
}

interface ConnectorNode {
  id: string;
  name: string;
  state: string;
  remoteNetwork: { id: string; name: string };
  hasStatusNotificationsEnabled: boolean;
  hostname: string | null;
  version: string | null;
  publicIP: string | null;
  privateIPs: string[];
  lastHeartbeatAt: string | null;
  createdAt: string;
  updatedAt: string;
}

interface Payload {
  ok: boolean;
  error: string | null;
}

type EntityPayload<T> = Payload & { entity: T | null };
type Tokens = { accessToken: string; refreshToken: string };

const CONNECTOR_FIELDS = `id name state remoteNetwork { id name } hasStatusNotificationsEnabled hostname version
  publicIP privateIPs lastHeartbeatAt createdAt updatedAt`;

const LAB = 'UmVtb3RlTmV0d29yazox'; // RemoteNetwork:1
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function gql<T>(
  base: string,
  query: string,
  variables?: Record<string, unknown>,
  o: {
    key?: string | null;
    operationName?: string;
    redirect?: 'follow' | 'manual';
    signal?: AbortSignal;
  } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'User-Agent': 'knet-test' };
  const key = o.key === undefined ? 'test-key' : o.key;
  if (key !== null) headers['X-API-KEY'] = key;
  const res = await fetch(`${base}/api/graphql/`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables, operationName: o.operationName }),
    redirect: o.redirect ?? 'follow',
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === '' ? {} : (JSON.parse(text) as Answer<T>['body']),
  };
}

async function post(url: string, body: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
  await res.arrayBuffer();
  return res.status;
}

const tokenCheck = (base: string, path: string, t: Tokens) =>
  post(`${base}${path}`, JSON.stringify({ refresh_token: t.refreshToken }), {
    Authorization: `Bearer ${t.accessToken}`,
  });

function generate(base: string, id: string, key?: string) {
  return gql<{ connectorGenerateTokens: Payload & { connectorTokens: Tokens | null } }>(
    base,
    'mutation T($connectorId: ID!) { connectorGenerateTokens(connectorId: $connectorId) { ok error connectorTokens { accessToken refreshToken } } }',
    { connectorId: id },
    key === undefined ? {} : { key },
  );
}

function create(base: string, vars: Record<string, unknown> = { remoteNetworkId: LAB }, key?: string) {
  return gql<{ connectorCreate: EntityPayload<ConnectorNode> | null }>(
    base,
    `mutation C($remoteNetworkId: ID!, $name: String, $hasStatusNotificationsEnabled: Boolean) {
      connectorCreate(remoteNetworkId: $remoteNetworkId, name: $name, hasStatusNotificationsEnabled: $hasStatusNotificationsEnabled) {
        ok error entity { ${CONNECTOR_FIELDS} } } }`,
    vars,
    key === undefined ? {} : { key },
  );
}

/** A tenant per test, stopped after it even when the test failed half-way. */
function tenantPerTest(opts: FakeTenantOptions = {}): () => FakeTwingateTenant {
  let tenant: FakeTwingateTenant | undefined;
  beforeEach(async () => {
    tenant = await FakeTwingateTenant.start(opts);
  });
  afterEach(async () => {
    await tenant?.stop();
    tenant = undefined;
  });
  return () => tenant!;
}

describe('FakeTwingateTenant queries', () => {
  const tenant = tenantPerTest({ networks: ['lab', 'edge'], limits: false });

  it('remoteNetworks lists the networks, filtered by name', async () => {
    const all = await gql<{ remoteNetworks: Page<{ id: string; name: string }> }>(
      tenant().url,
      '{ remoteNetworks { pageInfo { hasNextPage endCursor } edges { cursor node { id name } } } }',
    );
    expect(all.status).toBe(200);
    expect(all.body.data?.remoteNetworks.edges.map((e) => e.node)).toEqual([
      { id: LAB, name: 'lab' },
      { id: b64('RemoteNetwork:2'), name: 'edge' },
    ]);
    expect(all.body.data?.remoteNetworks.pageInfo.hasNextPage).toBe(false);
    const one = await gql<{ remoteNetworks: Page<{ id: string; name: string }> }>(
      tenant().url,
      'query N($name: String!) { remoteNetworks(filter: { name: { eq: $name } }) { edges { node { id name } } } }',
      { name: 'edge' },
    );
    expect(one.body.data?.remoteNetworks.edges.map((e) => e.node.name)).toEqual(['edge']);
  });

  it('remoteNetwork by id or by name, with its connectors; null when there is none', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    tenant().addConnector({ network: 'edge', name: 'b' });
    const q = `query R($id: ID, $name: String) { remoteNetwork(id: $id, name: $name) {
      id name connectors { pageInfo { hasNextPage } edges { node { id name state } } } } }`;
    type R = {
      remoteNetwork: { id: string; name: string; connectors: Page<{ id: string; name: string }> } | null;
    };
    for (const vars of [{ id: LAB }, { name: 'lab' }]) {
      const r = await gql<R>(tenant().url, q, vars);
      expect(r.body.data?.remoteNetwork).toEqual({
        id: LAB,
        name: 'lab',
        connectors: {
          pageInfo: { hasNextPage: false },
          edges: [{ node: { id: a.id, name: 'a', state: 'DEAD_NO_HEARTBEAT' } }],
        },
      });
    }
    expect((await gql<R>(tenant().url, q, { name: 'nope' })).body.data).toEqual({ remoteNetwork: null });
    expect((await gql<R>(tenant().url, q, { id: b64('RemoteNetwork:99') })).body.data).toEqual({
      remoteNetwork: null,
    });
  });

  it('connectors lists the whole tenant in creation order, filtered by name; connector(id) has every field', async () => {
    const made = ['c', 'a', 'b'].map((name, i) =>
      tenant().addConnector({
        network: i === 1 ? 'edge' : 'lab',
        name,
        createdAt: new Date('2024-05-01T10:00:00Z'),
      }),
    );
    tenant().markAlive(made[0]!.id);
    const list = await gql<{ connectors: Page<ConnectorNode> }>(
      tenant().url,
      `{ connectors { edges { node { ${CONNECTOR_FIELDS} } } } }`,
    );
    const nodes = list.body.data!.connectors.edges.map((e) => e.node);
    expect(nodes.map((n) => [n.name, n.remoteNetwork.name, n.state])).toEqual([
      ['c', 'lab', 'ALIVE'],
      ['a', 'edge', 'DEAD_NO_HEARTBEAT'],
      ['b', 'lab', 'DEAD_NO_HEARTBEAT'],
    ]);
    expect(nodes[1]).toEqual({
      id: b64('Connector:2'),
      name: 'a',
      state: 'DEAD_NO_HEARTBEAT',
      remoteNetwork: { id: b64('RemoteNetwork:2'), name: 'edge' },
      hasStatusNotificationsEnabled: true,
      hostname: null,
      version: null,
      publicIP: null,
      privateIPs: [],
      lastHeartbeatAt: null,
      createdAt: '2024-05-01T10:00:00.000000+00:00',
      updatedAt: '2024-05-01T10:00:00.000000+00:00',
    });
    expect(Date.parse(nodes[0]!.lastHeartbeatAt!)).toBeGreaterThan(Date.parse('2024-05-01T10:00:00Z'));
    const filtered = await gql<{ connectors: Page<{ name: string }> }>(
      tenant().url,
      '{ connectors(filter: { name: { eq: "b" } }) { edges { node { name } } } }',
    );
    expect(filtered.body.data?.connectors.edges).toEqual([{ node: { name: 'b' } }]);
    const one = await gql<{ connector: ConnectorNode | null }>(
      tenant().url,
      `query C($id: ID!) { connector(id: $id) { ${CONNECTOR_FIELDS} } }`,
      { id: made[1]!.id },
    );
    expect(one.body.data?.connector).toEqual(nodes[1]);
  });

  it('a well-formed unknown id is null; a malformed one is the vendor’s GraphQL error with a path', async () => {
    const q = 'query C($id: ID!) { connector(id: $id) { id } }';
    for (const id of [b64('Connector:42'), LAB]) {
      const r = await gql(tenant().url, q, { id });
      expect(r).toMatchObject({ status: 200, body: { data: { connector: null } } });
      expect(r.body.errors).toBeUndefined();
    }
    for (const id of ['not-an-id', b64('no colon here'), 'Q29ubmVjdG9yOjE']) {
      const r = await gql(tenant().url, q, { id });
      expect(r.status).toBe(200);
      expect(r.body.data).toEqual({ connector: null });
      expect(r.body.errors).toEqual([
        {
          message: "{'id': ['Unable to parse global ID']}",
          locations: [{ line: 1, column: 21 }],
          path: ['connector'],
        },
      ]);
    }
  });

  it('the string filter has the vendor’s operators (ANDed)', async () => {
    for (const name of ['alpha-1', 'alpha-2', 'beta-1']) tenant().addConnector({ network: 'lab', name });
    const names = async (filter: string) =>
      (
        await gql<{ connectors: Page<{ name: string }> }>(
          tenant().url,
          `{ connectors(filter: { name: ${filter} }) { edges { node { name } } } }`,
        )
      ).body.data?.connectors.edges.map((e) => e.node.name);
    expect(await names('{ startsWith: "alpha" }')).toEqual(['alpha-1', 'alpha-2']);
    expect(await names('{ endsWith: "-1", ne: "beta-1" }')).toEqual(['alpha-1']);
    expect(await names('{ contains: "ta" }')).toEqual(['beta-1']);
    expect(await names('{ in: ["beta-1", "alpha-2"] }')).toEqual(['alpha-2', 'beta-1']);
    expect(await names('{ regexp: "^a.*2$" }')).toEqual(['alpha-2']);
  });
});

describe('FakeTwingateTenant pagination', () => {
  const tenant = tenantPerTest({ maxPageSize: 2, defaultPageSize: 2, limits: false });

  it('pages connectors by `first`/`after` with opaque cursors until hasNextPage is false', async () => {
    for (let i = 0; i < 5; i++) tenant().addConnector({ network: 'lab', name: `c${i}` });
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const r: Answer<{ connectors: Page<{ name: string }> }> = await gql(
        tenant().url,
        'query P($after: String) { connectors(first: 2, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { name } } } }',
        { after },
      );
      const page = r.body.data!.connectors;
      pages++;
      seen.push(...page.edges.map((e) => e.node.name));
      for (const e of page.edges) expect(e.cursor).not.toContain(e.node.name);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(['c0', 'c1', 'c2', 'c3', 'c4']);
  });

  it('pages without `first` by the default size, and a network’s nested connectors too', async () => {
    for (let i = 0; i < 3; i++) tenant().addConnector({ network: 'lab', name: `c${i}` });
    type R = { remoteNetwork: { connectors: Page<{ name: string }> } };
    const q = `query P($after: String) { remoteNetwork(name: "lab") {
      connectors(after: $after) { pageInfo { hasNextPage endCursor } edges { node { name } } } } }`;
    const p1 = (await gql<R>(tenant().url, q)).body.data!.remoteNetwork.connectors;
    expect(p1.edges.map((e) => e.node.name)).toEqual(['c0', 'c1']);
    expect(p1.pageInfo.hasNextPage).toBe(true);
    const p2 = (await gql<R>(tenant().url, q, { after: p1.pageInfo.endCursor })).body.data!.remoteNetwork
      .connectors;
    expect(p2.edges.map((e) => e.node.name)).toEqual(['c2']);
    expect(p2.pageInfo.hasNextPage).toBe(false);
  });

  it('an empty last page has no endCursor', async () => {
    const r = await gql<{ connectors: Page<{ name: string }> }>(
      tenant().url,
      '{ connectors { pageInfo { hasNextPage endCursor } edges { node { name } } } }',
    );
    expect(r.body.data?.connectors).toEqual({ pageInfo: { hasNextPage: false, endCursor: null }, edges: [] });
  });

  it('`first` above maxPageSize or below 1 is a GraphQL error on that field', async () => {
    const over = await gql(tenant().url, '{ remoteNetworks(first: 3) { edges { node { id } } } }');
    expect(over.status).toBe(200);
    expect(over.body).toEqual({
      data: { remoteNetworks: null },
      errors: [
        {
          message:
            'Requesting 3 records on the `remoteNetworks` connection exceeds the `first` limit of 2 records.',
          locations: [{ line: 1, column: 3 }],
          path: ['remoteNetworks'],
        },
      ],
    });
    for (const first of [0, -1]) {
      const under = await gql(
        tenant().url,
        'query F($first: Int) { connectors(first: $first) { edges { cursor } } }',
        {
          first,
        },
      );
      expect(under.body.data).toEqual({ connectors: null });
      expect(under.body.errors?.[0]?.path).toEqual(['connectors']);
    }
  });
});

describe('FakeTwingateTenant start', () => {
  it('refuses page sizes that cannot work', async () => {
    await expect(FakeTwingateTenant.start({ maxPageSize: 10, defaultPageSize: 20 })).rejects.toThrow(
      /defaultPageSize \(20\) <= maxPageSize \(10\)/,
    );
    await expect(FakeTwingateTenant.start({ maxPageSize: 0 })).rejects.toThrow(/page sizes/);
  });

  it('the exported SDL accepts documents typed the way the vendor’s clients type them', () => {
    const doc =
      parse(`query R($filter: RemoteNetworkFilterInput, $after: String, $pageLimit: Int, $name: String!) {
      remoteNetworks(filter: $filter, after: $after, first: $pageLimit) { pageInfo { hasNextPage endCursor } edges { node { id name location networkType } } }
      remoteNetwork(name: $name) { id connectors { edges { node { id state } } } } }`);
    expect(validate(buildSchema(TWINGATE_SDL), doc)).toEqual([]);
  });
});

describe('FakeTwingateTenant mutations', () => {
  const tenant = tenantPerTest({ limits: false, now: () => Date.parse('2025-01-02T03:04:05.678Z') });

  it('connectorCreate without a name picks a free two-word one; the connector is DEAD_NO_HEARTBEAT', async () => {
    const r = await create(tenant().url);
    expect(r.status).toBe(200);
    const p = r.body.data!.connectorCreate!;
    expect(p.ok).toBe(true);
    expect(p.error).toBeNull();
    expect(p.entity).toMatchObject({
      id: b64('Connector:1'),
      state: 'DEAD_NO_HEARTBEAT',
      lastHeartbeatAt: null,
      remoteNetwork: { id: LAB, name: 'lab' },
      createdAt: '2025-01-02T03:04:05.678000+00:00',
    });
    expect(p.entity!.name).toMatch(/^[a-z]+-[a-z]+$/);
    expect(tenant().connectors()).toEqual([
      {
        id: b64('Connector:1'),
        name: p.entity!.name,
        state: 'DEAD_NO_HEARTBEAT',
        networkId: LAB,
        networkName: 'lab',
        createdAt: '2025-01-02T03:04:05.678000+00:00',
        lastHeartbeatAt: null,
        tokenGenerations: 0,
        deleted: false,
      },
    ]);
    const names = new Set([p.entity!.name]);
    for (let i = 0; i < 20; i++)
      names.add((await create(tenant().url)).body.data!.connectorCreate!.entity!.name);
    expect(names.size).toBe(21);
  });

  it('connectorCreate with a name; a used name or an unknown network is {ok: false, error}', async () => {
    const vars = { remoteNetworkId: LAB, name: 'gw-0', hasStatusNotificationsEnabled: false };
    const made = (await create(tenant().url, vars)).body.data!.connectorCreate!;
    expect(made.entity).toMatchObject({ name: 'gw-0', hasStatusNotificationsEnabled: false });
    expect((await create(tenant().url, vars)).body.data!.connectorCreate).toEqual({
      ok: false,
      error: "Connector with name 'gw-0' already exists.",
      entity: null,
    });
    const nowhere = b64('RemoteNetwork:7');
    expect((await create(tenant().url, { remoteNetworkId: nowhere })).body.data!.connectorCreate).toEqual({
      ok: false,
      error: `Field 'remoteNetworkId' RemoteNetwork with id '${nowhere}' does not exist.`,
      entity: null,
    });
    expect(tenant().connectors()).toHaveLength(1);
  });

  it('connectorUpdate renames and flips notifications; unknown ids and used names are refused', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    tenant().addConnector({ network: 'lab', name: 'b' });
    const q = `mutation U($id: ID!, $name: String, $n: Boolean) {
      connectorUpdate(id: $id, name: $name, hasStatusNotificationsEnabled: $n) { ok error entity { id name hasStatusNotificationsEnabled } } }`;
    type R = {
      connectorUpdate: EntityPayload<{ id: string; name: string; hasStatusNotificationsEnabled: boolean }>;
    };
    expect(
      (await gql<R>(tenant().url, q, { id: a.id, name: 'a2', n: false })).body.data?.connectorUpdate,
    ).toEqual({
      ok: true,
      error: null,
      entity: { id: a.id, name: 'a2', hasStatusNotificationsEnabled: false },
    });
    expect((await gql<R>(tenant().url, q, { id: a.id, name: 'b' })).body.data?.connectorUpdate).toEqual({
      ok: false,
      error: "Connector with name 'b' already exists.",
      entity: null,
    });
    const ghost = b64('Connector:9');
    expect((await gql<R>(tenant().url, q, { id: ghost, name: 'x' })).body.data?.connectorUpdate).toEqual({
      ok: false,
      error: `Field 'id' Connector with id '${ghost}' does not exist.`,
      entity: null,
    });
    expect(
      tenant()
        .connectors()
        .map((c) => c.name),
    ).toEqual(['a2', 'b']);
  });

  it('connectorDelete removes it from every query; a second delete says it does not exist', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    const del = () =>
      gql<{ connectorDelete: { ok: boolean; error: string | null } }>(
        tenant().url,
        'mutation D($id: ID!) { connectorDelete(id: $id) { ok error } }',
        { id: a.id },
      );
    expect((await del()).body.data?.connectorDelete).toEqual({ ok: true, error: null });
    expect((await del()).body.data?.connectorDelete).toEqual({
      ok: false,
      error: `Field 'id' Connector with id '${a.id}' does not exist.`,
    });
    const r = await gql<{ connector: null; connectors: Page<unknown> }>(
      tenant().url,
      'query Q($id: ID!) { connector(id: $id) { id } connectors { edges { node { id } } } }',
      { id: a.id },
    );
    expect(r.body.data).toEqual({ connector: null, connectors: { edges: [] } });
    expect(tenant().connectors()).toEqual([]);
    expect(tenant().connectors({ includeDeleted: true })).toMatchObject([{ id: a.id, deleted: true }]);
    // The name is free again.
    expect(
      (await create(tenant().url, { remoteNetworkId: LAB, name: 'a' })).body.data!.connectorCreate!.ok,
    ).toBe(true);
  });

  it('connectorGenerateTokens returns a JWT-shaped access token and a ~100-character refresh token', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    const r = await generate(tenant().url, a.id);
    expect(r.status).toBe(200);
    const p = r.body.data!.connectorGenerateTokens;
    expect(p).toMatchObject({ ok: true, error: null });
    const { accessToken, refreshToken } = p.connectorTokens!;
    const parts = accessToken.split('.');
    expect(parts).toHaveLength(3);
    for (const part of parts) expect(part).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(JSON.parse(Buffer.from(parts[0]!, 'base64url').toString())).toMatchObject({ typ: 'JWT' });
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as {
      connectorId: string;
      jti: string;
    };
    expect(payload.connectorId).toBe(a.id);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(refreshToken).toMatch(/^[A-Za-z0-9_-]{100}$/);
    expect(tenant().currentTokens(a.id)).toEqual({ accessToken, refreshToken });
    expect(tenant().connectors()[0]?.tokenGenerations).toBe(1);
    const ghost = b64('Connector:9');
    expect((await generate(tenant().url, ghost)).body.data?.connectorGenerateTokens).toEqual({
      ok: false,
      error: `Field 'connectorId' Connector with id '${ghost}' does not exist.`,
      connectorTokens: null,
    });
    const bad = await generate(tenant().url, '%%%');
    expect(bad.body.data).toEqual({ connectorGenerateTokens: null });
    expect(bad.body.errors?.[0]).toMatchObject({
      message: "{'connectorId': ['Unable to parse global ID']}",
      path: ['connectorGenerateTokens'],
    });
  });

  it('remoteNetworkCreate makes a network (defaults REGULAR, OTHER); a used name is refused', async () => {
    const q = `mutation N($name: String!, $location: RemoteNetworkLocation) {
      remoteNetworkCreate(name: $name, isActive: true, location: $location) { ok error entity { id name location networkType isActive } } }`;
    type R = { remoteNetworkCreate: EntityPayload<{ id: string; name: string }> };
    expect(
      (await gql<R>(tenant().url, q, { name: 'cloud', location: 'AWS' })).body.data?.remoteNetworkCreate,
    ).toEqual({
      ok: true,
      error: null,
      entity: {
        id: b64('RemoteNetwork:2'),
        name: 'cloud',
        location: 'AWS',
        networkType: 'REGULAR',
        isActive: true,
      },
    });
    expect((await gql<R>(tenant().url, q, { name: 'lab' })).body.data?.remoteNetworkCreate).toEqual({
      ok: false,
      error: "Remote Network with name 'lab' already exists.",
      entity: null,
    });
    expect(tenant().addConnector({ network: 'cloud' }).networkName).toBe('cloud');
  });
});

describe('FakeTwingateTenant keys and scopes', () => {
  const tenant = tenantPerTest({ keys: { r: 'read', w: 'write', p: 'provision' }, limits: false });

  it('a missing or unknown X-API-KEY is HTTP 401 with a JSON error', async () => {
    for (const key of [null, 'nope']) {
      const r = await gql(tenant().url, '{ connectors { edges { cursor } } }', undefined, { key });
      expect(r.status).toBe(401);
      expect(r.headers.get('content-type')).toBe('application/json');
      expect(r.body.error).toMatch(/API key/);
      expect(r.body.data).toBeUndefined();
    }
    expect(tenant().calls.map((c) => [c.key, c.status])).toEqual([
      ['', 401],
      ['nope', 401],
    ]);
  });

  it('a read key reads, but its mutations are refused per field (null, HTTP 200) and change nothing', async () => {
    expect(
      (await gql(tenant().url, '{ remoteNetworks { edges { cursor } } }', undefined, { key: 'r' })).status,
    ).toBe(200);
    const r = await create(tenant().url, { remoteNetworkId: LAB, name: 'x' }, 'r');
    expect(r.status).toBe(200);
    expect(r.body.data).toEqual({ connectorCreate: null });
    expect(r.body.errors).toEqual([
      {
        message: 'You do not have permission to perform this action',
        locations: [{ line: 2, column: 7 }],
        path: ['connectorCreate'],
      },
    ]);
    expect(tenant().connectors()).toEqual([]);
  });

  it('a write key creates connectors but may not generate tokens; a provision key may', async () => {
    const made = (await create(tenant().url, { remoteNetworkId: LAB }, 'w')).body.data!.connectorCreate!;
    expect(made.ok).toBe(true);
    const denied = await generate(tenant().url, made.entity!.id, 'w');
    expect(denied.body.data).toEqual({ connectorGenerateTokens: null });
    expect(denied.body.errors?.[0]).toMatchObject({
      message: 'You do not have permission to perform this action',
      path: ['connectorGenerateTokens'],
    });
    expect(tenant().currentTokens(made.entity!.id)).toBeUndefined();
    expect((await generate(tenant().url, made.entity!.id, 'p')).body.data?.connectorGenerateTokens.ok).toBe(
      true,
    );
    expect(tenant().connectors()[0]?.tokenGenerations).toBe(1);
  });
});

describe('FakeTwingateTenant token pairs', () => {
  const tenant = tenantPerTest({ limits: false });

  it('a new pair invalidates the previous one: validate_tokens and heartbeat refuse it', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    const old = (await generate(tenant().url, a.id)).body.data!.connectorGenerateTokens.connectorTokens!;
    expect(await tokenCheck(tenant().url, '/api/v4/connector/validate_tokens', old)).toBe(200);
    const fresh = (await generate(tenant().url, a.id)).body.data!.connectorGenerateTokens.connectorTokens!;
    expect(fresh.accessToken).not.toBe(old.accessToken);
    expect(await tokenCheck(tenant().url, '/api/v4/connector/validate_tokens', old)).toBe(401);
    expect(await tokenCheck(tenant().url, '/api/v4/connector/validate_tokens', fresh)).toBe(200);
    // A pair mixed from two generations is not a pair.
    const mixed = { accessToken: fresh.accessToken, refreshToken: old.refreshToken };
    expect(await tokenCheck(tenant().url, '/api/v4/connector/validate_tokens', mixed)).toBe(401);
    expect(tenant().connectors()[0]).toMatchObject({ tokenGenerations: 2, state: 'DEAD_NO_HEARTBEAT' });

    expect(await tokenCheck(tenant().url, '/fake/connector/heartbeat', old)).toBe(401);
    expect(tenant().heartbeat(old)).toBeUndefined();
    expect(tenant().connectors()[0]?.state).toBe('DEAD_NO_HEARTBEAT');
    const res = await fetch(`${tenant().url}/fake/connector/heartbeat`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${fresh.accessToken}` },
      body: JSON.stringify({ refresh_token: fresh.refreshToken }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: a.id });
    expect(tenant().connectors()[0]).toMatchObject({ state: 'ALIVE', lastHeartbeatAt: expect.any(String) });
    expect(tenant().heartbeat(fresh)).toBe(a.id);
    // Token checks are outside the GraphQL call log.
    expect(tenant().calls.map((c) => c.operation)).toEqual([
      'connectorGenerateTokens',
      'connectorGenerateTokens',
    ]);
  });

  it('a deleted connector’s pair is dead; a request without a bearer token is 401', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    const t = (await generate(tenant().url, a.id)).body.data!.connectorGenerateTokens.connectorTokens!;
    await gql(tenant().url, 'mutation D($id: ID!) { connectorDelete(id: $id) { ok } }', { id: a.id });
    expect(await tokenCheck(tenant().url, '/api/v4/connector/validate_tokens', t)).toBe(401);
    expect(tenant().currentTokens(a.id)).toBeUndefined();
    expect(
      await post(
        `${tenant().url}/api/v4/connector/validate_tokens`,
        JSON.stringify({ refresh_token: t.refreshToken }),
      ),
    ).toBe(401);
  });

  it('test handles: addConnector with an old state and time, setState, markAlive; bad input throws', () => {
    const old = tenant().addConnector({
      network: 'lab',
      name: 'old',
      state: 'DEAD_HEARTBEAT_TOO_OLD',
      createdAt: new Date('2023-01-01T00:00:00Z'),
      lastHeartbeatAt: new Date('2023-02-01T00:00:00Z'),
    });
    expect(old).toMatchObject({
      state: 'DEAD_HEARTBEAT_TOO_OLD',
      createdAt: '2023-01-01T00:00:00.000000+00:00',
      lastHeartbeatAt: '2023-02-01T00:00:00.000000+00:00',
    });
    tenant().setState(old.id, 'DEAD_NO_RELAYS');
    expect(tenant().connectors()[0]?.state).toBe('DEAD_NO_RELAYS');
    tenant().markAlive(old.id);
    expect(tenant().connectors()[0]?.state).toBe('ALIVE');
    expect(() => tenant().addConnector({ network: 'nowhere' })).toThrow(/no remote network "nowhere"/);
    expect(() => tenant().addConnector({ network: 'lab', name: 'old' })).toThrow(/already exists/);
    expect(() => tenant().setState(b64('Connector:99'), 'ALIVE')).toThrow(/no connector/);
    expect(tenant().addNetwork('second')).toEqual({ id: b64('RemoteNetwork:2'), name: 'second' });
  });
});

describe('FakeTwingateTenant budget (60 reads, 20 writes a minute, sliding)', () => {
  let t = 0;
  const tenant = tenantPerTest({ now: () => t });
  beforeEach(() => {
    t = 1_000_000;
  });
  const read = () => gql(tenant().url, '{ remoteNetworks { edges { cursor } } }');
  const write = () => create(tenant().url, { remoteNetworkId: b64('RemoteNetwork:99') });

  it('the 61st read in a minute is 429 with Retry-After until the oldest slot frees; 429s cost nothing', async () => {
    for (let i = 0; i < 30; i++) expect((await read()).status).toBe(200);
    t += 10_000;
    for (let i = 0; i < 30; i++) expect((await read()).status).toBe(200);
    t += 10_000; // 20 s after the first 30
    const refused = await read();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('40');
    expect(refused.body.error).toMatch(/rate limit/i);
    t += 39_999; // 1 ms before the first 30 leave the window
    for (let i = 0; i < 5; i++) expect((await read()).headers.get('retry-after')).toBe('1');
    t += 1; // they leave: 30 slots, whatever the 429s before
    for (let i = 0; i < 30; i++) expect((await read()).status).toBe(200);
    const again = await read();
    expect(again.status).toBe(429);
    expect(again.headers.get('retry-after')).toBe('10');
    expect(tenant().calls.filter((c) => c.status === 429)).toHaveLength(7);
  });

  it('writes have their own 20; a full write budget leaves reads alone, and the reverse', async () => {
    for (let i = 0; i < 20; i++) expect((await write()).status).toBe(200);
    const refused = await write();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('60');
    expect((await read()).status).toBe(200);
    t += 59_500;
    expect((await write()).headers.get('retry-after')).toBe('1');
    t += 500;
    expect((await write()).status).toBe(200);
    expect(tenant().calls.filter((c) => c.kind === 'write')).toHaveLength(23);
  });

  it('401s and injected faults are outside the budget', async () => {
    tenant().failNext(3, { status: 503 });
    for (let i = 0; i < 3; i++) expect((await read()).status).toBe(503);
    for (let i = 0; i < 5; i++)
      expect((await gql(tenant().url, '{ connectors { edges { cursor } } }', {}, { key: 'x' })).status).toBe(
        401,
      );
    for (let i = 0; i < 60; i++) expect((await read()).status).toBe(200);
    expect((await read()).status).toBe(429);
  });
});

describe('FakeTwingateTenant without limits', () => {
  const tenant = tenantPerTest({ limits: false });

  it('answers more than 60 reads and 20 writes a minute', async () => {
    for (let i = 0; i < 70; i++) {
      expect((await gql(tenant().url, '{ remoteNetworks { edges { cursor } } }')).status).toBe(200);
    }
    for (let i = 0; i < 25; i++) expect((await create(tenant().url)).status).toBe(200);
  });
});

describe('FakeTwingateTenant shard', () => {
  const tenant = tenantPerTest({ shard: true, limits: false });

  it('the global URL answers HEAD and POST with 308 to the shard; the shard serves the API', async () => {
    const { url, shardUrl } = tenant();
    expect(shardUrl).toBeDefined();
    expect(shardUrl).not.toBe(url);
    const head = await fetch(`${url}/api/graphql/`, { method: 'HEAD', redirect: 'manual' });
    expect(head.status).toBe(308);
    expect(head.headers.get('location')).toBe(`${shardUrl}/api/graphql/`);
    const posted = await gql(url, '{ remoteNetworks { edges { cursor } } }', undefined, {
      redirect: 'manual',
    });
    expect(posted.status).toBe(308);
    expect(posted.headers.get('location')).toBe(`${shardUrl}/api/graphql/`);
    expect(tenant().calls).toHaveLength(0);
    // fetch follows a 308 with the same method and body.
    const followed = await gql<{ remoteNetworks: Page<{ name: string }> }>(
      url,
      '{ remoteNetworks { edges { node { name } } } }',
    );
    expect(followed.status).toBe(200);
    expect(followed.body.data?.remoteNetworks.edges).toEqual([{ node: { name: 'lab' } }]);
    const direct = await gql(shardUrl!, '{ remoteNetworks { edges { cursor } } }');
    expect(direct.status).toBe(200);
    // The shard does not redirect its own probe (graphene-django's view answers HEAD with 405).
    expect((await fetch(`${shardUrl}/api/graphql/`, { method: 'HEAD', redirect: 'manual' })).status).toBe(
      405,
    );
    expect(tenant().calls).toHaveLength(2);
  });
});

describe('FakeTwingateTenant hooks, faults and the call log', () => {
  const tenant = tenantPerTest({ limits: false });

  it('before runs ahead of the effect, after runs after it and before the client has the answer', async () => {
    const events: string[] = [];
    let answered = false;
    const off = tenant().onRequest(async (call) => {
      events.push(`${call.phase}:${call.operation}:${call.kind}:${call.key}:${tenant().connectors().length}`);
      if (call.phase === 'after') {
        await sleep(100); // the answer waits for the hook
        events.push(`answered during after: ${answered}`);
      }
    });
    const pending = create(tenant().url).then((r) => {
      answered = true;
      events.push('answer');
      return r;
    });
    expect((await pending).body.data?.connectorCreate?.ok).toBe(true);
    expect(events).toEqual([
      'before:connectorCreate:write:test-key:0',
      'after:connectorCreate:write:test-key:1',
      'answered during after: false',
      'answer',
    ]);
    off();
    await gql(tenant().url, '{ connectors { edges { cursor } } }');
    expect(events).toHaveLength(4);
  });

  it('a client that dies in the after hook leaves the effect done and the tenant serving', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    const client = new AbortController();
    const off = tenant().onRequest((call) => {
      if (call.phase === 'after') client.abort(); // as if the client were SIGKILLed here
    });
    await expect(
      gql(
        tenant().url,
        'mutation T($id: ID!) { connectorGenerateTokens(connectorId: $id) { ok } }',
        { id: a.id },
        { signal: client.signal },
      ),
    ).rejects.toThrow(/abort/i);
    off();
    expect(tenant().connectors()[0]?.tokenGenerations).toBe(1);
    expect(tenant().currentTokens(a.id)).toBeDefined();
    expect((await generate(tenant().url, a.id)).body.data?.connectorGenerateTokens.ok).toBe(true);
  });

  it('a before hook may delay; a hook that throws is a 500', async () => {
    let releases = 0;
    const off = tenant().onRequest(async (call) => {
      if (call.phase === 'before') {
        await sleep(50);
        releases++;
      }
    });
    const started = Date.now();
    await gql(tenant().url, '{ connectors { edges { cursor } } }');
    expect(releases).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    off();
    tenant().onRequest(() => {
      throw new Error('boom');
    });
    const r = await gql(tenant().url, '{ connectors { edges { cursor } } }');
    expect(r.status).toBe(500);
    expect(r.body.error).toMatch(/boom/);
  });

  it('failNext answers the next n requests with the fault, before auth, then serves again', async () => {
    tenant().failNext(2, { status: 429, retryAfterSeconds: 7 });
    tenant().failNext(1, { status: 502 });
    const q = '{ remoteNetworks { edges { cursor } } }';
    const first = await gql(tenant().url, q, undefined, { key: 'not-a-key' });
    expect(first.status).toBe(429);
    expect(first.headers.get('retry-after')).toBe('7');
    expect((await gql(tenant().url, q)).status).toBe(429);
    const third = await gql(tenant().url, q);
    expect(third.status).toBe(502);
    expect(third.headers.get('retry-after')).toBeNull();
    expect((await gql(tenant().url, q, undefined, { key: 'not-a-key' })).status).toBe(401);
    expect((await gql(tenant().url, q)).status).toBe(200);
    expect(tenant().calls.map((c) => c.status)).toEqual([429, 429, 502, 401, 200]);
  });

  it('records every call with key, first root field, kind, status and time; callsByKey filters', async () => {
    const a = tenant().addConnector({ network: 'lab', name: 'a' });
    await gql(
      tenant().url,
      'query Q { remoteNetworks { edges { cursor } } connectors { edges { cursor } } }',
    );
    await gql(tenant().url, 'fragment F on Query { connector(id: "x") { id } } query { ...F }');
    await generate(tenant().url, a.id);
    await gql(
      tenant().url,
      'query A { connectors { edges { cursor } } } mutation B { connectorDelete(id: "x") { ok } }',
      {},
      {
        operationName: 'B',
      },
    );
    await gql(tenant().url, '{ nope', undefined, { key: 'other' });
    expect(tenant().calls.map(({ operation, kind, status, key }) => [operation, kind, status, key])).toEqual([
      ['remoteNetworks', 'read', 200, 'test-key'],
      ['connector', 'read', 200, 'test-key'],
      ['connectorGenerateTokens', 'write', 200, 'test-key'],
      ['connectorDelete', 'write', 200, 'test-key'],
      ['', 'read', 401, 'other'],
    ]);
    expect(tenant().callsByKey('other')).toHaveLength(1);
    expect(tenant().calls.every((c) => typeof c.at === 'number' && c.at > 0)).toBe(true);
  });
});

describe('FakeTwingateTenant request errors (graphene-django’s status codes)', () => {
  const tenant = tenantPerTest({ limits: false });

  it('an unknown field, argument or input shape is the real GraphQL validation error, HTTP 400 without data', async () => {
    const cases: [string, string][] = [
      ['{ connectors { edges { node { bogus } } } }', 'Cannot query field "bogus" on type "Connector".'],
      [
        'mutation { connectorGenerateTokens(id: "x") { ok } }',
        'Unknown argument "id" on field "Mutation.connectorGenerateTokens".',
      ],
      [
        'mutation { connectorCreate(input: { remoteNetworkId: "x" }) { ok } }',
        'Unknown argument "input" on field "Mutation.connectorCreate".',
      ],
      [
        'mutation { connectorDelete(id: "x") { ok error { message } } }',
        'Field "error" must not have a selection since type "String" has no subfields.',
      ],
    ];
    for (const [query, message] of cases) {
      const r = await gql(tenant().url, query);
      expect(r.status).toBe(400);
      expect(r.body.data).toBeUndefined();
      expect(r.body.errors?.map((e) => e.message)).toContain(message);
    }
  });

  it('a variable of the wrong type, a syntax error, bad JSON or no query is 400', async () => {
    const wrongVar = await gql(tenant().url, 'query C($id: ID!) { connector(id: $id) { id } }', {
      id: { no: 1 },
    });
    expect(wrongVar.status).toBe(400);
    expect(wrongVar.body.errors?.[0]?.message).toMatch(/Variable "\$id" got invalid value/);
    const syntax = await gql(tenant().url, '{ connectors {');
    expect(syntax.status).toBe(400);
    expect(syntax.body.errors?.[0]?.message).toMatch(/^Syntax Error/);
    const headers = { 'X-API-KEY': 'test-key' };
    const bad = await fetch(`${tenant().url}/api/graphql/`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: '{not json',
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ errors: [{ message: 'POST body sent invalid JSON.' }] });
    const none = await fetch(`${tenant().url}/api/graphql/`, { method: 'POST', headers, body: 'query=1' });
    expect(none.status).toBe(400);
    expect(await none.json()).toEqual({ errors: [{ message: 'Must provide query string.' }] });
    const get = await fetch(`${tenant().url}/api/graphql/?query={connectors{edges{cursor}}}`, { headers });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect((await fetch(`${tenant().url}/api/other`, { method: 'POST', headers, body: '{}' })).status).toBe(
      404,
    );
  });
});

describe('FakeTwingateTenant with hostile clients', () => {
  const tenant = tenantPerTest({ limits: false, http: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });

  /** A raw request; resolves to what the server sent until it closed the connection. */
  const raw = (write: (s: net.Socket) => void, opts: { end?: boolean } = {}) =>
    rawExchange(tenant().url, write, opts);

  it('a body over 1 MiB is 413, whether announced or streamed, and the connection is closed', async () => {
    const big = JSON.stringify({
      query: '{ connectors { edges { cursor } } }',
      pad: 'x'.repeat(TENANT_MAX_BODY_BYTES),
    });
    const announced = await fetch(`${tenant().url}/api/graphql/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-API-KEY': 'test-key' },
      body: big,
    });
    expect(announced.status).toBe(413);
    expect(announced.headers.get('connection')).toBe('close');
    await announced.arrayBuffer();
    const streamed = await postStreamed(
      `${tenant().url}/api/graphql/`,
      { 'Content-Type': 'application/json', 'X-API-KEY': 'test-key' },
      TENANT_MAX_BODY_BYTES,
    );
    expect(streamed).toBe(413);
    expect(tenant().calls).toHaveLength(0);
  });

  it('a client that stalls in its head or body is cut off; a truncated body gets Node’s 400, not the tenant’s', async () => {
    const t0 = Date.now();
    const slowHead = await raw((s) => s.write('POST /api/graphql/ HTTP/1.1\r\nHost: x\r\n'));
    expect(slowHead).toMatch(/^HTTP\/1\.1 408/);
    const slowBody = await raw((s) =>
      s.write(
        'POST /api/graphql/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"qu',
      ),
    );
    expect(slowBody).toMatch(/^HTTP\/1\.1 408/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    const truncated = await raw(
      (s) =>
        s.write(
          'POST /api/graphql/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"qu',
        ),
      { end: true },
    );
    expect(truncated).toBe('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'); // Node's parser, not the tenant
    expect(tenant().calls).toHaveLength(0);
    expect((await gql(tenant().url, '{ connectors { edges { cursor } } }')).status).toBe(200);
  });

  it('stop() does not wait for idle keep-alive connections', async () => {
    const agent = new http.Agent({ keepAlive: true });
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(
        `${tenant().url}/api/v4/connector/validate_tokens`,
        { method: 'POST', agent },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end('{}');
    });
    expect(status).toBe(401);
    const t0 = Date.now();
    await tenant().stop();
    expect(Date.now() - t0).toBeLessThan(1_000);
    agent.destroy();
    await expect(fetch(`${tenant().url}/api/graphql/`, { method: 'POST' })).rejects.toThrow();
  });
});
