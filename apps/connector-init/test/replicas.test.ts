import { until } from '@knet/testing';
import { ConnectorBed, type Pod } from './harness';

// connector-init as it ships, against the real API server and the fake tenant: replicas are
// processes with ordinals (sidecar + the launcher running a fake connector), with the chart's RBAC.

jest.setTimeout(180_000);

let bed: ConnectorBed;
const KEYS = {
  'test-key': 'provision',
  'crash-key': 'provision',
  'read-key': 'read',
  'write-key': 'write',
} as const;

beforeAll(async () => {
  bed = await ConnectorBed.start({ keys: { ...KEYS }, networks: ['lab', 'other'], limits: false });
});
afterAll(async () => {
  await bed?.stop();
});

const connectorsOf = (prefix: string) =>
  bed.tenant.connectors().filter((c) => new RegExp(`^${prefix}-\\d+$`).test(c.name));

async function startPod(release: string, ordinal: number, extra: string[] = []): Promise<Pod> {
  const pod = await bed.startSidecar(release, ordinal, { extra });
  await until(`${release}-${ordinal} installs its launcher`, async () => {
    if (!pod.sidecar.running) throw new Error(`sidecar exited: ${pod.sidecar.tail(5)}`);
    return require('node:fs').existsSync(`${pod.handoffDir}/launch`);
  });
  bed.startConnector(pod);
  return pod;
}

async function allAlive(release: string, n: number): Promise<void> {
  await until(
    `${n} ${release} connectors ALIVE`,
    () => {
      for (const p of bed.pods.filter((p) => p.release === release)) {
        if (!p.sidecar.running)
          throw new Error(`${release}-${p.ordinal} sidecar exited: ${p.sidecar.tail(8)}`);
        if (p.connector && !p.connector.running)
          throw new Error(`${release}-${p.ordinal} connector exited: ${p.connector.tail(8)}`);
      }
      const alive = connectorsOf(release).filter((c) => c.state === 'ALIVE');
      return alive.length === n;
    },
    { timeoutMs: 60_000 },
  );
}

describe('five replicas starting at once', () => {
  const R = 'edge';
  beforeAll(async () => {
    await Promise.all([0, 1, 2, 3, 4].map((o) => startPod(R, o)));
    await allAlive(R, 5);
  });

  it('get five distinct connectors, one per ordinal, each with its own token pair never revoked by a sibling', async () => {
    const connectors = connectorsOf(R);
    expect(connectors.map((c) => c.name).sort()).toEqual(['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4']);
    expect(new Set(connectors.map((c) => c.id)).size).toBe(5);
    // One pair each: nobody generated tokens for a sibling's connector.
    expect(connectors.map((c) => c.tokenGenerations)).toEqual([1, 1, 1, 1, 1]);
    const claims = await bed.claims(R);
    const recorded = [0, 1, 2, 3, 4].map(
      (o) => JSON.parse(claims[`ordinal.${o}`] ?? '{}') as { id: string; name: string },
    );
    expect(recorded.map((r) => r.name)).toEqual(['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4']);
    expect(recorded.map((r) => r.id)).toEqual(
      ['edge-0', 'edge-1', 'edge-2', 'edge-3', 'edge-4'].map((n) => connectors.find((c) => c.name === n)?.id),
    );
    // Every fake connector still heartbeats with its pair (a revoked pair makes it exit 3).
    for (const p of bed.pods.filter((p) => p.release === R)) expect(p.connector?.running).toBe(true);
  });

  it('leave no token readable anywhere in the cluster or on disk once ALIVE', async () => {
    const pairs = connectorsOf(R).map((c) => bed.tenant.currentTokens(c.id));
    expect(pairs.every((p) => p && p.accessToken.length > 20)).toBe(true);
    const everything = await bed.cp.kubectlOk(['get', 'secrets,configmaps', '-A', '-o', 'json']);
    const onDisk = bed.pods
      .filter((p) => p.release === R)
      .map((p) =>
        require('node:fs')
          .readdirSync(p.handoffDir)
          .filter((f: string) => f !== 'tokens' && f !== 'sh')
          .map((f: string) => require('node:fs').readFileSync(`${p.handoffDir}/${f}`, 'utf8'))
          .join('\n'),
      )
      .join('\n');
    const logs = bed.pods
      .filter((p) => p.release === R)
      .map((p) => bed.log(p.sidecar))
      .join('\n');
    for (const pair of pairs) {
      for (const token of [pair?.accessToken ?? 'x', pair?.refreshToken ?? 'x']) {
        expect(everything).not.toContain(token);
        expect(onDisk).not.toContain(token);
        expect(logs).not.toContain(token);
      }
    }
    expect(logs).not.toContain('test-key');
  });

  it('status prints every ordinal with its connector and state, as a table and as JSON', async () => {
    const table = await bed.runCommand('status', R);
    expect(table.exitCode).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(/^ORDINAL +CONNECTOR +ID +ORIGIN +STATE +LAST HEARTBEAT$/);
    expect(
      lines.slice(1).map((l) =>
        l
          .split(/ +/)
          .slice(0, 5)
          .filter((_, i) => i !== 2)
          .join(' '),
      ),
    ).toEqual([0, 1, 2, 3, 4].map((o) => `${o} edge-${o} created ALIVE`));
    const json = await bed.runCommand('status', R, { extra: ['-o', 'json'] });
    expect(JSON.parse(json.stdout)).toMatchObject({
      release: R,
      network: { name: 'lab' },
      connectors: expect.arrayContaining([
        expect.objectContaining({ ordinal: 3, name: 'edge-3', state: 'ALIVE', origin: 'created' }),
      ]),
    });
  });

  it('a restarted connector container gets a fresh pair of the same connector', async () => {
    const pod = bed.pods.find((p) => p.release === R && p.ordinal === 1) as Pod;
    const id = connectorsOf(R).find((c) => c.name === 'edge-1')?.id as string;
    const before = bed.tenant.currentTokens(id);
    await pod.connector?.kill();
    bed.tenant.setState(id, 'DEAD_HEARTBEAT_TOO_OLD');
    bed.startConnector(pod);
    await allAlive(R, 5);
    const after = bed.tenant.connectors().find((c) => c.id === id);
    expect(after?.tokenGenerations).toBe(2);
    expect(bed.tenant.currentTokens(id)).not.toEqual(before);
  });

  it('a restarted pod keeps its connector, with at most two API calls', async () => {
    const pod = bed.pods.find((p) => p.release === R && p.ordinal === 2) as Pod;
    const id = connectorsOf(R).find((c) => c.name === 'edge-2')?.id;
    await pod.connector?.stop(1000);
    await pod.sidecar.stop(2000);
    const callsBefore = bed.tenant.calls.length;
    await startPod(R, 2);
    await until('edge-2 handed over', () =>
      bed.log(pod.sidecar).includes('tokens handed to the connector container'),
    );
    const provisionCalls = bed.tenant.calls.slice(callsBefore).filter((c) => c.operation !== 'connector');
    expect(provisionCalls.map((c) => c.operation)).toEqual(['connectorGenerateTokens']);
    await allAlive(R, 5);
    expect(connectorsOf(R).find((c) => c.name === 'edge-2')?.id).toBe(id);
    expect(connectorsOf(R)).toHaveLength(5);
  });

  it('scale 5 → 3 and gc: the two connectors of the gone ordinals are deleted, their records dropped', async () => {
    await bed.stopPods((p) => p.release === R && p.ordinal >= 3);
    const gc = await bed.runCommand('gc', R, { extra: ['--replicas', '3'] });
    expect(gc.exitCode).toBe(0);
    expect(
      connectorsOf(R)
        .map((c) => c.name)
        .sort(),
    ).toEqual(['edge-0', 'edge-1', 'edge-2']);
    expect(Object.keys(await bed.claims(R)).sort()).toEqual([
      'network',
      'ordinal.0',
      'ordinal.1',
      'ordinal.2',
    ]);
    // Idempotent: a second run deletes nothing and succeeds.
    expect((await bed.runCommand('gc', R, { extra: ['--replicas', '3'] })).exitCode).toBe(0);
    expect(connectorsOf(R)).toHaveLength(3);
  });

  it('uninstall (gc --replicas 0, the pre-delete hook): none left', async () => {
    await bed.stopPods((p) => p.release === R);
    const gc = await bed.runCommand('gc', R, { extra: ['--replicas', '0'] });
    expect(gc.exitCode).toBe(0);
    expect(connectorsOf(R)).toEqual([]);
    expect(Object.keys(await bed.claims(R))).toEqual(['network']);
  });
});

describe('reuse of offline connectors', () => {
  it('adopts offline connectors race-free, never one a sibling holds, and creates for the rest', async () => {
    const R = 'reuse';
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
    await Promise.all([0, 1, 2, 3].map((o) => startPod(R, o, ['--reuse-min-age', '5m'])));
    await until(
      '4 reuse pods handed over',
      () =>
        bed.pods.filter((p) => p.release === R).every((p) => bed.log(p.sidecar).includes('tokens handed')),
      { timeoutMs: 60_000 },
    );
    const claims = await bed.claims(R);
    const ids = [0, 1, 2, 3].map((o) => (JSON.parse(claims[`ordinal.${o}`] ?? '{}') as { id: string }).id);
    expect(new Set(ids).size).toBe(4);
    expect(ids).toEqual(expect.arrayContaining(offline.map((c) => c.id)));
    expect(ids).not.toContain(young.id);
    expect(connectorsOf(R)).toHaveLength(2);
    // Every connector got exactly one pair: no sibling revoked another's.
    for (const id of ids) expect(bed.tenant.connectors().find((c) => c.id === id)?.tokenGenerations).toBe(1);
    await bed.stopPods((p) => p.release === R);
    // Uninstall releases the adopted ones (kept) and deletes the created ones.
    expect((await bed.runCommand('gc', R, { extra: ['--replicas', '0'] })).exitCode).toBe(0);
    expect(connectorsOf(R)).toEqual([]);
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
  // A first start makes four vendor calls (network, list, create, tokens), with claim writes to
  // the API server between them: killing the sidecar at each call, before and after the server
  // acted, covers every gap between two API calls.
  it.each(['before', 'after'] as const)(
    'killed at every vendor call (%s the server acts), started again: one connector per ordinal, no orphan',
    async (phase) => {
      for (let n = 1; n <= 4; n++) {
        const R = `crash-${phase}-${n}`;
        await bed.release(R);
        let seen = 0;
        let pod: Pod | undefined;
        const off = bed.tenant.onRequest(async (call) => {
          if (call.phase !== phase || call.key !== 'crash-key' || !pod?.sidecar.running) return;
          if (++seen === n) await pod.sidecar.kill();
        });
        try {
          pod = await bed.startSidecar(R, 0, { apiKey: 'crash-key', network: 'other' });
          await pod.sidecar.wait();
        } finally {
          off();
        }
        expect(seen).toBe(n);
        pod = await bed.startSidecar(R, 0, { apiKey: 'crash-key', network: 'other' });
        bed.startConnector(pod);
        await until(`${R} handed over after the crash ${phase} call ${n}`, () => {
          if (!pod?.sidecar.running) throw new Error(`sidecar exited: ${pod?.sidecar.tail(8)}`);
          return bed.log(pod.sidecar).includes('tokens handed');
        });
        expect(connectorsOf(R).map((c) => c.name)).toEqual([`${R}-0`]);
        await bed.stopPods((p) => p.release === R);
        expect(
          (await bed.runCommand('gc', R, { network: 'other', extra: ['--replicas', '0'] })).exitCode,
        ).toBe(0);
        expect(connectorsOf(R)).toEqual([]);
      }
    },
  );
});

describe('bad configuration: one clear line, non-zero exit', () => {
  const oneLine = (stderr: string) => {
    const lines = stderr.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    return lines[0] as string;
  };
  it.each([
    ['a missing API key', {}, { TWINGATE_API_KEY: '' }, 2, /--api-key \(TWINGATE_API_KEY\): required/],
    ['an invalid API key', { apiKey: 'nope' }, {}, 2, /refused the API key.*TWINGATE_API_KEY/],
    ['an unknown network', { network: 'nowhere' }, {}, 2, /remote network "nowhere" not found/],
    ['a key without the Write scope', { apiKey: 'read-key' }, {}, 2, /Read & Write scope/],
    ['a key without the Provision scope', { apiKey: 'write-key' }, {}, 2, /Provision scope/],
  ])('%s', async (_what, o: { apiKey?: string; network?: string }, env, code, message) => {
    const r = await bed.runCommand('provision', 'badcfg', {
      ...o,
      extra: [
        '--ordinal',
        '0',
        '--handoff-dir',
        `${bed.dir}/badcfg`,
        '--launcher-shell',
        '/bin/busybox',
        '--metrics-port',
        '0',
        '--reuse-offline',
        'false',
      ],
      env,
    });
    expect(r.exitCode).toBe(code);
    const line = oneLine(r.stderr);
    expect(line).toMatch(/^connector-init: /);
    expect(line).toMatch(message);
    expect(line).not.toContain('nope');
  });
});
