/**
 * The charts on a real node: `helm install --wait` with the chart's defaults (or the values file its
 * own tests use) puts pods running our images on a real kubelet, every pod of the release reaches
 * Ready, and `helm uninstall` removes every object it made (the CRDs of `crds/` stay, as helm
 * documents). The tower and pod-gateway charts have their own node suites (tower.test.ts,
 * podgw.test.ts), which install them wired to each other.
 */
import { join } from 'node:path';
import {
  capiModuleDir,
  ensureImages,
  NodeBed,
  parseJsonStream,
  renderProvider,
  rootNetworkState,
  workspaceRoot,
  type BuiltImage,
  type KubeObject,
} from '@knet/testing';
import { chartDir, releasePods, type Pod } from './harness';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`charts: ${l}\n`);
const IMAGES = ['pause', 'tower-proxy', 'kilo-agent', 'capi-packet-manager'] as const;
let images: Record<(typeof IMAGES)[number], BuiltImage>;
let bed: NodeBed | undefined;
let rootBefore = '';

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  images = await ensureImages(IMAGES, log);
  bed = await NodeBed.start({
    sandboxImage: images.pause,
    images: IMAGES.filter((n) => n !== 'pause').map((n) => images[n]),
    log,
  });
});

afterAll(async () => {
  await bed?.stop();
  expect(await rootNetworkState()).toBe(rootBefore);
});

/** What a release made, as `kind/name` (namespaced ones in the release's namespace), CRDs left out. */
async function releaseObjects(release: string, namespace: string): Promise<string[]> {
  const cp = bed!.cp;
  const manifest = await cp.helm(['get', 'manifest', release, '-n', namespace]);
  if (manifest.exitCode !== 0) throw new Error(`helm get manifest ${release}: ${manifest.stderr}`);
  const r = await cp.kubectl(['create', '--dry-run=client', '-o', 'json', '-f', '-'], {
    input: manifest.stdout,
  });
  if (r.exitCode !== 0) throw new Error(`reading ${release}'s manifest: ${r.stderr}`);
  return (parseJsonStream(r.stdout) as KubeObject[])
    .filter((o) => o.kind !== 'CustomResourceDefinition')
    .map((o) => `${o.kind}/${o.metadata.name}`);
}

/**
 * Installs `chart` as `release` in `namespace` with `--wait`, waits until every pod of the release is
 * Ready, and returns the pods. Fails with the pods' state and the namespace's warnings otherwise.
 */
async function install(
  chart: string,
  release: string,
  namespace: string,
  args: string[] = [],
): Promise<Pod[]> {
  const cp = bed!.cp;
  const started = Date.now();
  const r = await cp.helm(
    [
      'install',
      release,
      chartDir(chart),
      '-n',
      namespace,
      '--create-namespace',
      '--wait',
      '--timeout',
      '180s',
      ...args,
    ],
    { timeoutMs: 200_000 },
  );
  // helm's --wait counts a Deployment or DaemonSet with maxUnavailable ≥ replicas as ready at once:
  // wait for the pods themselves.
  const ready =
    r.exitCode === 0
      ? await cp.kubectl(
          [
            'wait',
            '--for=condition=Ready',
            'pods',
            '-n',
            namespace,
            '-l',
            `app.kubernetes.io/instance=${release}`,
            '--timeout=180s',
          ],
          { timeoutMs: 200_000 },
        )
      : r;
  if (ready.exitCode !== 0) {
    const pods = await cp.kubectl(['get', 'pods', '-n', namespace, '-o', 'wide']);
    const events = await cp.kubectl(['get', 'events', '-n', namespace, '--field-selector=type=Warning']);
    const logs = await cp.kubectl([
      'logs',
      '-n',
      namespace,
      '-l',
      `app.kubernetes.io/instance=${release}`,
      '--all-containers',
      '--prefix',
      '--tail=5',
    ]);
    throw new Error(
      `${chart}: ${r.exitCode !== 0 ? 'helm install' : 'pods Ready'} failed: ${ready.stderr}\n${pods.stdout}\n${events.stdout}\n${logs.stdout}`,
    );
  }
  log(`${chart}: installed and Ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return releasePods(cp, namespace, release);
}

/** `helm uninstall --wait`, then: no pod of the release and none of its objects is left. */
async function uninstall(release: string, namespace: string): Promise<void> {
  const cp = bed!.cp;
  const objects = await releaseObjects(release, namespace);
  expect(objects.length).toBeGreaterThan(0);
  const r = await cp.helm(['uninstall', release, '-n', namespace, '--wait', '--timeout', '120s'], {
    timeoutMs: 130_000,
  });
  expect(r.exitCode).toBe(0);
  const gone = await cp.kubectl(
    [
      'wait',
      '--for=delete',
      'pods',
      '-n',
      namespace,
      '-l',
      `app.kubernetes.io/instance=${release}`,
      '--timeout=120s',
    ],
    { timeoutMs: 130_000 },
  );
  // `kubectl wait --for=delete` with a selector that matches nothing says so and exits 1.
  if (gone.exitCode !== 0) expect(gone.stderr).toMatch(/no matching resources found/);
  expect(await releasePods(cp, namespace, release)).toEqual([]);
  const left: string[] = [];
  for (const o of objects) {
    const got = await cp.kubectl(['get', o, '-n', namespace, '-o', 'name']);
    if (got.exitCode === 0) left.push(o);
    else expect(got.stderr).toMatch(/NotFound|not found/);
  }
  expect(left).toEqual([]);
}

const images_ = (pods: Pod[]) =>
  pods.flatMap((p) => [...p.spec.containers, ...(p.spec.initContainers ?? [])].map((c) => c.image));

describe('every chart on a real node', () => {
  it('tower-proxy: defaults, the proxy pod Ready on our image, nothing left after uninstall', async () => {
    const pods = await install('tower-proxy', 'tower-proxy', 'tower-proxy');
    expect(pods.length).toBe(1);
    expect(images_(pods)).toEqual([images['tower-proxy'].ref]);
    await uninstall('tower-proxy', 'tower-proxy');
  });

  it('kilo-agent: defaults, the DaemonSet pod Ready on the node, nothing left after uninstall', async () => {
    const pods = await install('kilo-agent', 'kilo', 'kilo');
    expect(pods.length).toBe(1);
    expect(images_(pods)).toContain(images['kilo-agent'].ref);
    await uninstall('kilo', 'kilo');
  });

  it('capi-packet-manager: its ci values with Cluster API core installed, Ready, nothing left after uninstall', async () => {
    const cp = bed!.cp;
    // A provider is installed next to Cluster API core (clusterctl init); its manager watches
    // core's Clusters and Machines and is not ready without them. Core's CRDs as clusterctl
    // installs them (the conversion webhook is not needed: everything is read at its stored version).
    const core = await renderProvider(cp, join(await capiModuleDir(), 'config', 'default'));
    await cp.apply(
      core.filter((o) => o.kind === 'CustomResourceDefinition'),
      { serverSide: true },
    );
    const pods = await install('capi-packet-manager', 'capi-packet', 'capi-packet-system', [
      '-f',
      join(workspaceRoot(), 'charts/capi-packet-manager/ci/defaults-values.yaml'),
    ]);
    expect(pods.length).toBe(1);
    expect(images_(pods)).toEqual([images['capi-packet-manager'].ref]);
    await uninstall('capi-packet', 'capi-packet-system');
  });
});
