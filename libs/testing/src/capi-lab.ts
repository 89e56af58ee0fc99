/**
 * Lab helpers for a Cluster API cluster provisioned by capi-packet-manager on {@link FakeMetalApi}:
 * the cluster and its Machines as the API objects (Cluster, PacketCluster, Machine, PacketMachine)
 * and the fake's own devices and IP reservations show them, side by side, with what is wrong when
 * the two disagree — so a live table can re-check, each refresh, that what the provider wrote is
 * what the Metal API holds; and the cluster's bootstrap as the devices' userdata carries it (who
 * runs kubeadm init, whether the joins pin the CA, whether any private key of the cluster reached a
 * device). Plus what the lab needs around it: an SSH key line for the devices, the manager's
 * request counter and the removal of what `CapiCore` installs.
 *
 * Pure functions take the objects as kubectl prints them (no @knet/capi types: a view must show
 * what is stored, also when it is not what the provider meant to write).
 */
import { generateKeyPairSync } from 'node:crypto';
import type { ControlPlane } from './controlplane';
import type { MetalDevice, MetalIpReservation } from './metal-api';

/** An object as `kubectl get -o json` prints it, the fields read here. */
export interface CapiObject {
  apiVersion?: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  /** A Secret's data (base64 values). */
  data?: Record<string, string>;
}

/** The CAPI and provider objects of one namespace, by kind. */
export interface CapiObjects {
  clusters: CapiObject[];
  packetClusters: CapiObject[];
  machines: CapiObject[];
  packetMachines: CapiObject[];
  packetKubeadmConfigs: CapiObject[];
  /** The namespace's Secrets (the Machines' bootstrap data among them). */
  secrets: CapiObject[];
}

const CLUSTER_NAME_LABEL = 'cluster.x-k8s.io/cluster-name';
const CONTROL_PLANE_LABEL = 'cluster.x-k8s.io/control-plane';
/** `spec.providerID` of a Machine on Equinix Metal. */
const PROVIDER_ID_PREFIX = 'equinixmetal://';
/** The label Cluster API's kustomizations put on everything they install (CRDs, webhook configurations). */
const CAPI_PROVIDER_SELECTOR = 'cluster.x-k8s.io/provider=cluster-api';

/** One `kubectl get` of the CAPI, provider and bootstrap objects and the Secrets in `namespace`. */
export async function readCapiObjects(cp: ControlPlane, namespace: string): Promise<CapiObjects> {
  const out = await cp.kubectlOk([
    'get',
    'clusters.cluster.x-k8s.io,packetclusters,machines.cluster.x-k8s.io,packetmachines,packetkubeadmconfigs,secrets',
    '-n',
    namespace,
    '-o',
    'json',
  ]);
  const items = (JSON.parse(out) as { items: CapiObject[] }).items;
  const of = (kind: string) => items.filter((o) => o.kind === kind);
  return {
    clusters: of('Cluster'),
    packetClusters: of('PacketCluster'),
    machines: of('Machine'),
    packetMachines: of('PacketMachine'),
    packetKubeadmConfigs: of('PacketKubeadmConfig'),
    secrets: of('Secret'),
  };
}

/** A Machine as CAPI, the provider and the fake Metal API show it. */
export interface CapiMachineView {
  name: string;
  role: 'control plane' | 'worker';
  /** The Machine's `status.phase` ('' before CAPI wrote one). */
  phase: string;
  /** The PacketMachine (the Machine's infrastructureRef), when it exists. */
  packetMachine?: {
    name: string;
    ready: boolean;
    /** `status.instanceStatus`: the device state the provider last saw ('' before it saw one). */
    instanceStatus: string;
    /** Its `Ready` condition (or `InstanceReady` when it has no `Ready`). */
    condition?: { type: string; status: string; reason: string; message: string };
    failureReason?: string;
  };
  /** The Machine's `spec.providerID` ('' when unset). */
  providerID: string;
  /**
   * The device the Machine's providerID names (before CAPI copied it: the PacketMachine's), as the
   * fake holds it (also failed and deprovisioning ones).
   */
  device?: { id: string; shortId: string; state: string; hostname: string; addresses: string[] };
  /** IP addresses (ExternalIP, InternalIP) in the Machine's `status.addresses`, as CAPI copied them. */
  addresses: string[];
  /** The Machine's `spec.bootstrap.dataSecretName` ('' before the bootstrap provider wrote it). */
  dataSecretName: string;
  /**
   * Whether the device's userdata is that Secret's `value` (what the provider must send as is);
   * undefined while there is no device or no such Secret.
   */
  userdataIsBootstrapData?: boolean;
  deleting: boolean;
}

/** Every Machine of `cluster`, by name, with its PacketMachine and device. */
export function capiMachineViews(
  objects: CapiObjects,
  cluster: string,
  devices: readonly MetalDevice[],
): CapiMachineView[] {
  return objects.machines
    .filter((m) => m.metadata.labels?.[CLUSTER_NAME_LABEL] === cluster)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((m) => {
      const spec = m.spec ?? {};
      const infra = spec['infrastructureRef'] as { name?: string } | undefined;
      const pm = objects.packetMachines.find((p) => p.metadata.name === infra?.name);
      const providerID = typeof spec['providerID'] === 'string' ? spec['providerID'] : '';
      // The provider writes the PacketMachine's providerID as soon as the device exists; CAPI
      // copies it to the Machine once the PacketMachine is ready. Either names the device.
      const pmProviderID = pm?.spec?.['providerID'];
      const named = providerID || (typeof pmProviderID === 'string' ? pmProviderID : '');
      const id = named.startsWith(PROVIDER_ID_PREFIX) ? named.slice(PROVIDER_ID_PREFIX.length) : '';
      const d = id ? devices.find((x) => x.id === id) : undefined;
      const addresses = ((m.status?.['addresses'] ?? []) as { type: string; address: string }[])
        .filter((a) => a.type === 'ExternalIP' || a.type === 'InternalIP')
        .map((a) => a.address);
      const bootstrap = spec['bootstrap'] as { dataSecretName?: string } | undefined;
      const dataSecretName = bootstrap?.dataSecretName ?? '';
      const value = objects.secrets.find((x) => x.metadata.name === dataSecretName)?.data?.['value'];
      const view: CapiMachineView = {
        name: m.metadata.name,
        role: m.metadata.labels?.[CONTROL_PLANE_LABEL] !== undefined ? 'control plane' : 'worker',
        phase: String(m.status?.['phase'] ?? ''),
        providerID,
        addresses,
        dataSecretName,
        deleting: m.metadata.deletionTimestamp !== undefined,
      };
      if (d && dataSecretName && value !== undefined) {
        view.userdataIsBootstrapData = d.userdata === Buffer.from(value, 'base64').toString('utf8');
      }
      if (pm) {
        const conditions = (pm.status?.['conditions'] ?? []) as NonNullable<
          CapiMachineView['packetMachine']
        >['condition'][];
        const condition =
          conditions.find((c) => c?.type === 'Ready') ?? conditions.find((c) => c?.type === 'InstanceReady');
        view.packetMachine = {
          name: pm.metadata.name,
          ready: pm.status?.['ready'] === true,
          instanceStatus: String(pm.status?.['instanceStatus'] ?? ''),
          ...(condition ? { condition } : {}),
          ...(typeof pm.status?.['failureReason'] === 'string'
            ? { failureReason: pm.status['failureReason'] }
            : {}),
        };
      }
      if (d) {
        view.device = {
          id: d.id,
          shortId: d.short_id,
          state: d.state,
          hostname: d.hostname,
          addresses: d.ip_addresses.map((a) => a.address),
        };
      }
      return view;
    });
}

/**
 * What keeps a Machine from being provisioned as the fake Metal API holds it, in one line, or
 * undefined when CAPI says Provisioned (or Running), the PacketMachine is ready with an active
 * device, the Machine's providerID names that device, the Machine's addresses are the device's and
 * the device's userdata is the Machine's bootstrap data.
 */
export function capiMachineProblem(v: CapiMachineView): string | undefined {
  const pm = v.packetMachine;
  if (v.deleting) return `${v.name} is being deleted`;
  if (!pm) return `${v.name} has no PacketMachine yet`;
  const why = pm.condition
    ? `${pm.condition.reason}${pm.condition.message ? `: ${pm.condition.message}` : ''}`
    : '';
  if (pm.failureReason)
    return `${v.name} failed: ${pm.failureReason}${pm.condition?.message ? `: ${pm.condition.message}` : ''}`;
  if (!v.device) {
    return v.providerID
      ? `${v.name}'s providerID ${v.providerID} names no device of the Metal API`
      : `${v.name} has no device yet${why ? ` (${why})` : ''}`;
  }
  if (v.device.state !== 'active') return `${v.name}'s device ${v.device.shortId} is ${v.device.state}`;
  if (pm.instanceStatus !== 'active') {
    return `${v.name}: the PacketMachine says ${pm.instanceStatus || 'nothing'}, the device is active`;
  }
  if (!pm.ready) return `${v.name}: the PacketMachine is not ready${why ? ` (${why})` : ''}`;
  if (pm.condition && pm.condition.status !== 'True') {
    return `${v.name}: ${pm.condition.type}=${pm.condition.status} (${why})`;
  }
  if (!v.providerID) return `${v.name}: CAPI has not copied the providerID to the Machine yet`;
  if (v.phase !== 'Provisioned' && v.phase !== 'Running')
    return `${v.name}: Machine phase ${v.phase || 'none'}`;
  const want = [...v.device.addresses].sort();
  const got = [...v.addresses].sort();
  if (want.join(',') !== got.join(',')) {
    return `${v.name}'s addresses ${got.join(', ') || 'none'} are not its device's ${want.join(', ')}`;
  }
  if (!v.dataSecretName) return `${v.name} has no bootstrap data Secret`;
  if (v.userdataIsBootstrapData === undefined)
    return `${v.name}'s bootstrap data Secret ${v.dataSecretName} is gone`;
  if (!v.userdataIsBootstrapData) {
    return `${v.name}'s device userdata is not its bootstrap data (Secret ${v.dataSecretName})`;
  }
  return undefined;
}

/**
 * One line for the lab's table, short enough for a 150-column terminal: role (`cp`, `worker`) and
 * Machine phase, PacketMachine state (`pm`), the device's state in the fake (`dev`), the short id
 * of the device the Machine's providerID names, IPv4 addresses (`+EIP` when the control-plane
 * endpoint is among them, `+v6` when the device has IPv6), and the reason of the PacketMachine's
 * Ready condition.
 */
export function formatCapiMachine(v: CapiMachineView, endpointHost?: string): string {
  const v4 = v.addresses.filter((a) => !a.includes(':') && a !== endpointHost);
  const extra = [
    ...(endpointHost !== undefined && v.addresses.includes(endpointHost) ? ['+EIP'] : []),
    ...(v.addresses.some((a) => a.includes(':')) ? ['+v6'] : []),
  ];
  return [
    `${v.role === 'control plane' ? 'cp' : 'worker'} ${v.phase || 'no phase'}`,
    `pm ${v.packetMachine?.instanceStatus || '-'}`,
    v.device ? `dev ${v.device.state}` : 'no device',
    v.providerID
      ? `providerID→${v.device?.shortId ?? '?'}`
      : `no providerID${v.device ? ` (${v.device.shortId})` : ''}`,
    [...v4, ...extra].join(' ') || 'no address',
    v.packetMachine?.condition?.reason ?? 'no condition',
  ].join(' · ');
}

/** A Cluster with its PacketCluster, its control-plane elastic IP and where the fake has it. */
export interface CapiClusterView {
  name: string;
  /** `spec.controlPlaneEndpoint` of the PacketCluster, as `host:port` ('' before the provider set it). */
  endpoint: string;
  /** The same of the Cluster (CAPI core copies it from the PacketCluster). */
  clusterEndpoint: string;
  packetClusterReady: boolean;
  /** `status.initialization.infrastructureProvisioned` of the Cluster (CAPI v1beta2). */
  infrastructureProvisioned: boolean;
  /** The fake's reservations tagged for the cluster's control plane, with their address. */
  reservations: { id: string; address: string }[];
  /** Hostnames of the devices the endpoint's address is assigned to in the fake. */
  endpointOn: string[];
}

export function capiClusterView(
  objects: CapiObjects,
  cluster: string,
  eipTag: string,
  devices: readonly MetalDevice[],
  reservations: readonly MetalIpReservation[],
): CapiClusterView {
  const endpointOf = (o: CapiObject | undefined) => {
    const e = o?.spec?.['controlPlaneEndpoint'] as { host?: string; port?: number } | undefined;
    return e?.host ? `${e.host}:${e.port ?? ''}` : '';
  };
  const c = objects.clusters.find((x) => x.metadata.name === cluster);
  const pcl = objects.packetClusters.find((x) => x.metadata.name === cluster);
  const endpoint = endpointOf(pcl);
  const host = endpoint.slice(0, endpoint.lastIndexOf(':'));
  const init = c?.status?.['initialization'] as { infrastructureProvisioned?: boolean } | undefined;
  return {
    name: cluster,
    endpoint,
    clusterEndpoint: endpointOf(c),
    packetClusterReady: pcl?.status?.['ready'] === true,
    infrastructureProvisioned: init?.infrastructureProvisioned === true,
    reservations: reservations
      .filter((r) => r.tags.includes(eipTag))
      .map((r) => ({ id: r.id, address: r.address ?? '' })),
    endpointOn: host
      ? devices.filter((d) => d.ip_addresses.some((a) => a.address === host)).map((d) => d.hostname)
      : [],
  };
}

/** What is wrong with the cluster's endpoint and infrastructure, in one line, or undefined. */
export function capiClusterProblem(v: CapiClusterView, controlPlane: string): string | undefined {
  if (!v.endpoint) return `PacketCluster ${v.name} has no control-plane endpoint yet`;
  if (!v.packetClusterReady) return `PacketCluster ${v.name} is not ready`;
  if (v.clusterEndpoint !== v.endpoint) {
    return `Cluster ${v.name}'s endpoint ${v.clusterEndpoint || 'is unset'}${v.clusterEndpoint ? ` is not the PacketCluster's ${v.endpoint}` : ''}`;
  }
  if (!v.infrastructureProvisioned) return `Cluster ${v.name}: infrastructure not provisioned`;
  const host = v.endpoint.slice(0, v.endpoint.lastIndexOf(':'));
  if (v.reservations.length !== 1) {
    return `${v.reservations.length} elastic IP reservations are tagged for ${v.name}, not 1`;
  }
  const [r] = v.reservations as [{ id: string; address: string }];
  if (r.address !== host)
    return `the endpoint ${host} is not the tagged reservation's ${r.address || 'address'}`;
  if (v.endpointOn.join(',') !== controlPlane) {
    return `the elastic IP ${host} is on ${v.endpointOn.join(', ') || 'no device'}, not ${controlPlane}`;
  }
  return undefined;
}

/**
 * The sum of `capi_packet_metal_api_requests_total` in a Prometheus text exposition (the
 * manager's /metrics): every Metal API request it made, retries included.
 */
export function metalRequestsCounted(metricsText: string): number {
  let sum = 0;
  let seen = false;
  for (const line of metricsText.split('\n')) {
    const m = /^capi_packet_metal_api_requests_total(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m) {
      sum += Number(m[1]);
      seen = true;
    }
  }
  if (!seen) throw new Error('no capi_packet_metal_api_requests_total in the manager metrics');
  return sum;
}

/** The cluster's bootstrap as its PacketKubeadmConfigs, its Secrets and its devices' userdata show it. */
export interface CapiBootstrapView {
  /** The PacketKubeadmConfigs of the cluster, by name. */
  configs: { name: string; ready: boolean; dataSecretName: string }[];
  /** Hostnames of the devices whose userdata holds an InitConfiguration (`kubeadm init`). */
  init: string[];
  /** …a JoinConfiguration (`kubeadm join`). */
  join: string[];
  /** Of `join`, the ones whose configuration pins `caPin` and never skips the CA check. */
  pinned: string[];
  /** `server` of the kubeconfig in Secret `<cluster>-kubeconfig` ('' when there is none). */
  kubeconfigServer: string;
  /** The private keys searched for, as `<secret>/<key>`, with where they may be. */
  keys: { name: string; allowedOn: KeyPlace }[];
  /** `<secret>/<key> on <hostname>`: a private key in the userdata of a device it must not reach. */
  leaks: string[];
  /**
   * How many of `keys` the same search finds once each is planted into a device's userdata: all of
   * them, or a clean result would mean nothing.
   */
  planted: number;
  /** The cluster's devices (whose userdata was searched). */
  devices: number;
}

/** Where a private key of the cluster may be: on no device (a CA's), or on control planes only. */
export type KeyPlace = 'no device' | 'control planes';

/** A line of a PEM body long enough to be one key's own (not its ASN.1 header alone). */
const KEY_LINE_MIN = 40;
const PRIVATE_KEY_PEM = /-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g;

/**
 * The bootstrap of `cluster`: its configs from `objects`; who inits and who joins, from the kubeadm
 * configuration kind in the userdata of `devices` (the cluster's; a device's hostname is its Machine's name); and every
 * private key PEM of the Secrets named in `keys`, searched for in each userdata line by line of its
 * body (userdata carries files as plain text). `caPin` is the cluster CA's `sha256:` hash every
 * join must pin.
 */
export function capiBootstrapView(
  objects: CapiObjects,
  cluster: string,
  devices: readonly MetalDevice[],
  o: { caPin: string; keys: Record<string, KeyPlace> },
): CapiBootstrapView {
  const configs = objects.packetKubeadmConfigs
    .filter((c) => c.metadata.labels?.[CLUSTER_NAME_LABEL] === cluster)
    .map((c) => ({
      name: c.metadata.name,
      ready: c.status?.['ready'] === true,
      dataSecretName: String(c.status?.['dataSecretName'] ?? ''),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const decode = (v: string) => Buffer.from(v, 'base64').toString('utf8');
  const controlPlanes = new Set(
    objects.machines
      .filter((m) => m.metadata.labels?.[CONTROL_PLANE_LABEL] !== undefined)
      .map((m) => m.metadata.name),
  );
  const keys: { name: string; allowedOn: KeyPlace; lines: string[] }[] = [];
  for (const secret of objects.secrets) {
    const allowedOn = o.keys[secret.metadata.name];
    if (!allowedOn) continue;
    for (const [key, value] of Object.entries(secret.data ?? {})) {
      for (const [pem] of decode(value).matchAll(PRIVATE_KEY_PEM)) {
        const lines = pem
          .split('\n')
          .map((l) => l.trim())
          .filter((l) => l.length >= KEY_LINE_MIN && !l.startsWith('-----'));
        if (lines.length > 0) keys.push({ name: `${secret.metadata.name}/${key}`, allowedOn, lines });
      }
    }
  }
  const holds = (userdata: string, k: { lines: string[] }) => k.lines.some((l) => userdata.includes(l));
  const hosts = (re: RegExp) =>
    devices
      .filter((d) => re.test(d.userdata))
      .map((d) => d.hostname)
      .sort();
  const join = hosts(/^\s*kind: JoinConfiguration\s*$/m);
  const kubeconfig = objects.secrets.find((x) => x.metadata.name === `${cluster}-kubeconfig`)?.data?.[
    'value'
  ];
  const sample = devices[0]?.userdata ?? '';
  return {
    configs,
    init: hosts(/^\s*kind: InitConfiguration\s*$/m),
    join,
    pinned: devices
      .filter(
        (d) =>
          join.includes(d.hostname) &&
          d.userdata.includes(o.caPin) &&
          !/unsafeSkipCAVerification: *true/.test(d.userdata),
      )
      .map((d) => d.hostname)
      .sort(),
    kubeconfigServer: kubeconfig ? (/^\s*server: *["']?([^"'\s]+)/m.exec(decode(kubeconfig))?.[1] ?? '') : '',
    keys: keys.map(({ name, allowedOn }) => ({ name, allowedOn })),
    leaks: devices.flatMap((d) =>
      keys
        .filter((k) => !(k.allowedOn === 'control planes' && controlPlanes.has(d.hostname)))
        .filter((k) => holds(d.userdata, k))
        .map((k) => `${k.name} on ${d.hostname}`),
    ),
    planted: keys.filter((k) => holds(`${sample}\n${k.lines.join('\n')}\n`, k)).length,
    devices: devices.length,
  };
}

/**
 * What is wrong with the bootstrap, in one line, or undefined: no private key where it must not be
 * (the search shown to find planted ones), every Machine's config ready with its data, exactly
 * `controlPlane` running kubeadm init and every other device joining with the CA pinned, and the
 * kubeconfig for `clusterctl get kubeconfig` pointing at `endpoint` (`host:port`).
 */
export function capiBootstrapProblem(
  v: CapiBootstrapView,
  o: { machines: number; controlPlane: string; endpoint: string },
): string | undefined {
  if (v.leaks.length > 0) return `PRIVATE KEY WHERE IT MUST NOT BE: ${v.leaks.join(', ')}`;
  if (!v.keys.some((k) => k.allowedOn === 'no device')) {
    return "no CA private key in the cluster's Secrets to search the devices for";
  }
  if (v.planted !== v.keys.length) {
    return `the key search finds only ${v.planted} of ${v.keys.length} keys planted in userdata`;
  }
  if (v.configs.length !== o.machines) {
    return `${v.configs.length} PacketKubeadmConfigs for ${o.machines} Machines`;
  }
  const waiting = v.configs.filter((c) => !c.ready || !c.dataSecretName).map((c) => c.name);
  if (waiting.length > 0) return `no bootstrap data yet for ${waiting.join(', ')}`;
  if (v.init.join(',') !== o.controlPlane) {
    return `kubeadm init on ${v.init.join(', ') || 'no device'}, not ${o.controlPlane}`;
  }
  if (v.join.length !== v.devices - 1) return `${v.join.length} of ${v.devices - 1} devices join`;
  const unpinned = v.join.filter((h) => !v.pinned.includes(h));
  if (unpinned.length > 0) return `joins without the CA pinned: ${unpinned.join(', ')}`;
  if (v.kubeconfigServer !== `https://${o.endpoint}`) {
    return `the kubeconfig Secret points at ${v.kubeconfigServer || 'nothing'}, not https://${o.endpoint}`;
  }
  return undefined;
}

/**
 * A fresh ed25519 public key in authorized_keys format (`ssh-ed25519 AAAA… comment`), for
 * PacketMachines' `sshKeys`; the private half is discarded (nothing logs in to a fake device).
 */
export function sshPublicKeyLine(comment: string): string {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

/**
 * Removes what {@link CapiCore} installed and leaves in the API server (its stop() keeps them):
 * Cluster API's webhook configurations and CRDs (by the label its kustomizations set), and the
 * CRDs named in `crds` (the provider's). Run once no object with a finalizer is left and the
 * managers are stopped; waits until the CRDs are gone.
 */
export async function uninstallCapi(cp: ControlPlane, crds: readonly string[]): Promise<void> {
  await cp.kubectlOk([
    'delete',
    'validatingwebhookconfigurations,mutatingwebhookconfigurations',
    '-l',
    CAPI_PROVIDER_SELECTOR,
    '--ignore-not-found',
  ]);
  await cp.kubectlOk(['delete', 'crd', '-l', CAPI_PROVIDER_SELECTOR, '--ignore-not-found', '--timeout=60s']);
  if (crds.length > 0) {
    await cp.kubectlOk(['delete', 'crd', ...crds, '--ignore-not-found', '--timeout=60s']);
  }
  const left = [
    ...(
      await cp.kubectlOk([
        'get',
        'crd,validatingwebhookconfigurations,mutatingwebhookconfigurations',
        '-l',
        CAPI_PROVIDER_SELECTOR,
        '-o',
        'name',
      ])
    ).split('\n'),
    ...(crds.length > 0
      ? (await cp.kubectlOk(['get', 'crd', ...crds, '--ignore-not-found', '-o', 'name'])).split('\n')
      : []),
  ].filter(Boolean);
  if (left.length > 0) throw new Error(`still in the API server after the delete: ${left.join(', ')}`);
}
