/**
 * `npm run lab -- --with-node`: the tower and pod-gateway scenes on the real node (NodeBed), from
 * their charts and our images. `--check --with-node --only tower,pod-gateway` must bring up the
 * node and both scenes, pass every proof, and leave nothing: no namespace, process, temp dir, lab
 * folder or cgroup of the node, and the root network namespace as it was. Ctrl-C while the node's
 * scenes come up tears the node down too.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupRootsWithPrefix, namespaceOwner, rootNetworkState } from '@knet/testing';
import { lab, leftBy, type LabEvent, type Run } from './lab-process';

// The images are built when missing (minutes, once); with them cached a run takes about 2 minutes.
jest.setTimeout(20 * 60_000);

/**
 * What the nodes of lab `pid` left: cgroup roots and folders in the machine's temp folder (both
 * named `knet-node-<netns>`, and the namespace's name carries the owner's pid).
 */
function nodeLeftBy(pid: number): string[] {
  const prefix = 'knet-node-';
  const mine = (n: string) => n.startsWith(prefix) && namespaceOwner(n.slice(prefix.length)) === pid;
  return [
    ...cgroupRootsWithPrefix(prefix)
      .filter(mine)
      .map((n) => `cgroup ${n}`),
    ...readdirSync(tmpdir())
      .filter(mine)
      .map((n) => `folder ${join(tmpdir(), n)}`),
  ];
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'knet-lab-node-test-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm run lab -- --check --with-node --only tower,pod-gateway', () => {
  let run: Run;
  let code: number | null;
  let rootBefore: string;
  const dir = () => join(work, 'tour');
  const proof = (scene: string, component: string): LabEvent | undefined =>
    run.events.find((e) => e.event === 'proof' && e.scene === scene && e.component === component);

  beforeAll(async () => {
    rootBefore = await rootNetworkState();
    run = lab(['--check', '--json', '--with-node', '--only', 'tower,pod-gateway', `--dir=${dir()}`]);
    code = await run.exited;
  });

  it('brings up the node, then tower and pod-gateway on it (not the control-plane scenes); every proof passes', () => {
    expect({ code, stderr: run.stderr() }).toEqual({ code: 0, stderr: '' });
    expect(run.events.find((e) => e.event === 'start')).toMatchObject({
      scenes: ['node', 'tower', 'pod-gateway'],
    });
    const up = run.events.filter((e) => e.event === 'scene').map((e) => [e.scene, e.state]);
    expect(up).toEqual([
      ['node', 'up'],
      ['tower', 'up'],
      ['pod-gateway', 'up'],
    ]);
    const proofs = run.events.filter((e) => e.event === 'proof');
    expect(proofs.map((p) => [p.scene, p.component, p.ok])).toEqual([
      ['node', 'node knet-node', true],
      ['node', 'node network', true],
      ['tower', 'tower-proxy', true],
      ['tower', 'tower-agent', true],
      ['tower', 'kubectl via tower', true],
      ['tower', 'Service mc-member', true],
      ['pod-gateway', 'gateway and webhook', true],
      ['pod-gateway', 'client web', true],
      ['pod-gateway', 'routed', true],
      ['pod-gateway', 'DNS via gateway', true],
      ['pod-gateway', 'Job fetch', true],
    ]);
    expect(run.events.find((e) => e.event === 'summary')).toMatchObject({ ok: true, passed: 11, failed: 0 });
  });

  it('the proofs show the charts doing their job on the node, each with a command to try', () => {
    // The commands a user types: kubectl with the node's kubeconfig, or in the node's namespace.
    for (const p of run.events.filter((e) => e.event === 'proof' && e.scene !== 'node')) {
      expect(String(p.command)).toMatch(
        new RegExp(`kubectl --kubeconfig ${dir()}/(node|member-via-tower)\\.kubeconfig`),
      );
    }
    expect(String(proof('node', 'node knet-node')?.result)).toMatch(
      /^Ready, 192\.0\.2\.10, kubelet v\d+\.\d+\.\d+, containerd:\/\//,
    );
    expect(String(proof('tower', 'tower-proxy')?.result)).toMatch(
      /^pod tower-proxy-\S+ 198\.51\.100\.\d+ Running, Ready \(ghcr\.io\/knet\/tower-proxy:\S+\); Cluster member Initialized, listener https:\/\/203\.0\.113\.\d+:6443$/,
    );
    expect(String(proof('tower', 'tower-agent')?.result)).toMatch(/AgentAvailable=True since .*, 1 session$/);
    // Through the tunnel, as the agent's ServiceAccount, counted by the proxy.
    expect(String(proof('tower', 'kubectl via tower')?.result)).toMatch(
      /^\d+ namespaces incl\. lab-member-only, as system:serviceaccount:kubesphere-system:tower-agent; [1-9]\d* bytes back through the tunnel$/,
    );
    // The internet saw the gateway, which is not the client: its address is the gateway pod's.
    const gateway = /^gateway \S+ (198\.51\.100\.\d+), 2 webhook pods; all Running and Ready$/.exec(
      String(proof('pod-gateway', 'gateway and webhook')?.result),
    )?.[1];
    expect(gateway).toBeDefined();
    const client =
      /^(198\.51\.100\.\d+): gateway-init \(client-init\) first, native sidecar gateway-sidecar \(client-sidecar\); default via 172\.16\.0\.1 dev vxlan0$/.exec(
        String(proof('pod-gateway', 'client web')?.result),
      )?.[1];
    expect(client).toBeDefined();
    expect(client).not.toBe(gateway);
    expect(proof('pod-gateway', 'routed')?.result).toBe(
      `example.test (192.0.2.130) saw ${gateway}, the gateway`,
    );
    expect(proof('pod-gateway', 'DNS via gateway')?.result).toBe(
      `example.test → 192.0.2.130 from 172.16.0.1; the uplink's nameserver saw only ${gateway} ask`,
    );
    expect(String(proof('pod-gateway', 'Job fetch')?.result)).toMatch(
      new RegExp(
        `^fetch-\\S+ \\(198\\.51\\.100\\.\\d+\\) Succeeded in [\\d.]+ s; the internet saw ${gateway?.replace(/\./g, '\\.')}$`,
      ),
    );
  });

  it('tears down and leaves nothing: the node (its own check), namespaces, processes, temp dirs, cgroups, the lab folder; the root namespace as it was', async () => {
    expect(run.events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
    expect(leftBy(run.child.pid!)).toEqual([]);
    expect(nodeLeftBy(run.child.pid!)).toEqual([]);
    expect(existsSync(dir())).toBe(false);
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});

describe('on the node by default: Ctrl-C while the scenes on the node come up', () => {
  it('exit 130; the node is torn down and nothing is left', async () => {
    const rootBefore = await rootNetworkState();
    const dir = join(work, 'sigint');
    // No flag: the node is the lab's default.
    const run = lab(['--check', '--json', '--only', 'tower', `--dir=${dir}`]);
    await run.waitFor((e) => e.event === 'scene' && e.scene === 'node');
    await run.waitFor(
      (e) => e.event === 'progress' && String(e.line).startsWith('tower: helm install tower-proxy'),
    );
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
    expect(leftBy(run.child.pid!)).toEqual([]);
    expect(nodeLeftBy(run.child.pid!)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});
