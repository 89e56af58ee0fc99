/**
 * The real client (`TwingateClient`) against the fake tenant (`FakeTwingateTenant` from
 * `@knet/testing`), both written from `../shared/anchors/connector.md` §2 independently: every
 * method, the scopes, the budget (429 + Retry-After), injected faults, the shard redirect and the
 * client's counters, checked through the client and the tenant's test handles only.
 */
import { FakeTwingateTenant, type TenantConnector, type TenantKeyScope } from '@knet/testing';
import { TwingateClient, TwingateError, type TwingateClientOptions } from '../src';

jest.setTimeout(20_000);

const KEYS: Record<string, TenantKeyScope> = {
  'prov-key': 'provision',
  'read-key': 'read',
  'write-key': 'write',
  'stats-key': 'provision',
  'shard-key': 'provision',
};
const PERMISSION_DENIED = 'You do not have permission to perform this action';

/** base64 of `Type:n`, the vendor's opaque ids (well-formed, possibly unknown). */
function globalId(type: string, n: number): string {
  return Buffer.from(`${type}:${n}`, 'utf8').toString('base64');
}

/** The TwingateError `p` rejects with (success or another error fails the test). */
async function failure(p: Promise<unknown>): Promise<TwingateError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TwingateError) return e;
    throw e;
  }
  throw new Error('expected a TwingateError, the call succeeded');
}

function hostOf(url: string): string {
  return new URL(url).host;
}

function clientFor(
  tenant: FakeTwingateTenant,
  apiKey: string,
  o: Partial<TwingateClientOptions> = {},
): TwingateClient {
  return new TwingateClient({ apiKey, apiUrl: tenant.url, pageSize: 2, ...o });
}

describe('TwingateClient against FakeTwingateTenant', () => {
  let tenant: FakeTwingateTenant;
  let tg: TwingateClient;

  beforeAll(async () => {
    tenant = await FakeTwingateTenant.start({
      keys: KEYS,
      networks: ['lab', 'lab-2'],
      maxPageSize: 2,
      defaultPageSize: 1,
      limits: false,
    });
    tg = clientFor(tenant, 'prov-key');
  });

  afterAll(async () => {
    await tenant.stop();
  });

  describe('remote networks', () => {
    it('finds a network by its exact name and answers undefined for an absent one', async () => {
      const added = tenant.addNetwork('k8s-prod');
      expect(await tg.remoteNetworkByName('k8s-prod')).toEqual(added);
      expect(added.id.startsWith('UmVtb3RlTmV0d29yazo')).toBe(true);
      expect(await tg.remoteNetworkByName('nope')).toBeUndefined();
      expect(await tg.remoteNetworkByName('k8s')).toBeUndefined(); // eq, not a prefix
      const records = tenant.callsByKey('prov-key').filter((c) => c.operation === 'remoteNetworks');
      expect(records.length).toBeGreaterThanOrEqual(3);
      expect(records.every((c) => c.kind === 'read' && c.status === 200)).toBe(true);
    });
  });

  describe('listing connectors', () => {
    it('reads every page of a network (page size 2, 7 connectors → 4 pages) in creation order', async () => {
      tenant.addNetwork('paged');
      tenant.addNetwork('elsewhere');
      const made: TenantConnector[] = [];
      for (let i = 0; i < 7; i++) {
        made.push(
          tenant.addConnector({ network: 'paged', name: `paged-${i}`, state: i === 3 ? 'ALIVE' : undefined }),
        );
      }
      tenant.addConnector({ network: 'elsewhere', name: 'not-in-paged' });
      const network = await tg.remoteNetworkByName('paged');
      expect(network).toBeDefined();

      const before = tg.stats.calls;
      const recordsBefore = tenant.callsByKey('prov-key').length;
      const listed = await tg.listConnectors(network!.id);
      expect(tg.stats.calls - before).toBe(4);
      const pages = tenant.callsByKey('prov-key').slice(recordsBefore);
      expect(pages.map((c) => c.operation)).toEqual(Array(4).fill('remoteNetwork'));

      expect(listed.map((c) => c.id)).toEqual(made.map((c) => c.id));
      expect(listed.map((c) => c.name)).toEqual(made.map((c) => c.name));
      expect(listed.map((c) => c.state)).toEqual(made.map((c) => c.state));
      expect(listed[3]!.state).toBe('ALIVE');
      const first = listed[0]!;
      expect(first).toEqual({
        id: made[0]!.id,
        name: 'paged-0',
        state: 'DEAD_NO_HEARTBEAT',
        remoteNetwork: network,
        hasStatusNotificationsEnabled: true,
        lastHeartbeatAt: null,
        createdAt: made[0]!.createdAt,
        updatedAt: expect.any(String),
        hostname: null,
        version: null,
        publicIP: null,
        privateIPs: [],
      });
      expect(listed[3]!.lastHeartbeatAt).toBe(made[3]!.lastHeartbeatAt);
    });

    it('lists every connector of the tenant across pages (listAllConnectors)', async () => {
      const expected = tenant.connectors();
      expect(expected.length).toBeGreaterThan(6);
      const before = tg.stats.calls;
      const all = await tg.listAllConnectors();
      expect(all.map((c) => c.id)).toEqual(expected.map((c) => c.id));
      expect(all.map((c) => c.remoteNetwork.name)).toEqual(expected.map((c) => c.networkName));
      expect(tg.stats.calls - before).toBe(Math.ceil(expected.length / 2));
    });

    it('an empty network lists [] in one call', async () => {
      const empty = (await tg.remoteNetworkByName('lab-2'))!;
      const before = tg.stats.calls;
      expect(await tg.listConnectors(empty.id)).toEqual([]);
      expect(tg.stats.calls - before).toBe(1);
    });

    it('a client page size above the tenant maximum is a graphql error, not a loop', async () => {
      const big = clientFor(tenant, 'prov-key', { pageSize: 50 });
      const err = await failure(big.listAllConnectors());
      expect(err.kind).toBe('graphql');
      expect(err.operation).toBe('connectors');
      expect(err.graphqlErrors?.[0]?.message).toContain('exceeds the `first` limit of 2 records');
      expect(big.stats.calls).toBe(1);
    });

    it('an unknown network is a graphql error, a malformed id too', async () => {
      const unknown = await failure(tg.listConnectors(globalId('RemoteNetwork', 999)));
      expect(unknown.kind).toBe('graphql');
      expect(unknown.operation).toBe('remoteNetwork');
      const malformed = await failure(tg.listConnectors('not-an-id'));
      expect(malformed.kind).toBe('graphql');
      expect(malformed.graphqlErrors?.[0]).toEqual({
        message: "{'id': ['Unable to parse global ID']}",
        path: ['remoteNetwork'],
      });
    });
  });

  describe('getConnector', () => {
    it('known → the connector, unknown → undefined, malformed → graphql error', async () => {
      const c = tenant.addConnector({ network: 'lab', name: 'get-me' });
      const got = await tg.getConnector(c.id);
      expect(got?.id).toBe(c.id);
      expect(got?.name).toBe('get-me');
      expect(got?.state).toBe('DEAD_NO_HEARTBEAT');
      expect(got?.remoteNetwork.name).toBe('lab');

      expect(await tg.getConnector(globalId('Connector', 9999))).toBeUndefined();
      // a well-formed id of another type is an unknown one
      expect(await tg.getConnector(globalId('RemoteNetwork', 1))).toBeUndefined();

      const err = await failure(tg.getConnector('bad-id!'));
      expect(err.kind).toBe('graphql');
      expect(err.operation).toBe('connector');
      expect(err.status).toBe(200);
      expect(err.graphqlErrors).toEqual([
        { message: "{'id': ['Unable to parse global ID']}", path: ['connector'] },
      ]);
      expect(err.message).toBe(
        `connector: {'id': ['Unable to parse global ID']} (path connector, at ${hostOf(tenant.url)})`,
      );
    });
  });

  describe('createConnector', () => {
    it('with a name: a new DEAD_NO_HEARTBEAT connector in that network', async () => {
      const lab = (await tg.remoteNetworkByName('lab'))!;
      const c = await tg.createConnector({
        remoteNetworkId: lab.id,
        name: 'created-by-name',
        hasStatusNotificationsEnabled: false,
      });
      expect(c.name).toBe('created-by-name');
      expect(c.state).toBe('DEAD_NO_HEARTBEAT');
      expect(c.remoteNetwork).toEqual(lab);
      expect(c.hasStatusNotificationsEnabled).toBe(false);
      expect(c.lastHeartbeatAt).toBeNull();
      const inTenant = tenant.connectors().find((t) => t.id === c.id);
      expect(inTenant).toMatchObject({ name: 'created-by-name', networkName: 'lab', deleted: false });
      expect((await tg.getConnector(c.id))?.hasStatusNotificationsEnabled).toBe(false);
    });

    it('without a name: the server picks a two-word one; status notifications default on', async () => {
      const lab = (await tg.remoteNetworkByName('lab'))!;
      const c = await tg.createConnector({ remoteNetworkId: lab.id });
      expect(c.name).toMatch(/^[a-z]+-[a-z]+$/);
      expect(c.hasStatusNotificationsEnabled).toBe(true);
      expect(tenant.connectors().find((t) => t.id === c.id)?.name).toBe(c.name);
    });

    it('a duplicate name is refused (mutation), an unknown network too, a malformed id is graphql', async () => {
      const lab = (await tg.remoteNetworkByName('lab'))!;
      await tg.createConnector({ remoteNetworkId: lab.id, name: 'twice' });
      const count = tenant.connectors().length;

      const dup = await failure(tg.createConnector({ remoteNetworkId: lab.id, name: 'twice' }));
      expect(dup.kind).toBe('mutation');
      expect(dup.operation).toBe('connectorCreate');
      expect(dup.message).toBe(
        `connectorCreate refused: Connector with name 'twice' already exists. (at ${hostOf(tenant.url)})`,
      );

      const noNet = await failure(
        tg.createConnector({ remoteNetworkId: globalId('RemoteNetwork', 999), name: 'orphan' }),
      );
      expect(noNet.kind).toBe('mutation');
      expect(noNet.message).toContain('does not exist');

      const bad = await failure(tg.createConnector({ remoteNetworkId: 'nope', name: 'orphan' }));
      expect(bad.kind).toBe('graphql');
      expect(bad.graphqlErrors?.[0]?.path).toEqual(['connectorCreate']);

      expect(tenant.connectors().length).toBe(count);
    });
  });

  describe('updateConnector', () => {
    it('renames and toggles notifications; unknown id and taken name are refused', async () => {
      const c = tenant.addConnector({ network: 'lab', name: 'before-rename' });
      tenant.addConnector({ network: 'lab', name: 'taken-name' });
      const updated = await tg.updateConnector({
        id: c.id,
        name: 'after-rename',
        hasStatusNotificationsEnabled: false,
      });
      expect(updated.id).toBe(c.id);
      expect(updated.name).toBe('after-rename');
      expect(updated.hasStatusNotificationsEnabled).toBe(false);
      expect(tenant.connectors().find((t) => t.id === c.id)?.name).toBe('after-rename');
      expect((await tg.getConnector(c.id))?.name).toBe('after-rename');

      // only the notifications flag: the name stays
      const flag = await tg.updateConnector({ id: c.id, hasStatusNotificationsEnabled: true });
      expect(flag.name).toBe('after-rename');
      expect(flag.hasStatusNotificationsEnabled).toBe(true);

      const unknown = await failure(tg.updateConnector({ id: globalId('Connector', 9999), name: 'x' }));
      expect(unknown.kind).toBe('mutation');
      expect(unknown.operation).toBe('connectorUpdate');
      expect(unknown.message).toContain('does not exist');

      const taken = await failure(tg.updateConnector({ id: c.id, name: 'taken-name' }));
      expect(taken.kind).toBe('mutation');
      expect(taken.message).toContain("'taken-name' already exists");
    });
  });

  describe('deleteConnector', () => {
    it("'deleted', then 'absent'; the tenant marks it deleted and its tokens die", async () => {
      const c = tenant.addConnector({ network: 'lab', name: 'to-delete' });
      const tokens = await tg.generateTokens(c.id);
      expect(await tg.validateTokens(tokens)).toBe(true);

      expect(await tg.deleteConnector(c.id)).toBe('deleted');
      expect(tenant.connectors({ includeDeleted: true }).find((t) => t.id === c.id)?.deleted).toBe(true);
      expect(tenant.connectors().some((t) => t.id === c.id)).toBe(false);
      expect(await tg.getConnector(c.id)).toBeUndefined();
      expect(await tg.validateTokens(tokens)).toBe(false);

      const before = tenant.callsByKey('prov-key').length;
      expect(await tg.deleteConnector(c.id)).toBe('absent');
      // the refused delete, then the lookup that says it is gone
      expect(
        tenant
          .callsByKey('prov-key')
          .slice(before)
          .map((r) => [r.operation, r.kind]),
      ).toEqual([
        ['connectorDelete', 'write'],
        ['connector', 'read'],
      ]);
      // a deleted name is free again
      const lab = (await tg.remoteNetworkByName('lab'))!;
      expect((await tg.createConnector({ remoteNetworkId: lab.id, name: 'to-delete' })).name).toBe(
        'to-delete',
      );
    });
  });

  describe('tokens', () => {
    it('generateTokens gives a JWT-shaped pair; a second call revokes the first', async () => {
      const c = tenant.addConnector({ network: 'lab', name: 'tokened' });
      const first = await tg.generateTokens(c.id);
      expect(first.accessToken.split('.')).toHaveLength(3);
      expect(first.refreshToken.length).toBeGreaterThan(0);
      expect(await tg.validateTokens(first)).toBe(true);

      const second = await tg.generateTokens(c.id);
      expect(second.accessToken).not.toBe(first.accessToken);
      expect(second.refreshToken).not.toBe(first.refreshToken);
      expect(await tg.validateTokens(first)).toBe(false);
      expect(await tg.validateTokens(second)).toBe(true);
      expect(tenant.currentTokens(c.id)).toEqual(second);
      expect(tenant.connectors().find((t) => t.id === c.id)?.tokenGenerations).toBe(2);

      // a mixed pair is no pair
      expect(
        await tg.validateTokens({ accessToken: second.accessToken, refreshToken: first.refreshToken }),
      ).toBe(false);
      // the tenant takes the pair as proof of the connector (a heartbeat makes it ALIVE)
      expect(tenant.heartbeat(second)).toBe(c.id);
      expect((await tg.getConnector(c.id))?.state).toBe('ALIVE');
    });

    it('generateTokens for an unknown connector is refused (mutation)', async () => {
      const err = await failure(tg.generateTokens(globalId('Connector', 9999)));
      expect(err.kind).toBe('mutation');
      expect(err.operation).toBe('connectorGenerateTokens');
    });
  });

  describe('scopes', () => {
    it('a read key reads but cannot create: graphql error with the permission message', async () => {
      const reader = clientFor(tenant, 'read-key');
      const lab = (await reader.remoteNetworkByName('lab'))!;
      expect((await reader.listAllConnectors()).length).toBe(tenant.connectors().length);
      const count = tenant.connectors().length;
      const err = await failure(reader.createConnector({ remoteNetworkId: lab.id, name: 'by-reader' }));
      expect(err.kind).toBe('graphql');
      expect(err.operation).toBe('connectorCreate');
      expect(err.status).toBe(200);
      expect(err.message).toBe(
        `connectorCreate: ${PERMISSION_DENIED} (path connectorCreate, at ${hostOf(tenant.url)})`,
      );
      expect(tenant.connectors().length).toBe(count);

      // a refused delete (permission) is thrown as it is, never taken for 'absent'
      const victim = tenant.addConnector({ network: 'lab', name: 'not-for-readers' });
      const del = await failure(reader.deleteConnector(victim.id));
      expect(del.kind).toBe('graphql');
      expect(del.operation).toBe('connectorDelete');
      expect(tenant.connectors().some((t) => t.id === victim.id)).toBe(true);
    });

    it('a write key creates and updates but cannot generate tokens', async () => {
      const writer = clientFor(tenant, 'write-key');
      const lab = (await writer.remoteNetworkByName('lab'))!;
      const c = await writer.createConnector({ remoteNetworkId: lab.id, name: 'by-writer' });
      expect((await writer.updateConnector({ id: c.id, name: 'by-writer-2' })).name).toBe('by-writer-2');
      const err = await failure(writer.generateTokens(c.id));
      expect(err.kind).toBe('graphql');
      expect(err.operation).toBe('connectorGenerateTokens');
      expect(err.message).toBe(
        `connectorGenerateTokens: ${PERMISSION_DENIED} (path connectorGenerateTokens, at ${hostOf(tenant.url)})`,
      );
      expect(tenant.currentTokens(c.id)).toBeUndefined();
      expect(await writer.deleteConnector(c.id)).toBe('deleted');
    });

    it('an unknown key → auth (HTTP 401), the key not in the message', async () => {
      const stranger = clientFor(tenant, 'who-am-i-key');
      const err = await failure(stranger.remoteNetworkByName('lab'));
      expect(err.kind).toBe('auth');
      expect(err.status).toBe(401);
      expect(err.operation).toBe('remoteNetworks');
      expect(err.message).not.toContain('who-am-i-key');
      expect(stranger.stats.attempts).toBe(1); // not retried
      expect(tenant.callsByKey('who-am-i-key').map((c) => c.status)).toEqual([401]);
    });
  });

  describe('faults', () => {
    it('502 then 503 then the answer: retried, counted in stats.retries', async () => {
      const c = clientFor(tenant, 'prov-key', { random: () => 0.9 });
      tenant.failNext(1, { status: 502 });
      tenant.failNext(1, { status: 503 });
      const before = tenant.callsByKey('prov-key').length;
      const lab = await c.remoteNetworkByName('lab');
      expect(lab?.name).toBe('lab');
      expect(c.stats).toMatchObject({ calls: 1, attempts: 3, retries: 2, rateLimited: 0 });
      expect(
        tenant
          .callsByKey('prov-key')
          .slice(before)
          .map((r) => r.status),
      ).toEqual([502, 503, 200]);
    });

    it('a 500 on a mutation is retried too (and the mutation happens once)', async () => {
      const c = clientFor(tenant, 'prov-key', { random: () => 0.9 });
      const lab = (await c.remoteNetworkByName('lab'))!;
      tenant.failNext(1, { status: 500 });
      const made = await c.createConnector({ remoteNetworkId: lab.id, name: 'after-a-500' });
      expect(made.name).toBe('after-a-500');
      expect(tenant.connectors().filter((t) => t.name === 'after-a-500')).toHaveLength(1);
      expect(c.stats.retries).toBe(1);
    });

    it('an attempt that outlasts attemptTimeoutMs is retried (the tenant delays it through a hook)', async () => {
      const c = clientFor(tenant, 'prov-key', { attemptTimeoutMs: 200, random: () => 0.9 });
      let delayed = false;
      const off = tenant.onRequest(async (call) => {
        if (call.key === 'prov-key' && call.phase === 'before' && !delayed) {
          delayed = true;
          await new Promise((r) => setTimeout(r, 600));
        }
      });
      const before = tenant.callsByKey('prov-key').length;
      try {
        expect((await c.remoteNetworkByName('lab'))?.name).toBe('lab');
        // the abandoned attempt still runs on the tenant: wait for it so later tests see a quiet tenant
        const t0 = Date.now();
        while (tenant.callsByKey('prov-key').length < before + 2 && Date.now() - t0 < 3000) {
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        off();
      }
      expect(delayed).toBe(true);
      expect(c.stats).toMatchObject({ calls: 1, attempts: 2, retries: 1 });
      expect(tenant.callsByKey('prov-key').length).toBe(before + 2);
    });

    it('a 429 from failNext with Retry-After 1: waited, then the answer', async () => {
      const c = clientFor(tenant, 'prov-key');
      tenant.failNext(1, { status: 429, retryAfterSeconds: 1 });
      const t0 = Date.now();
      expect((await c.remoteNetworkByName('lab'))?.name).toBe('lab');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
      expect(c.stats).toMatchObject({ calls: 1, attempts: 2, retries: 1, rateLimited: 1 });
    });

    it('a 429 without Retry-After (60 s) past the deadline → rate-limit with retryAfterMs', async () => {
      const c = clientFor(tenant, 'prov-key', { deadlineMs: 3000 });
      tenant.failNext(1, { status: 429 });
      const t0 = Date.now();
      const err = await failure(c.remoteNetworkByName('lab'));
      expect(Date.now() - t0).toBeLessThan(1500); // thrown at once, not waited
      expect(err.kind).toBe('rate-limit');
      expect(err.status).toBe(429);
      expect(err.retryAfterMs).toBe(60_000);
      expect(c.stats.rateLimited).toBe(1);
      // the fault is spent: the next call goes through
      expect((await c.remoteNetworkByName('lab'))?.name).toBe('lab');
    });
  });

  describe('stats', () => {
    it('calls, reads and writes match the tenant records for the key', async () => {
      const c = clientFor(tenant, 'stats-key');
      const expectedOps: string[] = [];
      const lab = (await c.remoteNetworkByName('lab'))!;
      expectedOps.push('remoteNetworks');
      const inLab = await c.listConnectors(lab.id);
      expectedOps.push(...Array(Math.ceil(inLab.length / 2) || 1).fill('remoteNetwork'));
      const all = await c.listAllConnectors();
      expectedOps.push(...Array(Math.ceil(all.length / 2) || 1).fill('connectors'));
      const made = await c.createConnector({ remoteNetworkId: lab.id, name: 'stats-one' });
      expectedOps.push('connectorCreate');
      await c.getConnector(made.id);
      expectedOps.push('connector');
      await c.updateConnector({ id: made.id, name: 'stats-two' });
      expectedOps.push('connectorUpdate');
      const tokens = await c.generateTokens(made.id);
      expectedOps.push('connectorGenerateTokens');
      await c.validateTokens(tokens);
      await c.validateTokens({ ...tokens, refreshToken: 'wrong' });
      const validations = 2; // validate_tokens is not in the tenant's `calls`
      await c.deleteConnector(made.id);
      expectedOps.push('connectorDelete');
      await c.deleteConnector(made.id); // refused, then looked up
      expectedOps.push('connectorDelete', 'connector');

      const records = tenant.callsByKey('stats-key');
      expect(records.map((r) => r.operation)).toEqual(expectedOps);
      expect(records.every((r) => r.status === 200)).toBe(true);
      expect(c.stats.calls).toBe(records.length + validations);
      expect(c.stats.attempts).toBe(records.length + validations);
      expect(c.stats.writes).toBe(records.filter((r) => r.kind === 'write').length);
      expect(c.stats.reads).toBe(records.filter((r) => r.kind === 'read').length + validations);
      expect(c.stats.writes).toBe(5);
      expect(c.stats).toMatchObject({ retries: 0, rateLimited: 0 });
    });

    it('parallel calls beyond the concurrency cap all answer', async () => {
      const c = clientFor(tenant, 'prov-key', { maxConcurrency: 2 });
      const ids = tenant
        .connectors()
        .slice(0, 6)
        .map((t) => t.id);
      let inFlight = 0;
      let most = 0;
      const off = tenant.onRequest(async (call) => {
        if (call.key !== 'prov-key') return;
        if (call.phase === 'before') {
          most = Math.max(most, ++inFlight);
          await new Promise((r) => setTimeout(r, 30));
        } else inFlight--;
      });
      let got;
      try {
        got = await Promise.all(ids.map((id) => c.getConnector(id)));
      } finally {
        off();
      }
      expect(got.map((g) => g?.id)).toEqual(ids);
      expect(c.stats.calls).toBe(6);
      expect(most).toBe(2);
    });
  });
});

describe('the budget (tenant limits: 2 writes per 1.5 s)', () => {
  let tenant: FakeTwingateTenant;

  beforeEach(async () => {
    tenant = await FakeTwingateTenant.start({
      keys: KEYS,
      limits: { reads: 100, writes: 2, windowMs: 1500 },
    });
  });

  afterEach(async () => {
    await tenant.stop();
  });

  it('the client waits out the 429 Retry-After, then succeeds', async () => {
    const tg = clientFor(tenant, 'prov-key');
    const lab = (await tg.remoteNetworkByName('lab'))!;
    await tg.createConnector({ remoteNetworkId: lab.id, name: 'w1' });
    await tg.createConnector({ remoteNetworkId: lab.id, name: 'w2' });
    const t0 = Date.now();
    const third = await tg.createConnector({ remoteNetworkId: lab.id, name: 'w3' });
    const waited = Date.now() - t0;
    expect(third.name).toBe('w3');
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(tg.stats).toMatchObject({
      calls: 4,
      writes: 3,
      reads: 1,
      rateLimited: 1,
      retries: 1,
      attempts: 5,
    });
    const writes = tenant.callsByKey('prov-key').filter((c) => c.kind === 'write');
    expect(writes.map((c) => c.status)).toEqual([200, 200, 429, 200]);
    // the 429 cost nothing: exactly three connectors exist
    expect(tenant.connectors().map((c) => c.name)).toEqual(['w1', 'w2', 'w3']);
    // reads have their own budget
    expect((await tg.getConnector(third.id))?.name).toBe('w3');
  });

  it('a Retry-After longer than the deadline → rate-limit with retryAfterMs, at once', async () => {
    const tg = clientFor(tenant, 'prov-key');
    const lab = (await tg.remoteNetworkByName('lab'))!;
    await tg.createConnector({ remoteNetworkId: lab.id, name: 'w1' });
    await tg.createConnector({ remoteNetworkId: lab.id, name: 'w2' });
    const hurried = clientFor(tenant, 'prov-key', { deadlineMs: 800 });
    const t0 = Date.now();
    const err = await failure(hurried.createConnector({ remoteNetworkId: lab.id, name: 'w3' }));
    expect(Date.now() - t0).toBeLessThan(800);
    expect(err.kind).toBe('rate-limit');
    expect(err.operation).toBe('connectorCreate');
    expect(err.status).toBe(429);
    expect(err.retryAfterMs).toBeGreaterThanOrEqual(1000);
    expect(err.retryAfterMs! % 1000).toBe(0); // whole seconds, as the tenant sends them
    expect(err.message).toContain('is rate-limiting (HTTP 429)');
    expect(hurried.stats).toMatchObject({ calls: 1, writes: 1, rateLimited: 1, retries: 0 });
    expect(tenant.connectors().map((c) => c.name)).toEqual(['w1', 'w2']);
  });

  it('a read budget hit in the middle of pagination: the page is waited for, the list is whole', async () => {
    const small = await FakeTwingateTenant.start({
      keys: KEYS,
      maxPageSize: 2,
      limits: { reads: 3, writes: 20, windowMs: 1000 },
    });
    try {
      for (let i = 0; i < 7; i++) small.addConnector({ network: 'lab', name: `r${i}` });
      const tg = clientFor(small, 'prov-key');
      const t0 = Date.now();
      const all = await tg.listAllConnectors(); // 4 pages, 3 reads a second
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
      expect(all.map((c) => c.name)).toEqual(['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
      expect(tg.stats).toMatchObject({ calls: 4, attempts: 5, rateLimited: 1, retries: 1 });
      expect(small.calls.map((c) => c.status)).toEqual([200, 200, 200, 429, 200]);
    } finally {
      await small.stop();
    }
  });

  it('5xx until the deadline leaves no room → http error with the status', async () => {
    const tg = clientFor(tenant, 'prov-key', { deadlineMs: 1200, random: () => 0 });
    tenant.failNext(5, { status: 503 });
    const err = await failure(tg.remoteNetworkByName('lab'));
    expect(err.kind).toBe('http');
    expect(err.status).toBe(503);
    expect(err.message).toContain('gave up after 2 attempts');
    expect(tenant.calls.map((c) => c.status)).toEqual([503, 503]);
  });
});

describe('a sharded tenant (shard: true)', () => {
  let tenant: FakeTwingateTenant;

  beforeAll(async () => {
    tenant = await FakeTwingateTenant.start({ keys: KEYS, shard: true, maxPageSize: 2, limits: false });
  });

  afterAll(async () => {
    await tenant.stop();
  });

  it("moves the client's baseUrl to the shard after the first call; every method works there", async () => {
    expect(tenant.shardUrl).toBeDefined();
    expect(tenant.shardUrl).not.toBe(tenant.url);
    const tg = clientFor(tenant, 'shard-key');
    expect(tg.baseUrl).toBe(tenant.url);

    const lab = await tg.remoteNetworkByName('lab');
    expect(lab?.name).toBe('lab');
    expect(tg.baseUrl).toBe(tenant.shardUrl);

    const names = ['s1', 's2', 's3', 's4', 's5'];
    for (const name of names) await tg.createConnector({ remoteNetworkId: lab!.id, name });
    const auto = await tg.createConnector({ remoteNetworkId: lab!.id });
    expect((await tg.listConnectors(lab!.id)).map((c) => c.name)).toEqual([...names, auto.name]);
    expect((await tg.listAllConnectors()).length).toBe(6);
    const s1 = (await tg.listAllConnectors()).find((c) => c.name === 's1')!;
    expect((await tg.getConnector(s1.id))?.name).toBe('s1');
    expect((await tg.updateConnector({ id: s1.id, name: 's1-renamed' })).name).toBe('s1-renamed');
    const first = await tg.generateTokens(s1.id);
    const second = await tg.generateTokens(s1.id);
    expect(await tg.validateTokens(first)).toBe(false);
    expect(await tg.validateTokens(second)).toBe(true);
    expect(await tg.deleteConnector(s1.id)).toBe('deleted');
    expect(await tg.deleteConnector(s1.id)).toBe('absent');
    expect(await tg.remoteNetworkByName('absent')).toBeUndefined();
    expect(tg.baseUrl).toBe(tenant.shardUrl);

    // the HEAD probe moved it: no POST went to the global listener, so none was re-sent
    expect(tg.stats.attempts).toBe(tg.stats.calls);
    const validations = 2;
    expect(tenant.callsByKey('shard-key').length).toBe(tg.stats.calls - validations);
    expect(tenant.callsByKey('shard-key').every((c) => c.status === 200)).toBe(true);
  });
});
