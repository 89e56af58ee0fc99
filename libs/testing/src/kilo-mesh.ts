import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '@knet/runtime';
import { appBundle } from './bundle';
import { execArgv } from './exec';
import type { ControlPlane } from './controlplane';
import {
  bridgeLoopbackPort,
  NetLab,
  type LabProcess,
  type LoopbackBridge,
  type NetHost,
  type NetSwitch,
} from './netns';
import { workspaceRoot } from './workspace';

/**
 * A Kilo mesh on one machine: every node a network namespace with its own mount namespace
 * (wireguard-go's sockets), kilo-agent run from its shipped bundle against the test bed's real
 * kube-apiserver (bridged into the namespace on 127.0.0.1), and a router namespace between the
 * locations' LANs, where a test can cut a node's WireGuard UDP as an upstream firewall would.
 *
 * Addresses are documentation ranges only: LANs in 192.0.2.0/24 (east .0/26, west .64/26,
 * peers .128/26), pod CIDRs /28s of 203.0.113.0/24, WireGuard IPs from 198.51.100.192/27, the
 * external Peer's tunnel address 198.51.100.10. These are not RFC 1918, so Kilo (and we) take
 * every LAN address for a public one: nodes get their internal IP by the `force-internal-ip`
 * annotation, exactly as a user of Kilo does on such a network.
 */
export interface KiloMeshNode {
  name: string;
  location: string;
  /** LAN address with prefix, e.g. `192.0.2.11/26`. */
  lan: string;
  podCIDR: string;
  /** `kilo.squat.ai/leader` hint. */
  leader?: boolean;
}

export const KILO_MESH = {
  subnet: '198.51.100.192/27',
  lans: { east: '192.0.2.0/26', west: '192.0.2.64/26', peers: '192.0.2.128/26' } as Record<string, string>,
  routerLegs: { east: '192.0.2.1', west: '192.0.2.65', peers: '192.0.2.129' } as Record<string, string>,
  peerLan: '192.0.2.130/26',
  peerAddress: '198.51.100.10',
} as const;

/** Four nodes in two locations (the end-to-end shape), plus room for a fifth. */
export function kiloMeshNodes(count = 4): KiloMeshNode[] {
  const all: KiloMeshNode[] = [
    { name: 'east-1', location: 'east', lan: '192.0.2.11/26', podCIDR: '203.0.113.0/28' },
    { name: 'east-2', location: 'east', lan: '192.0.2.12/26', podCIDR: '203.0.113.16/28' },
    { name: 'west-1', location: 'west', lan: '192.0.2.71/26', podCIDR: '203.0.113.32/28' },
    { name: 'west-2', location: 'west', lan: '192.0.2.72/26', podCIDR: '203.0.113.48/28' },
    { name: 'east-3', location: 'east', lan: '192.0.2.13/26', podCIDR: '203.0.113.64/28' },
    { name: 'west-3', location: 'west', lan: '192.0.2.73/26', podCIDR: '203.0.113.80/28' },
  ];
  return all.slice(0, count);
}

/** The first address of a pod CIDR: what the node's `kube-bridge` holds (its "pod"). */
export function podAddress(podCIDR: string): string {
  const [base = ''] = podCIDR.split('/');
  const parts = base.split('.').map(Number);
  parts[3] = (parts[3] ?? 0) + 1;
  return parts.join('.');
}

export interface KiloMeshOptions {
  cp: ControlPlane;
  nodes?: KiloMeshNode[];
  /** Flags for every agent (after the bed's own). */
  agentArgs?: readonly string[];
  /** Kubeconfig the agents use (default: the control plane's admin one). */
  kubeconfig?: string;
}

interface NodeRuntime {
  spec: KiloMeshNode;
  host: NetHost;
  bridge: LoopbackBridge;
  agent?: LabProcess;
}

export class KiloMesh {
  readonly nodes = new Map<string, NodeRuntime>();
  private readonly dir: string;
  private readonly lans = new Map<string, NetSwitch>();
  router!: NetHost;
  /** External peers' hosts by name: the host and its tunnel address. */
  readonly peers = new Map<string, { host: NetHost; address: string; bridge?: LoopbackBridge }>();

  /** The default external Peer's host (`addPeerHost()` without a name). */
  get peerHost(): NetHost | undefined {
    return this.peers.get('peer')?.host;
  }

  private constructor(
    readonly lab: NetLab,
    private readonly o: KiloMeshOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'knet-kilo-'));
  }

  /** The Peer CRD of charts/kilo-agent, applied to the control plane. */
  static async applyCrds(cp: ControlPlane): Promise<void> {
    const dir = join(workspaceRoot(), 'charts', 'kilo-agent', 'crds');
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
      await cp.kubectlOk(['apply', '-f', join(dir, f)]);
    }
    await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/peers.kilo.squat.ai', '--timeout=60s']);
  }

  static async create(o: KiloMeshOptions): Promise<KiloMesh> {
    const lab = await NetLab.create();
    const mesh = new KiloMesh(lab, o);
    try {
      await mesh.build();
      return mesh;
    } catch (e) {
      await mesh.dispose();
      throw e;
    }
  }

  private async build(): Promise<void> {
    this.router = await this.lab.addHost('router', { forwarding: true });
    for (const [name, cidr] of Object.entries(KILO_MESH.lans)) {
      const sw = await this.lab.addSwitch(`lan-${name}`);
      this.lans.set(name, sw);
      const leg = KILO_MESH.routerLegs[name] as string;
      await sw.connect(this.router, { address: `${leg}/${cidr.split('/')[1]}` });
    }
    for (const spec of this.o.nodes ?? kiloMeshNodes()) await this.addNode(spec, { start: false });
  }

  /** Adds a node: namespace, LAN port, pod bridge, Node object; starts its agent unless `start: false`. */
  async addNode(
    spec: KiloMeshNode,
    o: { start?: boolean; extraArgs?: readonly string[] } = {},
  ): Promise<void> {
    const lan = this.lans.get(spec.location);
    if (!lan) throw new Error(`KiloMesh: no LAN for location ${spec.location}`);
    const host = await this.lab.addHost(spec.name, { privateMounts: true, forwarding: true });
    await lan.connect(host, { address: spec.lan });
    await host.ip('route', 'add', 'default', 'via', KILO_MESH.routerLegs[spec.location] as string);
    // The node's "pods": the first address of its pod CIDR on kube-bridge (ignored by IP detection).
    await host.ip('link', 'add', 'kube-bridge', 'type', 'bridge');
    await host.ip(
      'addr',
      'add',
      `${podAddress(spec.podCIDR)}/${spec.podCIDR.split('/')[1]}`,
      'dev',
      'kube-bridge',
    );
    await host.ip('link', 'set', 'dev', 'kube-bridge', 'up');
    const port = Number(new URL(this.o.cp.server).port);
    const bridge = await bridgeLoopbackPort(host, port);
    this.nodes.set(spec.name, { spec, host, bridge });
    await this.o.cp.kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(nodeObject(spec)) });
    if (o.start ?? true) await this.startAgent(spec.name, o.extraArgs);
  }

  node(name: string): NodeRuntime {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`KiloMesh: no node ${name}`);
    return n;
  }

  /** Starts (or restarts) kilo-agent on a node. */
  async startAgent(name: string, extraArgs: readonly string[] = []): Promise<LabProcess> {
    const n = this.node(name);
    if (n.agent?.running) throw new Error(`KiloMesh: the agent of ${name} is running`);
    const bundle = await appBundle('kilo-agent');
    const keyDir = join(this.dir, name);
    const args = [
      bundle,
      `--hostname=${name}`,
      `--kubeconfig=${this.o.kubeconfig ?? this.o.cp.kubeconfigPath}`,
      `--key-file=${join(keyDir, 'key')}`,
      '--cni=false',
      '--encapsulate=never',
      `--subnet=${KILO_MESH.subnet}`,
      '--listen=127.0.0.1:1107',
      '--log-level=debug',
      ...(this.o.agentArgs ?? []),
      ...extraArgs,
    ];
    n.agent = n.host.spawn(process.execPath, args);
    return n.agent;
  }

  /** Stops a node's agent (SIGTERM: its clean-up runs) and waits for it. */
  async stopAgent(name: string): Promise<void> {
    const n = this.node(name);
    await n.agent?.kill('SIGTERM', 20_000);
  }

  /**
   * A node dies: its agent and its wireguard-go are killed (SIGKILL, no clean-up), as when the
   * machine loses power.
   */
  async killNode(name: string): Promise<void> {
    const n = this.node(name);
    await n.agent?.kill('SIGKILL', 0);
    // Only this node's wireguard-go: the processes in its network namespace (a pkill through
    // nsenter would see, and kill, every wireguard-go of the machine).
    const pids = (await execArgv(['ip', 'netns', 'pids', n.host.name], { check: false })).stdout
      .split(/\s+/)
      .filter(Boolean);
    for (const pid of pids) {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        continue; // gone already
      }
      if (comm === 'wireguard-go') {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    }
  }

  /** Drops a node's WireGuard UDP at the router (an upstream firewall breaking its datapath). */
  async cutUdp(name: string, on = true): Promise<void> {
    const ip = this.node(name).spec.lan.split('/')[0] as string;
    const op = on ? '-I' : '-D';
    for (const dir of ['-s', '-d']) {
      await this.router.exec('iptables', [op, 'FORWARD', '-p', 'udp', dir, ip, '-j', 'DROP']);
    }
  }

  /**
   * One ping from a node (or the peer host) to an address, from the node's pod address (or the
   * peer's tunnel address) so that the reply must come back through the mesh as well: the router
   * knows the LANs but no pod CIDR.
   */
  async ping(from: string, address: string, timeoutSeconds = 1): Promise<boolean> {
    const peer = this.peers.get(from);
    const host = peer ? peer.host : this.node(from).host;
    const source = peer ? peer.address : podAddress(this.node(from).spec.podCIDR);
    const r = await host.exec(
      'ping',
      ['-n', '-q', '-c', '1', '-W', String(timeoutSeconds), '-I', source, address],
      {
        check: false,
      },
    );
    return r.exitCode === 0;
  }

  /** Every node's pod address pinged from every node: the failures, as `from→to` (empty = all reachable). */
  async pingMatrix(names: readonly string[] = [...this.nodes.keys()]): Promise<string[]> {
    const failures: string[] = [];
    await Promise.all(
      names.map(async (from) => {
        for (const to of names) {
          if (to === from) continue;
          const ok = await this.ping(from, podAddress(this.node(to).spec.podCIDR), 2);
          if (!ok) failures.push(`${from}→${to}`);
        }
      }),
    );
    return failures.sort();
  }

  /** Waits until the whole matrix answers; throws with the last failures. */
  async waitForMatrix(timeoutMs: number, names?: readonly string[]): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let failures: string[] = [];
    do {
      failures = await this.pingMatrix(names);
      if (failures.length === 0) return;
      await sleep(500);
    } while (Date.now() < deadline);
    throw new Error(`KiloMesh: pod CIDRs unreachable after ${timeoutMs} ms: ${failures.join(', ')}`);
  }

  /**
   * The nodes whose WireGuard device is up: the leaders (kilo-agent, like Kilo, sets the device
   * down on members; a dead node's wireguard-go device is gone). Annotations can be stale, this
   * cannot.
   */
  async leaders(): Promise<string[]> {
    const up: string[] = [];
    for (const [name, n] of this.nodes) {
      if (!n.agent?.running) continue;
      const r = await n.host.exec('ip', ['-j', 'link', 'show', 'kilo0'], { check: false });
      if (r.exitCode !== 0) continue;
      const [link] = JSON.parse(r.stdout) as { flags?: string[] }[];
      if (link?.flags?.includes('UP')) up.push(name);
    }
    return up.sort();
  }

  /** `wg show kilo0 dump` on a node ('' when the device is missing). */
  async wgDump(name: string): Promise<string> {
    const r = await this.node(name).host.exec('wg', ['show', 'kilo0', 'dump'], { check: false });
    return r.exitCode === 0 ? r.stdout : '';
  }

  /** Latest handshakes on a node's device: peer public key → unix seconds (0 = never). */
  async handshakes(name: string): Promise<Map<string, number>> {
    const lines = (await this.wgDump(name)).trim().split('\n').slice(1);
    return new Map(
      lines.filter(Boolean).map((l) => {
        const f = l.split('\t');
        return [f[0] as string, Number(f[4])];
      }),
    );
  }

  /** Latest handshakes on the devices of `names`: `node key` → unix seconds (0 = none). */
  async handshakeTable(names: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const n of names) for (const [key, t] of await this.handshakes(n)) out.set(`${n} ${key}`, t);
    return out;
  }

  /**
   * {@link handshakeTable} once every established session of `names` is younger than `maxAgeS`.
   * WireGuard rekeys a session 120 s after its handshake while traffic flows (REKEY_AFTER_TIME), so
   * in a window that starts here and lasts less than 120 - `maxAgeS` seconds a changed handshake is
   * a reset, not a rekey. Sends traffic (the ping matrix) while it waits: an old session rekeys then.
   */
  async freshHandshakes(
    names: readonly string[],
    maxAgeS: number,
    timeoutMs = 150_000,
  ): Promise<Map<string, number>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.pingMatrix();
      const table = await this.handshakeTable(names);
      const now = Date.now() / 1000;
      const ages = [...table.values()].filter((t) => t > 0).map((t) => now - t);
      if (ages.length > 0 && ages.every((a) => a < maxAgeS)) return table;
      if (Date.now() > deadline)
        throw new Error(`sessions did not become fresh (ages ${ages.map((a) => a.toFixed(0)).join(', ')} s)`);
      await sleep(2000);
    }
  }

  /** Everything kilo-agent may leave on a node: routes, rules and chains (for clean-up checks). */
  async leftovers(name: string): Promise<string[]> {
    const h = this.node(name).host;
    const out: string[] = [];
    const routes = (
      await h.exec('ip', ['route', 'show', 'table', 'all', 'proto', '107'], { check: false })
    ).stdout.trim();
    if (routes) out.push(...routes.split('\n').map((r) => `route ${r}`));
    const rules = (await h.exec('ip', ['rule', 'show'], { check: false })).stdout
      .split('\n')
      .filter((r) => /1107|proto 107/.test(r));
    out.push(...rules.map((r) => `rule ${r.trim()}`));
    for (const table of ['nat', 'filter']) {
      const chains = (await h.exec('iptables', ['-t', table, '-S'], { check: false })).stdout
        .split('\n')
        .filter((l) => l.includes('KILO-'));
      out.push(...chains.map((c) => `iptables -t ${table} ${c}`));
    }
    return out;
  }

  /** Writes a file in the bed's temp dir (e.g. a wg config for the peer host). */
  writeFile(name: string, text: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  }

  /**
   * An external Peer's host: a namespace on the router's peers LAN (`lan`), with its own mount
   * namespace for wireguard-go, the API server bridged in (for `kgctl connect`), and `address` as
   * its tunnel address (what `ping(name, …)` sends from).
   */
  async addPeerHost(name = 'peer', o: { lan?: string; address?: string } = {}): Promise<NetHost> {
    if (this.peers.has(name) || this.nodes.has(name)) throw new Error(`KiloMesh: ${name} exists`);
    const lan = this.lans.get('peers') as NetSwitch;
    const host = await this.lab.addHost(name, { privateMounts: true });
    await lan.connect(host, { address: o.lan ?? KILO_MESH.peerLan });
    await host.ip('route', 'add', 'default', 'via', KILO_MESH.routerLegs['peers'] as string);
    const bridge = await bridgeLoopbackPort(host, Number(new URL(this.o.cp.server).port));
    this.peers.set(name, { host, address: o.address ?? KILO_MESH.peerAddress, bridge });
    return host;
  }

  async dispose(): Promise<void> {
    const errors: string[] = [];
    for (const n of this.nodes.values()) {
      await n.agent?.kill('SIGKILL', 0).catch((e: unknown) => errors.push(String(e)));
      await n.bridge.close().catch((e: unknown) => errors.push(String(e)));
    }
    for (const p of this.peers.values())
      await p.bridge?.close().catch((e: unknown) => errors.push(String(e)));
    await this.lab.dispose().catch((e: unknown) => errors.push(String(e)));
    rmSync(this.dir, { recursive: true, force: true });
    if (errors.length > 0) throw new Error(`KiloMesh: dispose: ${errors.join('; ')}`);
  }
}

/** The Node object of a mesh node: pod CIDR, location and internal IP as a Kilo user sets them. */
export function nodeObject(spec: KiloMeshNode): object {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: spec.name,
      labels: { 'kubernetes.io/hostname': spec.name },
      annotations: {
        'kilo.squat.ai/location': spec.location,
        'kilo.squat.ai/force-internal-ip': spec.lan,
        ...(spec.leader ? { 'kilo.squat.ai/leader': 'true' } : {}),
      },
    },
    spec: { podCIDR: spec.podCIDR, podCIDRs: [spec.podCIDR] },
  };
}

/** Established sessions (handshake > 0 before) whose handshake changed (renewed or dropped). */
export function changedSessions(before: Map<string, number>, after: Map<string, number>): string[] {
  return [...before].filter(([k, t]) => t > 0 && after.get(k) !== t).map(([k]) => k);
}
