/**
 * Lab helpers on top of {@link KiloMesh}: the mesh as its API objects show it (which node leads
 * each location, the Peers' status kilo-agent writes), and an external Peer run by `kgctl connect`
 * on the mesh's peer host — the way a Kilo user joins a laptop to the cluster (Kilo's
 * docs/kgctl.md). No import of @knet/kilo or @knet/host-net: they use the test bed in their own
 * tests, and the lab runs under tsx, where host-net's execa cannot be required.
 */
import { errorMessage } from '@knet/runtime';
import { appBundle } from './bundle';
import type { ControlPlane } from './controlplane';
import { oneLine } from './exec';
import { KILO_MESH, type KiloMesh } from './kilo-mesh';
import { bridgeLoopbackPort, type LabProcess, type NetHost } from './netns';

/** Kilo's annotation prefix (the keys are Kilo's, pkg/k8s/backend.go). */
const KILO = 'kilo.squat.ai/';

/** A mesh node as its Node object shows it: what the user set and what kilo-agent published. */
export interface KiloNodeView {
  name: string;
  /** `kilo.squat.ai/location` ('' when unset). */
  location: string;
  /** `kilo.squat.ai/wireguard-ip`: set on a location's leader only ('' on the others). */
  wireGuardIP: string;
  /** `kilo.squat.ai/key`: the node's WireGuard public key ('' before the agent published it). */
  key: string;
  /** `kilo.squat.ai/endpoint` ('' before the agent published it). */
  endpoint: string;
}

interface NodeList {
  items: { metadata: { name: string; annotations?: Record<string, string> } }[];
}

/** Every Node of the control plane with its Kilo annotations, sorted by name. */
export async function kiloNodeViews(cp: ControlPlane): Promise<KiloNodeView[]> {
  const list = JSON.parse(await cp.kubectlOk(['get', 'nodes', '-o', 'json'])) as NodeList;
  return list.items
    .map(({ metadata: m }) => {
      const a = m.annotations ?? {};
      return {
        name: m.name,
        location: a[`${KILO}location`] ?? '',
        wireGuardIP: a[`${KILO}wireguard-ip`] ?? '',
        key: a[`${KILO}key`] ?? '',
        endpoint: a[`${KILO}endpoint`] ?? '',
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** One location of the mesh: its leader (the node publishing a WireGuard IP) and its members. */
export interface KiloLocationView {
  location: string;
  leader: KiloNodeView;
  /** Every node of the location, the leader included, by name. */
  members: KiloNodeView[];
}

/**
 * The locations of `nodes`, by name, each with its leader. Every agent publishes a
 * `kilo.squat.ai/wireguard-ip` only while it leads (Kilo's nodeBackend.Set), so a location must show
 * exactly one node with one; none or two is one line naming them.
 */
export function kiloLocations(nodes: readonly KiloNodeView[]): KiloLocationView[] {
  const byLocation = new Map<string, KiloNodeView[]>();
  for (const n of nodes) byLocation.set(n.location, [...(byLocation.get(n.location) ?? []), n]);
  return [...byLocation.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([location, members]) => {
      const leaders = members.filter((n) => n.wireGuardIP !== '');
      const named = location === '' ? 'the nodes without a location' : `location ${location}`;
      if (leaders.length !== 1) {
        throw new Error(
          `${named} has ${leaders.length === 0 ? 'no leader' : `${leaders.length} leaders (${leaders.map((n) => n.name).join(', ')})`}: ` +
            `kilo.squat.ai/wireguard-ip is set on ${leaders.length} of ${members.map((n) => n.name).join(', ')}`,
        );
      }
      return { location, leader: leaders[0] as KiloNodeView, members };
    });
}

/** A Peer as the API server returns it: its spec and the status kilo-agent writes (knet). */
export interface KiloPeerView {
  name: string;
  publicKey: string;
  allowedIPs: string[];
  persistentKeepalive?: number;
  /** `status.latestHandshake`, when an agent has seen one. */
  latestHandshake?: Date;
  /** `status.observedBy`: the leader whose device the status was read from. */
  observedBy?: string;
  /** `status.endpoint`: where that leader last saw the peer. */
  endpoint?: string;
}

interface PeerList {
  items: {
    metadata: { name: string };
    spec: { publicKey: string; allowedIPs: string[]; persistentKeepalive?: number };
    status?: { latestHandshake?: string; observedBy?: string; endpoint?: string };
  }[];
}

/** Every Peer (`peers.kilo.squat.ai`) of the control plane, sorted by name. */
export async function kiloPeerViews(cp: ControlPlane): Promise<KiloPeerView[]> {
  const list = JSON.parse(await cp.kubectlOk(['get', 'peers.kilo.squat.ai', '-o', 'json'])) as PeerList;
  return list.items
    .map(({ metadata, spec, status }) => ({
      name: metadata.name,
      publicKey: spec.publicKey,
      allowedIPs: spec.allowedIPs,
      ...(spec.persistentKeepalive !== undefined ? { persistentKeepalive: spec.persistentKeepalive } : {}),
      ...(status?.latestHandshake ? { latestHandshake: new Date(status.latestHandshake) } : {}),
      ...(status?.observedBy ? { observedBy: status.observedBy } : {}),
      ...(status?.endpoint ? { endpoint: status.endpoint } : {}),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export interface KgctlConnectOptions {
  mesh: KiloMesh;
  cp: ControlPlane;
  /** The Peer's name (`kgctl connect PEER_NAME`). */
  peerName: string;
  /** `--allowed-ip` (default: the mesh's peer address, `198.51.100.10/32`). */
  allowedIP?: string;
  /** `--interface` (default: kgctl's, `kilo0`). */
  interface?: string;
  /** More flags for `kgctl connect` (after the bed's own). */
  args?: readonly string[];
}

/** `kgctl connect` running on the mesh's peer host. */
export interface KgctlConnect {
  /** The peer host (a namespace on the router's peers LAN). */
  host: NetHost;
  proc: LabProcess;
  /** The argv after `node`: bundle, `connect`, the name and flags. */
  args: readonly string[];
  /** The public key of kgctl's interface on the peer host (`wg show IFACE public-key`); undefined without one. */
  publicKey(): Promise<string | undefined>;
  /**
   * SIGTERM (kgctl removes its routes, its interface and the Peer it created; SIGKILL after 20 s),
   * then closes the API server's bridge into the host if this started it.
   */
  stop(): Promise<void>;
}

/**
 * Starts `kgctl connect` from its shipped bundle on the mesh's peer host (added if missing), with
 * the control plane's kube-apiserver bridged to the same 127.0.0.1 port inside the host (unless
 * something listens there already), as KiloMesh does for its nodes, and the mesh's WireGuard subnet. It returns at once; wait for the
 * Peer or for pings yourself, and `stop()` it in every case.
 */
export async function startKgctlConnect(o: KgctlConnectOptions): Promise<KgctlConnect> {
  const host = o.mesh.peerHost ?? (await o.mesh.addPeerHost());
  const bundle = await appBundle('kgctl');
  const iface = o.interface ?? 'kilo0';
  const port = Number(new URL(o.cp.server).port);
  // KiloMesh's addPeerHost may bridge the API server itself: then there is nothing to add.
  const listening = await host.exec('ss', ['-H', '-l', '-t', '-n', 'sport', '=', `:${port}`], {
    check: false,
  });
  const bridge =
    listening.exitCode === 0 && listening.stdout.trim() !== ''
      ? undefined
      : await bridgeLoopbackPort(host, port).catch((e: unknown) => {
          // Its message holds the bridge's multi-line script: the end of it says why.
          throw new Error(
            `bridging the API server into the peer host: ${oneLine(errorMessage(e)).slice(-400)}`,
          );
        });
  const args = [
    bundle,
    'connect',
    o.peerName,
    `--allowed-ip=${o.allowedIP ?? `${KILO_MESH.peerAddress}/32`}`,
    `--kubeconfig=${o.cp.kubeconfigPath}`,
    `--subnet=${KILO_MESH.subnet}`,
    `--interface=${iface}`,
    ...(o.args ?? []),
  ];
  let proc: LabProcess;
  try {
    proc = host.spawn(process.execPath, args);
  } catch (e) {
    await bridge?.close();
    throw e;
  }
  return {
    host,
    proc,
    args,
    publicKey: async () => {
      const r = await host.exec('wg', ['show', iface, 'public-key'], { check: false });
      return r.exitCode === 0 ? r.stdout.trim() : undefined;
    },
    stop: async () => {
      try {
        await proc.kill('SIGTERM', 20_000);
      } finally {
        await bridge?.close();
      }
    },
  };
}
