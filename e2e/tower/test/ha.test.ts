import { spawnSync } from 'node:child_process';
import { ControlPlane, appBundle, until, type ManagedProcess } from '@knet/testing';
import {
  condition,
  createReadyCluster,
  getCluster,
  startClusters,
  startAgent,
  stopAll,
  startProxy,
  writeKubeconfig,
  type RunningProxy,
} from './harness';

jest.setTimeout(180_000);

let host: ControlPlane;
let member: ControlPlane;
const procs: ManagedProcess[] = [];

afterAll(() => stopAll(procs, host, member));

const ready = async (p: RunningProxy) =>
  (await fetch(`${p.url}/readyz`).catch(() => undefined))?.status === 200;

describe('two proxy replicas with --leader-elect', () => {
  it('exactly one serves; when it dies the other takes over and the agent follows', async () => {
    let saDir: string;
    ({ host, member, saDir } = await startClusters());
    // Same port range for both: the kubeconfig written by one stays valid when the other serves.
    const shared = ['--leader-elect', '--port-range=19000-19050'];
    const a = await startProxy(host, [...shared, '--identity=proxy-a']);
    procs.push(a.proc);
    // The follower is up but not ready.
    const b = await startProxy(host, [...shared, '--identity=proxy-b'], undefined, undefined, {
      waitReady: false,
    });
    procs.push(b.proc);
    await new Promise((r) => setTimeout(r, 3000));
    expect([await ready(a), await ready(b)]).toEqual([true, false]);
    const lease = JSON.parse(
      await host.kubectlOk(['get', 'lease', 'tower-proxy', '-n', 'kubesphere-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string } };
    expect(lease.spec.holderIdentity).toBe('proxy-a');

    const c = await createReadyCluster(host, 'ha', a);
    const kubeconfig = writeKubeconfig(c, host.dir);
    const agentBundle = await appBundle('tower-agent');
    const agentA = startAgent(
      { cluster: 'ha', token: c.spec!.connection!.token!, proxy: a, member, saDir, id: 'on-a' },
      agentBundle,
    );
    procs.push(agentA);
    await until(
      () => 'AgentAvailable=True',
      async () => condition(await getCluster(host, 'ha'), 'AgentAvailable') === 'True',
      30_000,
    );
    expect(spawnSync(host.bin.kubectl, [`--kubeconfig=${kubeconfig}`, 'get', '--raw', '/api']).status).toBe(
      0,
    );

    // An agent that reaches the follower is turned away with a reason it logs, and retries.
    const early = startAgent(
      { cluster: 'ha', token: c.spec!.connection!.token!, proxy: b, member, saDir, id: 'early-b' },
      agentBundle,
    );
    procs.push(early);
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
        spawnSync(host.bin.kubectl, [`--kubeconfig=${kubeconfig}`, 'get', '--raw', '/api']).status === 0,
      30_000,
    );
    const after = JSON.parse(
      await host.kubectlOk(['get', 'lease', 'tower-proxy', '-n', 'kubesphere-system', '-o', 'json']),
    ) as { spec: { holderIdentity: string; leaseTransitions: number } };
    expect(after.spec).toMatchObject({ holderIdentity: 'proxy-b', leaseTransitions: 1 });
  });
});
