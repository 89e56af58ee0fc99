/**
 * The pure core of `capi-packet generate`: from the options, a cluster name, an SSH public key and
 * the bundle's components to the files to write (names, contents, modes). The manifests are
 * @knet/capi's `clusterManifests` — the clusterctl templates' objects with real values — so this
 * command and `clusterctl generate cluster` make the same cluster.
 */
import {
  addonManifests,
  clusterManifests,
  CPEM_DEPLOYMENT_URL,
  substituteVariables,
  toYaml,
  type ClusterValues,
  type Flavor,
  type Location,
  type Manifest,
} from '@knet/capi';

export interface GenerateInput {
  clusterName: string;
  flavor: Flavor;
  projectId: string;
  apiKey: string;
  /** The manager's Metal API; undefined keeps the components' default. */
  apiUrl?: string;
  metro?: string;
  facility?: string;
  /** Used when neither metro nor facility is given. */
  defaultMetro: string;
  kubernetesVersion: string;
  controlPlaneCount: number;
  workerCount: number;
  controlPlaneType: string;
  workerType: string;
  nodeOs: string;
  podCidr: string;
  serviceCidr: string;
  /** The public key line every device gets. */
  sshPublicKey: string;
  /** infrastructure-components.yaml as the bundle has it (with its clusterctl variables). */
  components: string;
}

export interface OutputFile {
  name: string;
  content: string;
  /** 0600 for what holds the token (or a private key), 0644 for the rest. */
  mode: number;
  /** For the summary line. */
  what: string;
}

export const PRIVATE = 0o600;
export const PUBLIC = 0o644;

export function location(i: Pick<GenerateInput, 'metro' | 'facility' | 'defaultMetro'>): Location {
  return i.facility ? { facility: i.facility } : { metro: i.metro ?? i.defaultMetro };
}

export function clusterValues(i: GenerateInput): ClusterValues {
  return {
    clusterName: i.clusterName,
    projectID: i.projectId,
    location: location(i),
    kubernetesVersion: i.kubernetesVersion,
    controlPlaneMachineCount: i.controlPlaneCount,
    workerMachineCount: i.workerCount,
    controlPlaneNodeType: i.controlPlaneType,
    workerNodeType: i.workerType,
    sshKey: i.sshPublicKey,
    nodeOS: i.nodeOs,
    podCIDR: i.podCidr,
    serviceCIDR: i.serviceCidr,
  };
}

const kinds = (objects: Manifest[]) => [...new Set(objects.map((o) => o.kind))].join(', ');

/** The four manifest files, in the order they are applied. */
export function generateFiles(i: GenerateInput): OutputFile[] {
  const { cluster, machines } = clusterManifests(clusterValues(i), i.flavor);
  const components = substituteVariables(i.components, (name) =>
    name === 'PACKET_API_KEY' ? i.apiKey : name === 'METAL_API_URL' ? i.apiUrl : undefined,
  );
  const addons = addonManifests({
    clusterName: i.clusterName,
    projectID: i.projectId,
    location: location(i),
    apiKey: i.apiKey,
  });
  const apply = 'kubectl apply -f';
  return [
    {
      name: 'components.yaml',
      content: components,
      mode: PRIVATE,
      what: 'the provider for the management cluster (holds the token)',
    },
    {
      name: 'cluster.yaml',
      content: toYaml(cluster, [
        `Cluster ${i.clusterName} (${i.flavor}): ${apply} cluster.yaml -f machines.yaml`,
      ]),
      mode: PUBLIC,
      what: kinds(cluster),
    },
    {
      name: 'machines.yaml',
      content: toYaml(machines, [
        `${i.controlPlaneCount} control plane(s), ${i.workerCount} worker(s) of Cluster ${i.clusterName}`,
      ]),
      mode: PUBLIC,
      what: kinds(machines),
    },
    {
      name: 'addons.yaml',
      content: toYaml(addons, [
        `Add-ons of the workload cluster ${i.clusterName}, applied to it once its API server answers:`,
        `  capi-packet kubeconfig ${i.clusterName} > ${i.clusterName}.kubeconfig`,
        `  kubectl --kubeconfig ${i.clusterName}.kubeconfig apply -f addons.yaml -f ${CPEM_DEPLOYMENT_URL}`,
        'CPEM (cloud-provider-equinix-metal) reads this Secret: it initializes the nodes (kubelet runs with',
        '--cloud-provider=external) and keeps the control-plane elastic IP on a healthy control plane.',
        `Then a CNI of your choice for the pod network ${i.podCidr} (none is installed).`,
        'This file holds the Metal API token: keep it private.',
      ]),
      mode: PRIVATE,
      what: 'CPEM configuration for the workload cluster (holds the token)',
    },
  ];
}

/** `test1-<5 random [a-z0-9]>`, the seed's default name, from 5 random bytes. */
export function defaultClusterName(random: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return `test1-${Array.from(random.subarray(0, 5), (b) => alphabet[b % alphabet.length]).join('')}`;
}

/** Whether two CIDRs share an address (IPv4; an IPv6 pair or a mixed pair is never reported). */
export function cidrsOverlap(a: string, b: string): boolean {
  const parse = (cidr: string) => {
    const [address = '', bits = ''] = cidr.split('/');
    const octets = address.split('.').map(Number);
    if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) return undefined;
    const value = octets.reduce((n, o) => n * 256 + o, 0);
    return { value, bits: Number(bits) };
  };
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return false;
  const bits = Math.min(x.bits, y.bits);
  const block = 2 ** (32 - bits);
  return Math.floor(x.value / block) === Math.floor(y.value / block);
}
