import { spawnSync } from 'node:child_process';
import { until } from '@knet/testing';
import { towerBed, writeKubeconfig, type RunningProxy } from './harness';

// No proxy from the bed: this file starts its two replicas itself.
const bed = towerBed({ testTimeout: 180_000, proxy: false });

const ready = async (p: RunningProxy) =>
  (await fetch(`${p.url}/readyz`).catch(() => undefined))?.status === 200;

describe('two proxy replicas with --leader-elect', () => {
  it('exactly one serves; when it dies the other takes over and the agent follows', async () => {
    // Same port range for both: the kubeconfig written by one stays valid when the other serves.
    const shared = ['--leader-elect', '--port-range=19000-19050'];
    const a = await bed.startProxy([...shared, '--identity=proxy-a']);
    // The follower is up but not ready.
    const b = await bed.startProxy([...shared, '--identity=proxy-b'], { waitReady: false });
    await new Promise((r) => setTimeout(r, 3000));
    expect([await ready(a), await ready(b)]).toEqual([true, false]);
    const lease = JSON.parse(
      await bed.host.kubectlOk(['get', 'lease', 'tower-proxy', '-n', 'kubesphere-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string } };
    expect(lease.spec.holderIdentity).toBe('proxy-a');

    const c = await bed.readyCluster('ha', a);
    const kubeconfig = writeKubeconfig(c, bed.host.dir);
    const agentA = bed.startAgent({ cluster: 'ha', token: c.spec!.connection!.token!, proxy: a, id: 'on-a' });
    await bed.untilAgentAvailable('ha', agentA);
    expect(
      spawnSync(bed.host.bin.kubectl, [`--kubeconfig=${kubeconfig}`, 'get', '--raw', '/api']).status,
    ).toBe(0);

    // An agent that reaches the follower is turned away with a reason it logs, and retries.
    const early = bed.startAgent({
      cluster: 'ha',
      token: c.spec!.connection!.token!,
      proxy: b,
      id: 'early-b',
    });
    await until(
      () => `a 503 from the follower; agent log:\n${early.tail(10)}`,
      async () =>
        early.tail(20).includes('proxy answered HTTP 503: this proxy replica is not the leader; retry'),
      20_000,
    );

    const killedAt = Date.now();
    await a.proc.kill();
    // Lease 15 s (client-go's default): B serves once it expires.
    await until(
      () => `proxy-b to take over; its log:\n${b.proc.tail(20)}`,
      async () => ready(b),
      30_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(15_000 + 5_000);
    // The agent pointed at B (a Service would route there now) connects, and the same kubeconfig works.
    await until(
      () => `the kubeconfig to work through proxy-b; its log:\n${b.proc.tail(20)}`,
      async () =>
        spawnSync(bed.host.bin.kubectl, [`--kubeconfig=${kubeconfig}`, 'get', '--raw', '/api']).status === 0,
      30_000,
    );
    const after = JSON.parse(
      await bed.host.kubectlOk(['get', 'lease', 'tower-proxy', '-n', 'kubesphere-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string; leaseTransitions: number } };
    expect(after.spec).toMatchObject({ holderIdentity: 'proxy-b', leaseTransitions: 1 });
  });
});
