import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KubeConfig } from '@kubernetes/client-node';
import { sleep, until } from '@knet/testing';
import { formatMicroTime, LeaderElector } from '../src';
import { controlPlaneBed } from './bed';
import { FreezableRelay } from './freezable-relay';

jest.setTimeout(60_000);

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL'); // before the control plane stops
});
const bed = controlPlaneBed({ script: 'fixtures/elector.ts' });

interface Line {
  event: string;
  identity: string;
  at: number;
  leader?: string;
}

function candidate(identity: string, lease: string, log: Line[]): ChildProcess {
  const child = spawn(process.execPath, [bed.script], {
    env: { ...process.env, IDENTITY: identity, KUBECONFIG_PATH: bed.cp.kubeconfigPath, LEASE_NAME: lease },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  createInterface({ input: child.stdout! }).on('line', (l) => log.push(JSON.parse(l) as Line));
  return child;
}

async function leaseSpec(
  name: string,
): Promise<{ holderIdentity?: string; renewTime?: string; leaseTransitions?: number }> {
  return JSON.parse(
    await bed.cp.kubectlOk(['get', 'lease', name, '-n', 'default', '-o', 'jsonpath={.spec}']),
  ) as never;
}

describe('LeaderElector: two real processes contend for one Lease', () => {
  it('exactly one leads; after kill -9 the other takes over within the lease duration', async () => {
    const log: Line[] = [];
    const a = candidate('a', 'contend', log);
    const b = candidate('b', 'contend', log);
    await until('a leader', () => log.some((l) => l.event === 'leading'), 20_000);
    // Give both several retry periods to (wrongly) both lead.
    await sleep(2000);
    const leaders = log.filter((l) => l.event === 'leading');
    expect(leaders).toHaveLength(1);
    const first = leaders[0]!.identity;
    const spec = await leaseSpec('contend');
    expect(spec.holderIdentity).toBe(first);
    expect(spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // the follower knows who leads
    expect(log.some((l) => l.identity !== first && l.event === 'leader' && l.leader === first)).toBe(true);

    const killedAt = Date.now();
    (first === 'a' ? a : b).kill('SIGKILL');
    await until(
      'the other to lead',
      () => log.some((l) => l.event === 'leading' && l.identity !== first),
      10_000,
    );
    const tookOver = log.find((l) => l.event === 'leading' && l.identity !== first)!;
    // lease 3 s; the follower checks every 0.5–0.6 s; allow one check period of slack plus scheduling
    expect(tookOver.at - killedAt).toBeLessThanOrEqual(3000 + 1500);
    const after = await leaseSpec('contend');
    expect(after.holderIdentity).toBe(tookOver.identity);
    expect(after.leaseTransitions).toBe(1);
  });

  it('a leader that stops releases the lease so the follower takes over at once', async () => {
    const log: Line[] = [];
    const a = candidate('x', 'release', log);
    await until('x to lead', () => log.some((l) => l.event === 'leading' && l.identity === 'x'), 20_000);
    candidate('y', 'release', log);
    await until(
      'y to see the leader',
      () => log.some((l) => l.identity === 'y' && l.event === 'leader'),
      10_000,
    );
    const stoppedAt = Date.now();
    a.kill('SIGTERM');
    await until('y to lead', () => log.some((l) => l.event === 'leading' && l.identity === 'y'), 10_000);
    const y = log.find((l) => l.event === 'leading' && l.identity === 'y')!;
    expect(log.some((l) => l.identity === 'x' && l.event === 'stopped')).toBe(true);
    // released lease: no need to wait the 3 s lease duration
    expect(y.at - stoppedAt).toBeLessThan(3000);
  });
});

describe('LeaderElector: the path from the leader to the API server stalls', () => {
  let relay: FreezableRelay | undefined;
  const electors: LeaderElector[] = [];
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop()));
    await relay?.close();
  });

  it('the old leader stops leading before a follower with a working connection takes the Lease', async () => {
    const api = new URL(bed.cp.server);
    relay = await FreezableRelay.start({ host: api.hostname, port: Number(api.port) });
    const viaRelay = new KubeConfig();
    viaRelay.loadFromString(
      bed.cp.adminKubeconfig().replaceAll(bed.cp.server, `https://127.0.0.1:${relay.port}`),
    );
    const log: { identity: string; event: 'started' | 'stopped' | 'leader'; at: number; leader?: string }[] =
      [];
    const elector = (identity: string, kc: KubeConfig) => {
      const e = new LeaderElector({
        kc,
        namespace: 'default',
        name: 'stall',
        identity,
        leaseDurationMs: 3000,
        renewDeadlineMs: 2000,
        retryPeriodMs: 500,
        onStartedLeading: () => log.push({ identity, event: 'started', at: Date.now() }),
        onStoppedLeading: () => log.push({ identity, event: 'stopped', at: Date.now() }),
        onNewLeader: (leader) => log.push({ identity, event: 'leader', at: Date.now(), leader }),
      });
      electors.push(e);
      e.start();
      return e;
    };
    const has = (identity: string, event: string, leader?: string) =>
      log.find((l) => l.identity === identity && l.event === event && (!leader || l.leader === leader));

    elector('old', viaRelay);
    await until('old to lead', () => has('old', 'started'), 20_000);
    elector('new', bed.kc); // straight to the API server
    await until('new to see old lead', () => has('new', 'leader', 'old'), 10_000);
    await sleep(1000); // a few renewals through the relay

    relay.freeze();
    await until('new to lead', () => has('new', 'started'), 15_000);
    const stopped = has('old', 'stopped');
    const started = has('new', 'started')!;
    // The old leader's requests hung (bytes held, nothing closed), yet it stepped down first.
    expect(relay.heldBytes).toBeGreaterThan(0);
    expect(stopped).toBeDefined();
    expect(stopped!.at).toBeLessThan(started.at);
    expect((await leaseSpec('stall')).holderIdentity).toBe('new');

    // Once its path works again, the old leader is a follower of the new one.
    relay.thaw();
    await until('old to see new lead', () => has('old', 'leader', 'new'), 10_000);
    expect(log.filter((l) => l.event === 'started').map((l) => l.identity)).toEqual(['old', 'new']);
  });
});

describe('formatMicroTime', () => {
  it.each([
    ['2026-01-02T03:04:05.678Z', '2026-01-02T03:04:05.678000Z'],
    ['2026-12-31T23:59:59.000Z', '2026-12-31T23:59:59.000000Z'],
  ])('%s → %s', (iso, want) => expect(formatMicroTime(new Date(iso))).toBe(want));
});
