/**
 * The charts on a real node: `helm install --wait` with the chart's defaults (or the values file its
 * own tests use) puts pods running our images on a real kubelet, every pod of the release reaches
 * Ready, and `helm uninstall` removes every object it made (the CRDs of `crds/` stay, as helm
 * documents). The tower and pod-gateway charts have their own node suites (tower.test.ts,
 * podgw.test.ts), which install them wired to each other; the connector chart has connector.test.ts.
 *
 * kilo-agent is installed with each of its ci values files. Its defaults use the kernel's WireGuard,
 * which this VM's kernel lacks (no module, none built in): there the pod must not be Ready and must
 * say why in one line (before the node had a pod CIDR, the agent applied nothing and sat Ready). With
 * wireguard-go-values.yaml the sidecar (a local stand-in image for the public one) makes kilo0 and
 * the agent configures it through the UAPI socket.
 */
import { join } from 'node:path';
import {
  capiModuleDir,
  ensureImages,
  NodeBed,
  parseJsonStream,
  renderProvider,
  rootNetworkState,
  until,
  workspaceRoot,
  type BuiltImage,
  type KubeObject,
} from '@knet/testing';
import { chartDir, releasePods, type Pod } from './harness';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`charts: ${l}\n`);
const IMAGES = ['pause', 'tower-proxy', 'kilo-agent', 'wireguard-go', 'capi-packet-manager'] as const;
let images: Record<(typeof IMAGES)[number], BuiltImage>;
let bed: NodeBed | undefined;
let rootBefore = '';
/** Whether the kernel can make WireGuard devices (this VM's cannot: no module, none built in). */
let kernelWireGuard = false;

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  images = await ensureImages(IMAGES, log);
  bed = await NodeBed.start({
    sandboxImage: images.pause,
    images: IMAGES.filter((n) => n !== 'pause').map((n) => images[n]),
    log,
  });
  const probe = await bed.host.exec('ip', ['link', 'add', 'knet-wgprobe', 'type', 'wireguard'], {
    check: false,
  });
  kernelWireGuard = probe.exitCode === 0;
  if (kernelWireGuard) await bed.host.exec('ip', ['link', 'del', 'knet-wgprobe']);
  log(
    `the kernel ${kernelWireGuard ? 'has' : 'has no'} WireGuard (${probe.stderr.trim() || 'ip link add … type wireguard: ok'})`,
  );
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
 * Ready (unless `ready: false`), and returns the pods. Fails with the pods' state and the
 * namespace's warnings otherwise.
 */
async function install(
  chart: string,
  release: string,
  namespace: string,
  args: string[] = [],
  o: { ready?: boolean } = {},
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
    r.exitCode === 0 && o.ready !== false
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
    // Out of the way of the next test (a DaemonSet's host ports would keep its pods Pending).
    await cp.helm(['uninstall', release, '-n', namespace, '--wait', '--timeout', '120s'], {
      timeoutMs: 130_000,
    });
    throw new Error(
      `${chart}: ${r.exitCode !== 0 ? 'helm install' : 'pods Ready'} failed: ${ready.stderr}\n${pods.stdout}\n${events.stdout}\n${logs.stdout}`,
    );
  }
  log(
    `${chart}: installed${o.ready === false ? '' : ' and Ready'} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
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

/** kilo-agent's values for the wireguard-go sidecar on the local stand-in image (see below). */
function wireguardGoImage(): string {
  const m = /^([^/]+)\/(.+):([^:]+)$/.exec(images['wireguard-go'].ref) as RegExpExecArray;
  return `--set=wireguardGo.image.registry=${m[1]},wireguardGo.image.repository=${m[2]},wireguardGo.image.tag=${m[3]}`;
}

/** `kubectl exec` in the kilo-agent container of `pod`. */
function inAgent(namespace: string, pod: Pod, argv: string[]) {
  return bed!.cp.kubectl(['exec', '-n', namespace, pod.metadata.name, '-c', 'kilo-agent', '--', ...argv], {
    timeoutMs: 30_000,
  });
}

/**
 * Waits until kilo-agent configured kilo0 (the only node leads its location: its key and Kilo's
 * port 51820, seen through `wg` in its container), and returns the device's kind on the node:
 * `wireguard` (the kernel's) or `tun` (wireguard-go's). Fails with the pod's logs.
 */
async function kiloDevice(namespace: string, pod: Pod): Promise<string | undefined> {
  try {
    await until(
      'kilo-agent configures kilo0',
      async () =>
        (await inAgent(namespace, pod, ['wg', 'show', 'kilo0', 'listen-port'])).stdout.trim() === '51820',
      60_000,
    );
  } catch (e) {
    const logs = await bed!.cp.kubectl([
      'logs',
      '-n',
      namespace,
      pod.metadata.name,
      '--all-containers',
      '--prefix',
    ]);
    const wg = await inAgent(namespace, pod, ['wg', 'show', 'kilo0']);
    throw new Error(`${(e as Error).message}\nwg show kilo0: ${wg.stdout}${wg.stderr}\n${logs.stdout}`);
  }
  const link = await bed!.host.exec('ip', ['-d', '-j', 'link', 'show', 'kilo0']);
  const [dev] = JSON.parse(link.stdout) as { linkinfo?: { info_kind?: string } }[];
  return dev?.linkinfo?.info_kind;
}

describe('every chart on a real node', () => {
  it('tower-proxy: defaults, the proxy pod Ready on our image, nothing left after uninstall', async () => {
    const pods = await install('tower-proxy', 'tower-proxy', 'tower-proxy');
    expect(pods.length).toBe(1);
    expect(images_(pods)).toEqual([images['tower-proxy'].ref]);
    await uninstall('tower-proxy', 'tower-proxy');
  });

  it('kilo-agent: defaults (the kernel’s WireGuard): Ready on a kernel that has it; on one without (this VM), not Ready and saying why in one line', async () => {
    const pods = await install('kilo-agent', 'kilo', 'kilo', [], { ready: kernelWireGuard });
    try {
      expect(pods.length).toBe(1);
      const pod = pods[0] as Pod;
      expect(images_(pods)).toEqual([images['kilo-agent'].ref]);
      if (kernelWireGuard) {
        expect(await kiloDevice('kilo', pod)).toBe('wireguard');
      } else {
        const cp = bed!.cp;
        let logs = '';
        await until(
          'kilo-agent logs why it has no device',
          async () => {
            logs = (await cp.kubectl(['logs', '-n', 'kilo', pod.metadata.name, '-c', 'kilo-agent'])).stdout;
            return logs.includes('cannot create WireGuard device kilo0');
          },
          90_000,
        );
        expect(logs).toContain(
          'the kernel has no WireGuard (ip link add kilo0 type wireguard: unsupported), and wireguard-go failed: Failed to create TUN device',
        );
        expect(logs).not.toContain('Running wireguard-go is not required');
        // /health answers 503 with the error: the pod is not Ready, and nothing pretends otherwise.
        const ready = await cp.kubectlOk([
          'get',
          'pod',
          '-n',
          'kilo',
          pod.metadata.name,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        expect(ready).toBe('False');
      }
    } finally {
      await uninstall('kilo', 'kilo');
    }
  });

  it('kilo-agent: its wireguard-go ci values, the agent configures the sidecar’s userspace device through its socket', async () => {
    // The chart's default sidecar image (masipcat/wireguard-go-docker) cannot be pulled here: the
    // test stand-in built from Debian's wireguard-go (docker/wireguard-go.Dockerfile) takes its place.
    const pods = await install('kilo-agent', 'kilo-wg', 'kilo-wg', [
      '-f',
      join(workspaceRoot(), 'charts/kilo-agent/ci/wireguard-go-values.yaml'),
      wireguardGoImage(),
    ]);
    try {
      expect(pods.length).toBe(1);
      expect(images_(pods).sort()).toEqual([images['kilo-agent'].ref, images['wireguard-go'].ref].sort());
      // kilo0 is wireguard-go's TUN device, configured by the agent (--create-interface=false)
      // through the UAPI socket on the volume they share.
      expect(await kiloDevice('kilo-wg', pods[0] as Pod)).toBe('tun');
    } finally {
      await uninstall('kilo-wg', 'kilo-wg');
    }
    // The sidecar stopped after the agent (its clean-up needed the device), and took kilo0 with it.
    expect((await bed!.host.exec('ip', ['link', 'show', 'kilo0'], { check: false })).exitCode).not.toBe(0);
  });

  it('kilo-agent: its existing-configmap ci values, the ConfigMap’s files at /etc/kilo and its keys in the env', async () => {
    // Where the kernel has no WireGuard, with the sidecar (as a user there would).
    const sidecar = kernelWireGuard ? [] : ['--set=wireguardGo.enabled=true', wireguardGoImage()];
    const pods = await install('kilo-agent', 'kilo-cm', 'kilo-cm', [
      '-f',
      join(workspaceRoot(), 'charts/kilo-agent/ci/existing-configmap-values.yaml'),
      ...sidecar,
    ]);
    try {
      expect(pods.length).toBe(1);
      const seen = await inAgent('kilo-cm', pods[0] as Pod, [
        'sh',
        '-c',
        'echo "level=$KILO_AGENT_LOG_LEVEL"; grep -c kube-bridge /etc/kilo/cni-conf.json',
      ]);
      expect([seen.exitCode, seen.stdout.trim()]).toEqual([0, 'level=info\n1']);
      expect(await kiloDevice('kilo-cm', pods[0] as Pod)).toBe(kernelWireGuard ? 'wireguard' : 'tun');
    } finally {
      await uninstall('kilo-cm', 'kilo-cm');
    }
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
