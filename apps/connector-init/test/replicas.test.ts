import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { until, type ConnectorRelease } from '@knet/testing';
import { ConnectorBed, type Pod } from './harness';

// connector-init as it ships, against the real API server and the fake tenant: the chart is
// installed for real, and its pods are processes with ordinals (the sidecar with the chart's args,
// env and ServiceAccount; the launcher running a fake connector that heartbeats with its pair).

jest.setTimeout(180_000);

let bed: ConnectorBed;

beforeAll(async () => {
  bed = await ConnectorBed.start({
    keys: { 'test-key': 'provision', 'crash-key': 'provision', 'read-key': 'read', 'write-key': 'write' },
    networks: ['lab', 'other'],
    limits: false,
  });
});
afterAll(async () => {
  await bed?.stop();
});

async function startPod(rel: ConnectorRelease, ordinal: number, extra: string[] = []): Promise<Pod> {
  const pod = rel.startSidecar(ordinal, { extra });
  await until(`${rel.release}-${ordinal} installs its launcher`, () => {
    if (!pod.sidecar.running) throw new Error(`sidecar exited: ${pod.sidecar.tail(5)}`);
    return existsSync(join(pod.handoffDir, 'launch'));
  });
  rel.startConnector(pod);
  return pod;
}

async function allAlive(rel: ConnectorRelease, n: number): Promise<void> {
  await until(
    `${n} ${rel.release} connectors ALIVE`,
    () => {
      for (const p of rel.pods) {
        if (!p.sidecar.running)
          throw new Error(`${rel.release}-${p.ordinal} sidecar exited: ${p.sidecar.tail(8)}`);
        if (p.connector && !p.connector.running)
          throw new Error(`${rel.release}-${p.ordinal} connector exited: ${p.connector.tail(8)}`);
      }
      return rel.connectors().filter((c) => c.state === 'ALIVE').length === n;
    },
    { timeoutMs: 60_000 },
  );
}

const handedOver = (rel: ConnectorRelease, pod: Pod) =>
  until(`${rel.release}-${pod.ordinal} handed over`, () => {
    if (!pod.sidecar.running) throw new Error(`sidecar exited: ${pod.sidecar.tail(8)}`);
    return rel.log(pod.sidecar).includes('tokens handed to the connector container');
  });

describe('five replicas starting at once', () => {
  let rel: ConnectorRelease;
  beforeAll(async () => {
    rel = await bed.release('edge', { replicas: 5 });
    await Promise.all([0, 1, 2, 3, 4].map((o) => startPod(rel, o)));
    await allAlive(rel, 5);
  });

  it('get five distinct connectors, one per ordinal, each with its own token pair never revoked by a sibling', async () => {
    const connectors = rel.connectors();
    expect(connectors.map((c) => c.name).sort()).toEqual(['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4']);
    expect(new Set(connectors.map((c) => c.id)).size).toBe(5);
    // One pair each: nobody generated tokens for a sibling's connector.
    expect(connectors.map((c) => c.tokenGenerations)).toEqual([1, 1, 1, 1, 1]);
    const claims = await rel.claims();
    const recorded = [0, 1, 2, 3, 4].map(
      (o) => JSON.parse(claims[`ordinal.${o}`] ?? '{}') as { id: string; name: string },
    );
    expect(recorded.map((r) => r.name)).toEqual(['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4']);
    expect(recorded.map((r) => r.id)).toEqual(
      recorded.map((r) => connectors.find((c) => c.name === r.name)?.id),
    );
    // Every fake connector still heartbeats with its pair (a revoked pair makes it exit 3).
    for (const p of rel.pods) expect(p.connector?.running).toBe(true);
  });

  it('leave no token readable anywhere in the cluster, on disk or in a log once ALIVE', async () => {
    const pairs = rel.connectors().map((c) => bed.tenant.currentTokens(c.id));
    expect(pairs.every((p) => p && p.accessToken.length > 20)).toBe(true);
    const cluster = await bed.cp.kubectlOk(['get', 'secrets,configmaps', '-A', '-o', 'json']);
    const onDisk = rel.pods
      .flatMap((p) =>
        readdirSync(p.handoffDir)
          .filter((f) => f === 'launch')
          .map((f) => readFileSync(join(p.handoffDir, f), 'utf8')),
      )
      .join('\n');
    const logs = rel.pods.map((p) => rel.log(p.sidecar)).join('\n');
    for (const pair of pairs) {
      for (const token of [pair?.accessToken ?? 'x', pair?.refreshToken ?? 'x']) {
        expect(cluster).not.toContain(token);
        expect(onDisk).not.toContain(token);
        expect(logs).not.toContain(token);
      }
    }
    expect(logs).not.toContain('test-key');
  });

  it('status prints every ordinal with its connector and state, as a table and as JSON', async () => {
    const table = await rel.runCommand('status');
    expect(table.exitCode).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^ORDINAL +CONNECTOR +ID +ORIGIN +STATE +LAST HEARTBEAT$/);
    expect(
      lines.slice(1).map((l) =>
        l
          .split(/ +/)
          .filter((_, i) => i !== 2)
          .slice(0, 4)
          .join(' '),
      ),
    ).toEqual([0, 1, 2, 3, 4].map((o) => `${o} edge-${o} created ALIVE`));
    const json = await rel.runCommand('status', { extra: ['-o', 'json'] });
    expect(JSON.parse(json.stdout)).toMatchObject({
      release: 'edge',
      network: { name: 'lab' },
      connectors: expect.arrayContaining([
        expect.objectContaining({ ordinal: 3, name: 'edge-3', state: 'ALIVE', origin: 'created' }),
      ]),
    });
  });

  it('a restarted connector container gets a fresh pair of the same connector', async () => {
    const pod = rel.pods.find((p) => p.ordinal === 1) as Pod;
    const id = rel.connectors().find((c) => c.name === 'edge-1')?.id as string;
    const before = bed.tenant.currentTokens(id);
    await pod.connector?.kill();
    bed.tenant.setState(id, 'DEAD_HEARTBEAT_TOO_OLD');
    rel.startConnector(pod);
    await allAlive(rel, 5);
    expect(bed.tenant.connectors().find((c) => c.id === id)?.tokenGenerations).toBe(2);
    expect(bed.tenant.currentTokens(id)).not.toEqual(before);
  });

  it('a restarted pod keeps its connector, with one API call', async () => {
    const pod = rel.pods.find((p) => p.ordinal === 2) as Pod;
    const id = rel.connectors().find((c) => c.name === 'edge-2')?.id;
    await pod.connector?.stop(1000);
    await pod.sidecar.stop(2000);
    const callsBefore = bed.tenant.calls.length;
    await startPod(rel, 2);
    await handedOver(rel, pod);
    const provisionCalls = bed.tenant.calls.slice(callsBefore).filter((c) => c.operation !== 'connector');
    expect(provisionCalls.map((c) => c.operation)).toEqual(['connectorGenerateTokens']);
    await allAlive(rel, 5);
    expect(rel.connectors().find((c) => c.name === 'edge-2')?.id).toBe(id);
    expect(rel.connectors()).toHaveLength(5);
  });

  it('scale 5 → 3 and gc: the two connectors of the gone ordinals are deleted, their records dropped', async () => {
    await rel.stopPods((p) => p.ordinal >= 3);
    const gc = await rel.runCommand('gc', { env: { CONNECTOR_REPLICAS: '3' } });
    expect(gc.exitCode).toBe(0);
    expect(
      rel
        .connectors()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['edge-0', 'edge-1', 'edge-2']);
    expect(Object.keys(await rel.claims()).sort()).toEqual([
      'network',
      'ordinal.0',
      'ordinal.1',
      'ordinal.2',
    ]);
    // Idempotent: a second run deletes nothing and succeeds.
    expect((await rel.runCommand('gc', { env: { CONNECTOR_REPLICAS: '3' } })).exitCode).toBe(0);
    expect(rel.connectors()).toHaveLength(3);
  });

  it('uninstall: the pre-delete hook’s gc runs while the pods still run; a pod restarting then provisions nothing; no connector or object is left', async () => {
    const gc = await rel.runCommand('gc', { env: { CONNECTOR_REPLICAS: '0' } });
    expect(gc.exitCode).toBe(0);
    expect(rel.connectors()).toEqual([]);
    // A connector container restarting during the uninstall: its sidecar must not create a new one.
    const pod = rel.pods.find((p) => p.ordinal === 0) as Pod;
    await pod.connector?.kill();
    rel.startConnector(pod);
    await until('the sidecar refuses to provision during the uninstall', () =>
      rel.log(pod.sidecar).includes('the release is being uninstalled'),
    );
    expect(rel.connectors()).toEqual([]);
    expect((await rel.uninstall()).exitCode).toBe(0);
    expect(rel.connectors()).toEqual([]);
    const left = await bed.cp.kubectlOk([
      'get',
      'all,configmaps,secrets,roles,rolebindings,serviceaccounts,pdb',
      '-n',
      'connectors',
      '-l',
      'app.kubernetes.io/instance=edge',
      '-o',
      'name',
    ]);
    expect(left.trim()).toBe('');
  });
});

describe('reuse of offline connectors', () => {
  it('adopts offline connectors race-free, never one a sibling holds, and creates for the rest', async () => {
    const rel = await bed.release('reuse', { replicas: 4, values: { init: { reuseMinAge: '5m' } } });
    const old = new Date(Date.now() - 3600_000);
    const offline = ['pre-a', 'pre-b'].map((name) =>
      bed.tenant.addConnector({
        network: 'lab',
        name,
        state: 'DEAD_HEARTBEAT_TOO_OLD',
        createdAt: old,
        lastHeartbeatAt: old,
      }),
    );
    const young = bed.tenant.addConnector({
      network: 'lab',
      name: 'pre-young',
      state: 'DEAD_NO_HEARTBEAT',
      createdAt: new Date(),
      lastHeartbeatAt: null,
    });
    const pods = await Promise.all([0, 1, 2, 3].map((o) => startPod(rel, o)));
    await Promise.all(pods.map((p) => handedOver(rel, p)));
    const claims = await rel.claims();
    const ids = [0, 1, 2, 3].map((o) => (JSON.parse(claims[`ordinal.${o}`] ?? '{}') as { id: string }).id);
    expect(new Set(ids).size).toBe(4);
    expect(ids).toEqual(expect.arrayContaining(offline.map((c) => c.id)));
    expect(ids).not.toContain(young.id);
    expect(rel.connectors()).toHaveLength(2);
    // Every connector got exactly one pair: no sibling revoked another's.
    for (const id of ids) expect(bed.tenant.connectors().find((c) => c.id === id)?.tokenGenerations).toBe(1);
    // Uninstall releases the adopted ones (kept) and deletes the created ones.
    expect((await rel.uninstall()).exitCode).toBe(0);
    expect(rel.connectors()).toEqual([]);
    expect(
      bed.tenant
        .connectors()
        .filter((c) => c.name.startsWith('pre-'))
        .map((c) => c.name)
        .sort(),
    ).toEqual(['pre-a', 'pre-b', 'pre-young']);
  });
});

describe('crash between any two API calls', () => {
  // A first start makes four vendor calls (network, list, create, tokens), with claim writes to the
  // API server between them: killing the sidecar at each call, before and after the server acted,
  // covers every gap between two API calls.
  it.each(['before', 'after'] as const)(
    'killed at every vendor call (%s the server acts), started again: one connector, no orphan',
    async (phase) => {
      for (let n = 1; n <= 4; n++) {
        const rel = await bed.release(`crash-${phase}-${n}`, {
          replicas: 1,
          network: 'other',
          apiKey: 'crash-key',
        });
        let seen = 0;
        let pod: Pod | undefined;
        const off = bed.tenant.onRequest(async (call) => {
          if (call.phase !== phase || call.key !== 'crash-key' || !pod?.sidecar.running) return;
          if (++seen === n) await pod.sidecar.kill();
        });
        try {
          pod = rel.startSidecar(0);
          await pod.sidecar.wait();
        } finally {
          off();
        }
        expect(seen).toBe(n);
        pod = await startPod(rel, 0);
        await handedOver(rel, pod);
        expect(rel.connectors().map((c) => c.name)).toEqual([`${rel.release}-0`]);
        expect((await rel.uninstall()).exitCode).toBe(0);
        expect(rel.connectors()).toEqual([]);
      }
    },
  );
});

describe('bad configuration: one clear line, non-zero exit', () => {
  it.each([
    ['a missing API key', { TWINGATE_API_KEY: '' }, /--api-key \(TWINGATE_API_KEY\): required/],
    ['an invalid API key', { TWINGATE_API_KEY: 'nope' }, /refused the API key.*TWINGATE_API_KEY/],
    ['an unknown network', { TWINGATE_NETWORK: 'nowhere' }, /remote network "nowhere" not found/],
    ['a key without the Write scope', { TWINGATE_API_KEY: 'read-key' }, /Read & Write scope/],
    ['a key without the Provision scope', { TWINGATE_API_KEY: 'write-key' }, /Provision scope/],
  ])('%s', async (_what, env, message) => {
    const rel = await bed.release('badcfg', { replicas: 1, values: { init: { reuseOffline: false } } });
    const r = await rel.runCommand('provision', {
      env: { ...env, POD_NAME: 'badcfg-0', CONNECTOR_ONCE: 'true' },
    });
    expect(r.exitCode).toBe(2);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^connector-init: /);
    expect(lines[0]).toMatch(message);
    expect(lines[0]).not.toContain('nope');
  });
});
