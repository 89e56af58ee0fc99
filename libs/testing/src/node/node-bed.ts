import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, waitForProcess } from '../controlplane/controlplane';
import { ManagedProcess } from '../controlplane/process';
import { execArgv, processAlive, run } from '../exec';
import { exposeNamespacePort, NetLab, namespaceOwner, type NetHost } from '../netns';
import { ensureNodeBinaries, type NodeBinary } from './binaries';
import { cgroupPids, cgroupRootsWithPrefix, cgroupTree, createCgroupRoot, removeCgroupRoot } from './cgroups';
import {
  cniNetwork,
  containerdConfig,
  DEFAULT_NODE_NETWORK,
  kubeletConfig,
  kubeProxyConfig,
  nodePaths,
  type NodeNetwork,
  type NodePaths,
} from './config';

type Log = (line: string) => void;

/** An image for the node: an OCI archive and the reference it carries. */
export interface NodeImage {
  ref: string;
  archive: string;
}

export interface NodeBedOptions {
  /** The sandbox ("pause") image; containerd's `sandbox_image`. */
  sandboxImage: NodeImage;
  /** More images to import before the kubelet starts (`importImages` adds more later). */
  images?: readonly NodeImage[];
  /** Addresses (default {@link DEFAULT_NODE_NETWORK}: documentation ranges). */
  network?: Partial<NodeNetwork>;
  /** Progress lines. */
  log?: Log;
  /** Keep the node's folder (logs, configs) after stop, to debug a failure. */
  keepDir?: boolean;
  /** How long to wait for the Node to be Ready (default 120 s). */
  readyTimeoutMs?: number;
  /**
   * Give the node an uplink: a second namespace, "the internet" (`bed.uplink`), joined to the node
   * by a veth, and the node's default route through it. Servers a test starts there are what pods'
   * egress reaches; the pods' resolv.conf (dnsPolicy Default) names it as the nameserver. Without
   * an uplink the node has no default route: pods reach only the node, pods and Services.
   */
  uplink?: boolean;
  /**
   * KubeletConfiguration fields set over the bed's (e.g. `{ allowedUnsafeSysctls: ['net.ipv4.ip_forward'] }`,
   * as an operator would for pod-gateway's gateway).
   */
  kubelet?: Record<string, unknown>;
  /**
   * Where the node's folder (`knet-node-<netns>`) goes (default the temp folder). Keep it where
   * `sweepStaleNodes` looks (the machine's temp folder), so a run that dies is swept by the next.
   */
  parentDir?: string;
}

/** The uplink's addresses: a /30 of the node's documentation range, away from the node address. */
export const UPLINK_NETWORK = { node: '192.0.2.129', internet: '192.0.2.130', prefix: 30 } as const;

/** Every node's folder, cgroup root and netns carry this, followed by the netns name. */
const NODE_PREFIX = 'knet-node-';
/** containerd's overlay snapshotter: containers share the image's layers instead of copies. */
const SNAPSHOTTER = 'overlayfs';

/**
 * A real Kubernetes node on this machine, in a network namespace the bed creates: etcd,
 * kube-apiserver and kube-controller-manager (`ControlPlane` with `inNamespace`), containerd (its
 * CRI plugin and the CNI bridge plugin), the kubelet and kube-proxy, all inside that namespace. Pods
 * get their own namespaces, addresses from `podCidr` on the node's bridge, Services from
 * `serviceCidr` through kube-proxy's iptables rules in the node's namespace. The API server is
 * reached from here through a relay (a unix socket, see `exposeNamespacePort`): nothing is added to
 * the root namespace. Images are imported from OCI archives (`ctr images import`); nothing is
 * pulled.
 *
 * `stop()` removes every container, mount, cgroup, process and the namespace; a run that died
 * is swept by the next `start()`.
 */
export class NodeBed {
  private procs: ManagedProcess[] = [];
  private stopped = false;
  /** "The internet" when started with `uplink: true`: a namespace behind the node's default route. */
  uplink: NetHost | undefined;

  private constructor(
    readonly lab: NetLab,
    /** The node's network namespace. */
    readonly host: NetHost,
    readonly network: NodeNetwork,
    readonly paths: NodePaths,
    /** The cgroup root of the kubelet (`/knet-node-<netns>`). */
    readonly cgroupRoot: string,
    private readonly keepDir: boolean,
    private readonly log: Log,
    private cpRef?: ControlPlane,
  ) {}

  /** The control plane (API server, controller manager) of this node's cluster. */
  get cp(): ControlPlane {
    if (!this.cpRef) throw new Error('NodeBed: the control plane is not started');
    return this.cpRef;
  }

  static async start(opts: NodeBedOptions): Promise<NodeBed> {
    const log = opts.log ?? (() => undefined);
    await sweepStaleNodes(log);
    const bin = await ensureNodeBinaries(log);
    const lab = await NetLab.create();
    let bed: NodeBed | undefined;
    try {
      const host = await lab.addHost('node', { forwarding: true });
      const id = `${NODE_PREFIX}${host.name}`;
      // The CNI network is named after the node, so its cached results can be found and removed.
      const network = { ...DEFAULT_NODE_NETWORK, cniName: id, ...opts.network };
      const paths = nodePaths(join(opts.parentDir ?? tmpdir(), id));
      bed = new NodeBed(lab, host, network, paths, id, opts.keepDir ?? false, log);
      await bed.boot(opts, bin);
      return bed;
    } catch (e) {
      if (bed) await bed.stop().catch(() => undefined);
      else await lab.dispose().catch(() => undefined);
      throw e;
    }
  }

  private async boot(opts: NodeBedOptions, bin: Record<NodeBinary, string>): Promise<void> {
    const { host, network: net, paths: p } = this;
    const started = Date.now();
    const inNs = ['nsenter', `--net=/run/netns/${host.name}`, '--'];
    for (const d of [p.containerdRoot, p.containerdState, p.containerdOpt, p.runcRoot, p.cniConfDir]) {
      mkdirSync(d, { recursive: true });
    }
    for (const d of [p.cniIpamDir, p.kubeletCertDir, p.podLogsDir, p.volumePluginDir]) {
      mkdirSync(d, { recursive: true });
    }
    // The node's address lives on its loopback device: reachable from pods (via the bridge) and
    // from the node's own programs, with no extra kernel module.
    await host.ip('addr', 'add', `${net.nodeIp}/32`, 'dev', 'lo');
    // The node's own programs (the API server calling a webhook's Service, hostNetwork pods) need a
    // route to ClusterIPs before kube-proxy's OUTPUT rules can rewrite them; a real node has its
    // default route for that. This one goes nowhere by itself: every ClusterIP is DNATed first.
    await host.ip('route', 'add', net.serviceCidr, 'dev', 'lo');
    if (opts.uplink) {
      const internet = await this.lab.addHost('internet');
      const u = UPLINK_NETWORK;
      await this.lab.link(host, internet, {
        a: { ifname: 'uplink0', address: `${u.node}/${u.prefix}` },
        b: { ifname: 'eth0', address: `${u.internet}/${u.prefix}` },
      });
      await host.ip('route', 'add', 'default', 'via', u.internet);
      await internet.ip('route', 'add', net.podCidr, 'via', u.node);
      await internet.ip('route', 'add', `${net.nodeIp}/32`, 'via', u.node);
      this.uplink = internet;
    }

    this.cpRef = await ControlPlane.start({
      controllerManager: true,
      inNamespace: {
        netns: host.name,
        address: net.nodeIp,
        serviceCidr: net.serviceCidr,
        podCidr: net.podCidr,
        relay: (port) => exposeNamespacePort(host, port),
      },
    });
    const cp = this.cp;
    const schedulerKubeconfig = await cp.clientKubeconfig(
      'kube-scheduler.kubeconfig',
      'system:kube-scheduler',
    );
    this.spawn('kube-scheduler', [
      ...inNs,
      bin['kube-scheduler'],
      `--kubeconfig=${schedulerKubeconfig}`,
      `--authentication-kubeconfig=${schedulerKubeconfig}`,
      `--authorization-kubeconfig=${schedulerKubeconfig}`,
      '--bind-address=127.0.0.1',
      '--secure-port=10259',
      '--leader-elect=false',
      '--v=1',
    ]);
    this.log(`node ${net.nodeName}: control plane ready in ${secs(started)} s (${cp.server})`);

    writeFileSync(
      join(p.dir, 'containerd.toml'),
      containerdConfig(p, { sandboxImage: opts.sandboxImage.ref, snapshotter: SNAPSHOTTER }),
    );
    writeFileSync(join(p.cniConfDir, '10-knet-node.conflist'), JSON.stringify(cniNetwork(net, p), null, 2));
    // Pods with dnsPolicy Default get this: the uplink's address when there is one (a test may
    // serve DNS there), else the node's, where nothing answers.
    const nameserver = opts.uplink ? UPLINK_NETWORK.internet : net.nodeIp;
    writeFileSync(p.resolvConf, `nameserver ${nameserver}\noptions ndots:1\n`);
    const containerd = this.spawn('containerd', [
      ...inNs,
      'containerd',
      '--config',
      join(p.dir, 'containerd.toml'),
    ]);
    await waitForProcess(
      containerd,
      Date.now() + 30_000,
      async () => (await this.ctr(['version'])).exitCode === 0,
    );
    await this.importImages([opts.sandboxImage, ...(opts.images ?? [])]);

    createCgroupRoot(this.cgroupRoot);
    const kubeletKubeconfig = await cp.clientKubeconfig('kubelet.kubeconfig', `system:node:${net.nodeName}`, [
      'system:nodes',
    ]);
    const serving = await cp.servingCertificate(net.nodeName, [net.nodeIp], [net.nodeName]);
    const tlsCertFile = join(p.kubeletCertDir, 'kubelet.crt');
    const tlsPrivateKeyFile = join(p.kubeletCertDir, 'kubelet.key');
    writeFileSync(tlsCertFile, serving.certPem, { mode: 0o600 });
    writeFileSync(tlsPrivateKeyFile, serving.keyPem, { mode: 0o600 });
    const clientCaFile = join(p.kubeletCertDir, 'ca.crt');
    writeFileSync(clientCaFile, cp.caPem);
    const kubeletYaml = join(p.dir, 'kubelet.yaml');
    writeFileSync(
      kubeletYaml,
      JSON.stringify(
        {
          ...kubeletConfig(net, p, {
            cgroupRoot: `/${this.cgroupRoot}`,
            clientCaFile,
            tlsCertFile,
            tlsPrivateKeyFile,
          }),
          ...opts.kubelet,
        },
        null,
        2,
      ),
    );
    const kubelet = this.spawn('kubelet', [
      ...inNs,
      bin.kubelet,
      `--config=${kubeletYaml}`,
      `--kubeconfig=${kubeletKubeconfig}`,
      `--root-dir=${p.kubeletRoot}`,
      `--cert-dir=${p.kubeletCertDir}`,
      `--node-ip=${net.nodeIp}`,
      `--hostname-override=${net.nodeName}`,
      '--v=1',
    ]);
    const readyBy = Date.now() + (opts.readyTimeoutMs ?? 120_000);
    await waitForProcess(kubelet, readyBy, async () => {
      const r = await cp.kubectl([
        'get',
        'node',
        net.nodeName,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
      ]);
      return r.stdout.trim() === 'True';
    });
    this.log(`node ${net.nodeName}: kubelet Ready in ${secs(started)} s`);

    const proxyKubeconfig = await cp.clientKubeconfig('kube-proxy.kubeconfig', 'system:kube-proxy');
    const proxyYaml = join(p.dir, 'kube-proxy.yaml');
    writeFileSync(proxyYaml, JSON.stringify(kubeProxyConfig(net, proxyKubeconfig), null, 2));
    const proxy = this.spawn('kube-proxy', [...inNs, bin['kube-proxy'], `--config=${proxyYaml}`, '--v=1']);
    await waitForProcess(proxy, readyBy, async () => {
      const r = await host.exec('iptables', ['-t', 'nat', '-S', 'KUBE-SERVICES'], { check: false });
      return r.stdout.includes('default/kubernetes:https');
    });
    this.log(`node ${net.nodeName}: kube-proxy programmed Services in ${secs(started)} s`);
  }

  private spawn(name: string, argv: string[]): ManagedProcess {
    const [cmd, ...args] = argv as [string, ...string[]];
    const proc = ManagedProcess.start(name, cmd, args, join(this.paths.dir, `${name}.log`));
    this.procs.push(proc);
    return proc;
  }

  /** A process of the node (containerd, kubelet, kube-proxy), e.g. to read its log on failure. */
  process(name: string): ManagedProcess | undefined {
    return this.procs.find((p) => p.name === name);
  }

  /** Runs `ctr` against the node's containerd, in the CRI plugin's `k8s.io` namespace. */
  ctr(args: readonly string[], timeoutMs = 120_000): ReturnType<typeof run> {
    return run('ctr', ['--address', this.paths.containerdSocket, '--namespace', 'k8s.io', ...args], {
      timeoutMs,
    });
  }

  /** Imports OCI archives into the node's containerd (where the kubelet finds them by reference). */
  async importImages(images: readonly NodeImage[]): Promise<void> {
    for (const image of images) {
      const r = await this.ctr(['images', 'import', '--snapshotter', SNAPSHOTTER, image.archive]);
      if (r.exitCode !== 0) {
        throw new Error(
          `importing ${image.archive} into the node failed: ${r.stderr.trim() || r.stdout.trim()}`,
        );
      }
      const check = await this.ctr(['images', 'ls', '--quiet', `name==${normalizeRef(image.ref)}`]);
      if (!check.stdout.includes(normalizeRef(image.ref))) {
        throw new Error(
          `${image.archive} imported, but the node has no image ${image.ref}: the archive must carry that name (buildah commit oci-archive:FILE:${image.ref})`,
        );
      }
    }
  }

  /**
   * Stops everything and removes what the node made: pods' processes (through the node's cgroups),
   * containerd, the kubelet, kube-proxy, the control plane, mounts under the node's folder, the
   * cgroup root, the namespace, the folder and the kubelet's links in /var/log/containers. Tries
   * every step, then throws one line naming what failed. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const failures: string[] = [];
    const step = async (what: string, f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        failures.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
      }
    };
    for (const name of ['kube-proxy', 'kubelet', 'kube-scheduler'])
      await step(name, () => this.process(name)?.stop());
    // Containers first (their shims would restart nothing without the kubelet, but keep them from
    // writing while the folder goes), then containerd.
    await step('pods', async () => {
      const left = await removeCgroupRoot(this.cgroupRoot);
      if (left.length > 0) throw new Error(`cgroups still in use: ${left.join(', ')}`);
    });
    await step('containerd', () => this.process('containerd')?.stop());
    await step('control plane', () => this.cpRef?.stop());
    await step('network namespace', () => this.lab.dispose());
    await step('mounts', () => unmountUnder(this.paths.dir));
    await step('container log links', () => removeLinksInto('/var/log/containers', this.paths.dir));
    await step('CNI results', () => removeCniResults(this.network.cniName));
    await step('device plugin socket', () => removeKubeletSocketIfLast());
    if (!this.keepDir) await step('folder', () => rmSync(this.paths.dir, { recursive: true, force: true }));
    if (failures.length > 0) throw new Error(`NodeBed.stop: ${failures.join('; ')}`);
  }

  /**
   * What of this node is still on the machine (for tests of the teardown): mounts under its folder,
   * its cgroup folders and their processes, its namespace, its folder. Empty after `stop()`.
   */
  leftovers(): string[] {
    const out: string[] = [];
    for (const m of mountsUnder(this.paths.dir)) out.push(`mount ${m}`);
    for (const d of cgroupTree(this.cgroupRoot)) out.push(`cgroup ${d}`);
    for (const pid of cgroupPids(this.cgroupRoot)) out.push(`process ${pid}`);
    if (existsSync(`/run/netns/${this.host.name}`)) out.push(`netns ${this.host.name}`);
    if (existsSync(this.paths.dir) && !this.keepDir) out.push(`folder ${this.paths.dir}`);
    for (const l of linksInto('/var/log/containers', this.paths.dir)) out.push(`link ${l}`);
    for (const f of cniResults(this.network.cniName)) out.push(`CNI result ${f}`);
    return out;
  }
}

/** containerd stores `ghcr.io/x/y:t` as is and `x/y:t` as `docker.io/x/y:t`. */
export function normalizeRef(ref: string): string {
  const first = ref.split('/')[0] ?? '';
  const hasRegistry =
    ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  const named = hasRegistry ? ref : ref.includes('/') ? `docker.io/${ref}` : `docker.io/library/${ref}`;
  return /:[^/]+$/.test(named) || named.includes('@') ? named : `${named}:latest`;
}

/** Mount points under `dir` (from /proc/self/mountinfo, octal escapes decoded), deepest first. */
export function mountsUnder(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const raw = line.split(' ')[4];
    if (!raw) continue;
    const mp = raw.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mp === dir || mp.startsWith(`${dir}/`)) out.push(mp);
  }
  return out.reverse();
}

async function unmountUnder(dir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) return;
    for (const m of mounts) await execArgv(['umount', '-l', m], { check: false });
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new Error(`still mounted: ${left.join(', ')}`);
}

function linksInto(dir: string, target: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    try {
      if (readlinkSync(join(dir, name)).startsWith(`${target}/`)) out.push(join(dir, name));
    } catch {
      // not a link
    }
  }
  return out;
}

function removeLinksInto(dir: string, target: string): void {
  for (const l of linksInto(dir, target)) unlinkSync(l);
}

/** Where containerd's CNI library caches each attachment (a path it does not let us change). */
const CNI_RESULTS = '/var/lib/cni/results';

/** Cached CNI results of network `name`, and the loopback results of the same sandboxes. */
function cniResults(name: string): string[] {
  if (!existsSync(CNI_RESULTS)) return [];
  const out: string[] = [];
  const files = readdirSync(CNI_RESULTS);
  for (const f of files) {
    if (!f.startsWith(`${name}-`)) continue;
    const m = /^([0-9a-f]{64})-[^-]+$/.exec(f.slice(name.length + 1));
    if (!m) continue;
    out.push(join(CNI_RESULTS, f));
    const lo = `cni-loopback-${m[1]}-lo`;
    if (files.includes(lo)) out.push(join(CNI_RESULTS, lo));
  }
  return out;
}

function removeCniResults(name: string): void {
  for (const f of cniResults(name)) rmSync(f, { force: true });
}

/**
 * The kubelet's device-plugin socket has a fixed path (/var/lib/kubelet/device-plugins/kubelet.sock)
 * whatever its root dir; removed when no other node of any run is left to use it.
 */
function removeKubeletSocketIfLast(): void {
  if (cgroupRootsWithPrefix(NODE_PREFIX).length === 0) {
    rmSync('/var/lib/kubelet/device-plugins/kubelet.sock', { force: true });
  }
}

/**
 * Removes what nodes of dead runs left: their cgroups (killing what is in them), mounts and
 * folders. A node is named after its netns, whose name carries the owning pid; nodes of live runs
 * are left alone. (NetLab.create sweeps the namespaces themselves.)
 */
export async function sweepStaleNodes(log: Log = () => undefined): Promise<string[]> {
  const stale = new Set<string>();
  for (const name of cgroupRootsWithPrefix(NODE_PREFIX)) stale.add(name);
  for (const e of readdirSync(tmpdir())) if (e.startsWith(NODE_PREFIX)) stale.add(e);
  const removed: string[] = [];
  for (const id of stale) {
    const owner = namespaceOwner(id.slice(NODE_PREFIX.length));
    if (owner !== undefined && processAlive(owner)) continue;
    log(`removing ${id}, left by a run that died`);
    await removeCgroupRoot(id);
    const dir = join(tmpdir(), id);
    await unmountUnder(dir);
    removeLinksInto('/var/log/containers', dir);
    removeCniResults(id);
    rmSync(dir, { recursive: true, force: true });
    removed.push(id);
  }
  return removed;
}

function secs(since: number): string {
  return ((Date.now() - since) / 1000).toFixed(1);
}
