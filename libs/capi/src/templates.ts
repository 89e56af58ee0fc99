/**
 * The manifests of a workload cluster on Packet / Equinix Metal, built here once as objects: the
 * CLI (`capi-packet generate`) writes them with real values, and the clusterctl bundle's
 * `cluster-template*.yaml` are the same objects with clusterctl variables (`${CLUSTER_NAME}`) in
 * place of the values (templates.spec.ts keeps the committed files equal; `UPDATE_BUNDLE=1`
 * rewrites them). Also here, all pure: clusterctl's variable substitution (the subset the bundle
 * uses), the bundle's metadata.yaml, the post-processing that turns the chart's `helm template`
 * output into infrastructure-components.yaml, and the add-ons a workload cluster needs after init.
 *
 * Object versions are what Cluster API v1.11 serves and stores: Cluster, Machine,
 * MachineDeployment, KubeadmControlPlane and KubeadmConfigTemplate in v1beta2 (references by
 * `apiGroup`, kubelet args as a list); the provider's own objects in v1beta1.
 */
import { dump, loadAll } from 'js-yaml';
import { eipTag } from './tags';
import {
  BOOTSTRAP_API_VERSION,
  BOOTSTRAP_GROUP,
  CAPI_GROUP,
  CAPI_VERSION,
  INFRA_API_VERSION,
  INFRA_GROUP,
} from './types';

/** A Kubernetes object as a manifest holds it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/**
 * The cluster templates: `default` is the one CAPEM users know (KubeadmControlPlane and CABPK's
 * KubeadmConfigTemplate); `packet-bootstrap` uses this provider's own bootstrap (the seed's
 * kubeadm init/join as PacketKubeadmConfig) with plain control-plane Machines.
 */
export const FLAVORS = ['default', 'packet-bootstrap'] as const;
export type Flavor = (typeof FLAVORS)[number];

/** The clusterctl label of this provider (`cluster.x-k8s.io/provider` on every component). */
export const PROVIDER_LABEL = 'cluster.x-k8s.io/provider';
export const PROVIDER_NAME = 'infrastructure-packet';

/** The bundle's release series: this provider's 0.1 implements the v1beta1 contract (CAPI 1.11 accepts it). */
export const RELEASE_SERIES = [{ major: 0, minor: 1, contract: 'v1beta1' }] as const;

/** cloud-provider-equinix-metal (CPEM): moves the control-plane elastic IP and initializes the nodes. */
export const CPEM_VERSION = 'v3.8.1';
export const CPEM_DEPLOYMENT_URL = `https://github.com/equinix/cloud-provider-equinix-metal/releases/download/${CPEM_VERSION}/deployment.yaml`;
/** The Secret CPEM's deployment.yaml reads its configuration from (kube-system, key cloud-sa.json). */
export const CPEM_SECRET = 'metal-cloud-config';

const CAPI_API_VERSION = `${CAPI_GROUP}/${CAPI_VERSION}`;
const KUBEADM_BOOTSTRAP_GROUP = BOOTSTRAP_GROUP;
const KUBEADM_CONTROL_PLANE_GROUP = 'controlplane.cluster.x-k8s.io';
const KUBEADM_VERSION = 'v1beta2';
const CLUSTER_NAME_LABEL = `${CAPI_GROUP}/cluster-name`;
const CONTROL_PLANE_LABEL = `${CAPI_GROUP}/control-plane`;

/** Where the devices go: a metro (e.g. `ny`), or a facility (deprecated by Equinix, e.g. `ewr1`). */
export type Location = { metro: string } | { facility: string };

/** What a cluster is made of. Counts are numbers, or a clusterctl variable in a template. */
export interface ClusterValues {
  clusterName: string;
  projectID: string;
  location: Location;
  kubernetesVersion: string;
  controlPlaneMachineCount: number | string;
  workerMachineCount: number | string;
  controlPlaneNodeType: string;
  workerNodeType: string;
  /** One public key line (authorized_keys format), sent with every device. */
  sshKey: string;
  nodeOS: string;
  podCIDR: string;
  serviceCIDR: string;
}

/** A clusterctl variable of the cluster templates. */
export interface TemplateVariable {
  name: string;
  /** Used when the variable is unset or empty; none means clusterctl refuses to go on without it. */
  default?: string;
  description: string;
}

/**
 * The variables of the cluster templates, by the value they fill: CAPEM's names, so its users'
 * clusterctl settings carry over. Their defaults are also the CLI's.
 */
export const TEMPLATE_VARIABLES = {
  clusterName: { name: 'CLUSTER_NAME', description: 'name of the Cluster and prefix of its objects' },
  projectID: { name: 'PROJECT_ID', description: 'Equinix Metal project UUID' },
  location: {
    name: 'METRO',
    default: 'ny',
    description: "metro of the devices and the elastic IP (ny holds ewr1, the seed's facility)",
  },
  kubernetesVersion: { name: 'KUBERNETES_VERSION', default: 'v1.34.4', description: 'Kubernetes version' },
  controlPlaneMachineCount: {
    name: 'CONTROL_PLANE_MACHINE_COUNT',
    default: '1',
    description: 'control-plane machines (packet-bootstrap flavor: always 1)',
  },
  workerMachineCount: { name: 'WORKER_MACHINE_COUNT', default: '1', description: 'worker machines' },
  controlPlaneNodeType: {
    name: 'CONTROLPLANE_NODE_TYPE',
    default: 'c3.small.x86',
    description: 'plan of the control-plane devices',
  },
  workerNodeType: { name: 'WORKER_NODE_TYPE', default: 'c3.small.x86', description: 'plan of the workers' },
  sshKey: { name: 'SSH_KEY', description: 'public SSH key line installed on every device' },
  nodeOS: { name: 'NODE_OS', default: 'ubuntu_24_04', description: 'operating system slug of the devices' },
  podCIDR: { name: 'POD_CIDR', default: '192.168.0.0/16', description: 'pod network' },
  serviceCIDR: { name: 'SERVICE_CIDR', default: '172.26.0.0/16', description: 'service network' },
} as const satisfies Record<keyof ClusterValues, TemplateVariable>;

/** `${NAME}`, or `${NAME:=default}` when the variable has a default. */
export function variableRef(v: TemplateVariable): string {
  return v.default === undefined ? `\${${v.name}}` : `\${${v.name}:=${v.default}}`;
}

/** The values of a clusterctl template: every field is its variable. */
export function clusterctlValues(): ClusterValues {
  const ref = (k: keyof typeof TEMPLATE_VARIABLES) => variableRef(TEMPLATE_VARIABLES[k]);
  return {
    clusterName: ref('clusterName'),
    projectID: ref('projectID'),
    location: { metro: ref('location') },
    kubernetesVersion: ref('kubernetesVersion'),
    controlPlaneMachineCount: ref('controlPlaneMachineCount'),
    workerMachineCount: ref('workerMachineCount'),
    controlPlaneNodeType: ref('controlPlaneNodeType'),
    workerNodeType: ref('workerNodeType'),
    sshKey: ref('sshKey'),
    nodeOS: ref('nodeOS'),
    podCIDR: ref('podCIDR'),
    serviceCIDR: ref('serviceCIDR'),
  };
}

/** A cluster's objects, split as the seed's generate-yaml.sh split them. */
export interface ClusterManifests {
  /** Cluster and PacketCluster. */
  cluster: Manifest[];
  /** The control plane and the workers, with their templates and bootstrap configs. */
  machines: Manifest[];
}

export const controlPlaneName = (cluster: string): string => `${cluster}-control-plane`;
export const workerPoolName = (cluster: string): string => `${cluster}-worker-a`;

/** The objects of a cluster in `flavor`, without namespace (applied into the target namespace). */
export function clusterManifests(v: ClusterValues, flavor: Flavor = 'default'): ClusterManifests {
  const kubeadm = flavor === 'default';
  return {
    cluster: [capiCluster(v, kubeadm), packetCluster(v)],
    machines: kubeadm ? kubeadmControlPlaneMachines(v) : packetBootstrapMachines(v),
  };
}

/** The clusterctl template of `flavor` (cluster-template.yaml, cluster-template-<flavor>.yaml). */
export function clusterTemplate(flavor: Flavor): string {
  const { cluster, machines } = clusterManifests(clusterctlValues(), flavor);
  const vars = Object.values(TEMPLATE_VARIABLES as Record<string, TemplateVariable>);
  return toYaml(
    [...cluster, ...machines],
    [
      `Cluster API template for Packet / Equinix Metal, flavor ${flavor}: ${FLAVOR_SUMMARY[flavor]}`,
      'Generated from libs/capi/src/templates.ts (UPDATE_BUNDLE=1 npx jest -c libs/capi/jest.config.cjs templates); do not edit.',
      'Variables (clusterctl generate cluster --list-variables):',
      ...vars.map(
        (x) => `  ${x.name}${x.default === undefined ? '' : ` (default ${x.default})`}: ${x.description}`,
      ),
    ],
  );
}

/** The template file name of a flavor, as clusterctl looks it up. */
export const templateFileName = (flavor: Flavor): string =>
  flavor === 'default' ? 'cluster-template.yaml' : `cluster-template-${flavor}.yaml`;

const FLAVOR_SUMMARY: Record<Flavor, string> = {
  default: 'KubeadmControlPlane and a MachineDeployment with a KubeadmConfigTemplate (CABPK).',
  'packet-bootstrap':
    "this provider's bootstrap (PacketKubeadmConfig) on one control-plane Machine and a MachineDeployment.",
};

const ref = (apiGroup: string, kind: string, name: string) => ({ apiGroup, kind, name });

function capiCluster(v: ClusterValues, withControlPlane: boolean): Manifest {
  return {
    apiVersion: CAPI_API_VERSION,
    kind: 'Cluster',
    metadata: { name: v.clusterName },
    spec: {
      clusterNetwork: {
        pods: { cidrBlocks: [v.podCIDR] },
        services: { cidrBlocks: [v.serviceCIDR] },
      },
      ...(withControlPlane
        ? {
            controlPlaneRef: ref(
              KUBEADM_CONTROL_PLANE_GROUP,
              'KubeadmControlPlane',
              controlPlaneName(v.clusterName),
            ),
          }
        : {}),
      infrastructureRef: ref(INFRA_GROUP, 'PacketCluster', v.clusterName),
    },
  };
}

function packetCluster(v: ClusterValues): Manifest {
  return {
    apiVersion: INFRA_API_VERSION,
    kind: 'PacketCluster',
    metadata: { name: v.clusterName },
    spec: { projectID: v.projectID, ...v.location, vipManager: 'CPEM' },
  };
}

function packetMachineSpec(v: ClusterValues, plan: string) {
  return { os: v.nodeOS, machineType: plan, billingCycle: 'hourly', sshKeys: [v.sshKey] };
}

function packetMachineTemplate(v: ClusterValues, name: string, plan: string): Manifest {
  return {
    apiVersion: INFRA_API_VERSION,
    kind: 'PacketMachineTemplate',
    metadata: { name },
    spec: { template: { spec: packetMachineSpec(v, plan) } },
  };
}

/** The workers: one MachineDeployment `<cluster>-worker-a` whose bootstrap is `bootstrap`. */
function workerDeployment(v: ClusterValues, bootstrapKind: string): Manifest {
  const name = workerPoolName(v.clusterName);
  const labels = { [CLUSTER_NAME_LABEL]: v.clusterName, pool: 'worker-a' };
  return {
    apiVersion: CAPI_API_VERSION,
    kind: 'MachineDeployment',
    metadata: { name, labels },
    spec: {
      clusterName: v.clusterName,
      replicas: v.workerMachineCount,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          clusterName: v.clusterName,
          version: v.kubernetesVersion,
          bootstrap: { configRef: ref(KUBEADM_BOOTSTRAP_GROUP, bootstrapKind, name) },
          infrastructureRef: ref(INFRA_GROUP, 'PacketMachineTemplate', name),
        },
      },
    },
  };
}

/**
 * The kubelet flags every node gets: its providerID from cloud-init's instance data (the device
 * id, matching the PacketMachine's `equinixmetal://<id>`), and an external cloud provider (CPEM).
 * `{{ v1.instance_id }}` is a cloud-init jinja variable: CABPK's cloud-config is a jinja template.
 */
const KUBELET_ARGS = [
  { name: 'cloud-provider', value: 'external' },
  { name: 'provider-id', value: 'equinixmetal://{{ v1.instance_id }}' },
];

/**
 * Installs containerd and kubelet/kubeadm/kubectl `version` from pkgs.k8s.io (Ubuntu/Debian
 * images), as CAPEM's templates do. Shell variables are written `$NAME`, never `${NAME}`:
 * clusterctl substitutes every `${…}` in a template.
 */
export function nodeInstallScript(version: string): string {
  return [
    'set -e',
    'export DEBIAN_FRONTEND=noninteractive',
    'swapoff -a',
    "sed -ri '/\\sswap\\s/s/^#?/#/' /etc/fstab",
    "printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/kubernetes.conf",
    'modprobe overlay',
    'modprobe br_netfilter',
    "printf 'net.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\nnet.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/99-kubernetes.conf",
    'sysctl --system',
    'apt-get update -y',
    'apt-get install -y containerd apt-transport-https ca-certificates curl gpg',
    'mkdir -p /etc/containerd /etc/apt/keyrings',
    "containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml",
    'systemctl restart containerd',
    `MINOR=$(echo ${version} | cut -d. -f1-2)`,
    'curl -fsSL https://pkgs.k8s.io/core:/stable:/$MINOR/deb/Release.key | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg',
    'echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/$MINOR/deb/ /" > /etc/apt/sources.list.d/kubernetes.list',
    'apt-get update -y',
    `PACKAGE=$(apt-cache madison kubeadm | awk -v v="$(echo ${version} | sed 's/^v//')-" 'index($3, v) == 1 { print $3; exit }')`,
    'apt-get install -y kubelet="$PACKAGE" kubeadm="$PACKAGE" kubectl="$PACKAGE"',
    'apt-mark hold kubelet kubeadm kubectl',
    '',
  ].join('\n');
}

/**
 * The control-plane endpoint (the elastic IP the provider assigns to the first control plane) must
 * also answer on the host itself: before `kubeadm init` on the first control plane (its endpoint
 * is in CABPK's /run/kubeadm/kubeadm.yaml), after `kubeadm join` on the others (from admin.conf),
 * so that traffic CPEM moves to any control plane is served there.
 */
const ENDPOINT_BEFORE_INIT = [
  'if [ -f /run/kubeadm/kubeadm.yaml ]; then',
  "  ENDPOINT=$(sed -n 's/^controlPlaneEndpoint: *\"\\{0,1\\}\\([0-9.]*\\):.*/\\1/p' /run/kubeadm/kubeadm.yaml | head -n 1)",
  '  [ -z "$ENDPOINT" ] || ip addr add "$ENDPOINT/32" dev lo || true',
  'fi',
  '',
].join('\n');
const ENDPOINT_AFTER_JOIN = [
  "ENDPOINT=$(sed -n 's#^ *server: https://\\([0-9.]*\\):.*#\\1#p' /etc/kubernetes/admin.conf | head -n 1)",
  '[ -z "$ENDPOINT" ] || ip addr add "$ENDPOINT/32" dev lo 2>/dev/null || true',
  '',
].join('\n');

function kubeadmControlPlaneMachines(v: ClusterValues): Manifest[] {
  const cp = controlPlaneName(v.clusterName);
  const workers = workerPoolName(v.clusterName);
  const nodeRegistration = { kubeletExtraArgs: KUBELET_ARGS };
  const install = nodeInstallScript(v.kubernetesVersion);
  return [
    {
      apiVersion: `${KUBEADM_CONTROL_PLANE_GROUP}/${KUBEADM_VERSION}`,
      kind: 'KubeadmControlPlane',
      metadata: { name: cp },
      spec: {
        replicas: v.controlPlaneMachineCount,
        version: v.kubernetesVersion,
        machineTemplate: { spec: { infrastructureRef: ref(INFRA_GROUP, 'PacketMachineTemplate', cp) } },
        kubeadmConfigSpec: {
          initConfiguration: { nodeRegistration },
          joinConfiguration: { nodeRegistration },
          preKubeadmCommands: [install, ENDPOINT_BEFORE_INIT],
          postKubeadmCommands: [ENDPOINT_AFTER_JOIN],
        },
      },
    },
    packetMachineTemplate(v, cp, v.controlPlaneNodeType),
    workerDeployment(v, 'KubeadmConfigTemplate'),
    {
      apiVersion: `${KUBEADM_BOOTSTRAP_GROUP}/${KUBEADM_VERSION}`,
      kind: 'KubeadmConfigTemplate',
      metadata: { name: workers },
      spec: {
        template: {
          spec: { joinConfiguration: { nodeRegistration }, preKubeadmCommands: [install] },
        },
      },
    },
    packetMachineTemplate(v, workers, v.workerNodeType),
  ];
}

/**
 * The seed's way: the provider's own bootstrap installs the runtime and kubeadm and runs `kubeadm
 * init` on the first control plane, `kubeadm join` elsewhere. Control planes are plain Machines
 * (`<cluster>-control-plane-<n>`; a template cannot repeat objects, so a clusterctl template has
 * one), the workers a MachineDeployment.
 */
function packetBootstrapMachines(v: ClusterValues): Manifest[] {
  const count = typeof v.controlPlaneMachineCount === 'number' ? v.controlPlaneMachineCount : 1;
  const bootstrapSpec = { cloudProvider: 'external' };
  const out: Manifest[] = [];
  for (let n = 0; n < count; n++) {
    const name = `${controlPlaneName(v.clusterName)}-${n}`;
    const labels = { [CLUSTER_NAME_LABEL]: v.clusterName, [CONTROL_PLANE_LABEL]: '' };
    out.push(
      {
        apiVersion: CAPI_API_VERSION,
        kind: 'Machine',
        metadata: { name, labels },
        spec: {
          clusterName: v.clusterName,
          version: v.kubernetesVersion,
          bootstrap: { configRef: ref(KUBEADM_BOOTSTRAP_GROUP, 'PacketKubeadmConfig', name) },
          infrastructureRef: ref(INFRA_GROUP, 'PacketMachine', name),
        },
      },
      {
        apiVersion: BOOTSTRAP_API_VERSION,
        kind: 'PacketKubeadmConfig',
        metadata: { name, labels },
        spec: bootstrapSpec,
      },
      {
        apiVersion: INFRA_API_VERSION,
        kind: 'PacketMachine',
        metadata: { name, labels },
        spec: packetMachineSpec(v, v.controlPlaneNodeType),
      },
    );
  }
  const workers = workerPoolName(v.clusterName);
  out.push(
    workerDeployment(v, 'PacketKubeadmConfigTemplate'),
    {
      apiVersion: BOOTSTRAP_API_VERSION,
      kind: 'PacketKubeadmConfigTemplate',
      metadata: { name: workers },
      spec: { template: { spec: bootstrapSpec } },
    },
    packetMachineTemplate(v, workers, v.workerNodeType),
  );
  return out;
}

// --- the workload cluster's add-ons ---------------------------------------------------------------

export interface AddonValues {
  clusterName: string;
  projectID: string;
  location: Location;
  /** The Metal API token CPEM uses: the Secret holds it, so the file must stay private. */
  apiKey: string;
}

/**
 * What a workload cluster needs once its API server answers: CPEM's configuration (the Secret its
 * `deployment.yaml` reads; that manifest itself is applied from CPEM_DEPLOYMENT_URL). With the
 * cluster's eipTag CPEM finds the control-plane elastic IP the provider reserved and moves it to a
 * healthy control plane; it also removes the nodes' `uninitialized` taint (kubelet runs with
 * `--cloud-provider=external`).
 */
export function addonManifests(v: AddonValues): Manifest[] {
  const config = {
    apiKey: v.apiKey,
    projectID: v.projectID,
    ...v.location,
    eipTag: eipTag(v.clusterName),
    eipHealthCheckUseHostIP: true,
  };
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: CPEM_SECRET, namespace: 'kube-system' },
      type: 'Opaque',
      stringData: { 'cloud-sa.json': JSON.stringify(config) },
    },
  ];
}

// --- clusterctl: metadata, components, variables ----------------------------------------------------

/** metadata.yaml: clusterctl's `Metadata` (release series → contract), as clusterctl 1.11 validates it. */
export function clusterctlMetadata() {
  return {
    apiVersion: 'clusterctl.cluster.x-k8s.io/v1alpha3',
    kind: 'Metadata',
    releaseSeries: RELEASE_SERIES.map((s) => ({ ...s })),
  };
}

/** Labels helm sets that say nothing true about an install by clusterctl. */
const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by'];

/**
 * infrastructure-components.yaml from the chart's `helm template --include-crds` output: the
 * target Namespace first (clusterctl takes the one Namespace as the default target namespace),
 * then every object as rendered, each labelled `cluster.x-k8s.io/provider: infrastructure-packet`
 * (as clusterctl labels them anyway) and without helm's own labels.
 */
export function clusterctlComponents(rendered: string, namespace: string): Manifest[] {
  const objects = loadAll(rendered).filter(isManifest);
  if (objects.some((o) => o.kind === 'Namespace')) {
    throw new Error(
      'clusterctlComponents: the rendered chart already holds a Namespace; clusterctl wants exactly one',
    );
  }
  const relabel = (labels: Record<string, string> | undefined, provider: boolean) => {
    const out = Object.fromEntries(Object.entries(labels ?? {}).filter(([k]) => !HELM_LABELS.includes(k)));
    if (provider) out[PROVIDER_LABEL] = PROVIDER_NAME;
    return out;
  };
  const ns: Manifest = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } };
  return [ns, ...objects].map((o) => {
    const copy = structuredClone(o);
    copy.metadata.labels = relabel(copy.metadata.labels, true);
    const template = (copy['spec'] as { template?: { metadata?: { labels?: Record<string, string> } } })
      ?.template?.metadata;
    if (template?.labels) template.labels = relabel(template.labels, false);
    return copy;
  });
}

function isManifest(doc: unknown): doc is Manifest {
  if (typeof doc !== 'object' || doc === null) return false;
  const o = doc as Partial<Manifest>;
  return (
    typeof o.apiVersion === 'string' && typeof o.kind === 'string' && typeof o.metadata?.name === 'string'
  );
}

/** A clusterctl variable that has no value and no default. */
export class MissingVariablesError extends Error {
  constructor(readonly names: readonly string[]) {
    super(`value for variables [${names.join(', ')}] is not set: set them in the environment`);
    this.name = 'MissingVariablesError';
  }
}

/** A `${…}` expression the substitution does not support (only `${NAME}` and its defaults). */
export class TemplateSyntaxError extends Error {
  constructor(readonly expression: string) {
    super(`unsupported expression ${expression}: only \${NAME}, \${NAME:=default} and \${NAME:-default} are`);
    this.name = 'TemplateSyntaxError';
  }
}

const EXPRESSION = /\$\$|\$\{([^}]*)\}/g;
const VARIABLE = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[=-])(.*))?$/s;

/**
 * clusterctl's substitution (drone/envsubst) for the subset the bundle uses: `${NAME}`,
 * `${NAME:=default}` / `${NAME:-default}` (default when unset or empty), `${NAME=default}` /
 * `${NAME-default}` (default when unset), and `$$` for a literal `$`. Like clusterctl, it refuses
 * to go on while a variable without default has no value, naming all of them.
 */
export function substituteVariables(text: string, lookup: (name: string) => string | undefined): string {
  const missing = new Set<string>();
  const out = text.replace(EXPRESSION, (match: string, inner: string | undefined) => {
    if (inner === undefined) return '$';
    const m = VARIABLE.exec(inner);
    if (!m) throw new TemplateSyntaxError(match);
    const [, name = '', op, fallback = ''] = m;
    const value = lookup(name);
    if (op === undefined) {
      if (value === undefined) missing.add(name);
      return value ?? '';
    }
    const useDefault = op.startsWith(':') ? !value : value === undefined;
    return useDefault ? fallback : (value ?? '');
  });
  if (missing.size > 0) throw new MissingVariablesError([...missing].sort());
  return out;
}

/** The variables of a template, in order of first use, with their defaults (`--list-variables`). */
export function templateVariables(text: string): { name: string; default?: string }[] {
  const seen = new Map<string, string | undefined>();
  for (const m of text.matchAll(EXPRESSION)) {
    if (m[1] === undefined) continue;
    const v = VARIABLE.exec(m[1]);
    if (!v) throw new TemplateSyntaxError(m[0]);
    const [, name = '', op, fallback] = v;
    if (!seen.has(name) || (seen.get(name) === undefined && op !== undefined)) seen.set(name, fallback);
  }
  return [...seen].map(([name, d]) => (d === undefined ? { name } : { name, default: d }));
}

/** Objects as a YAML stream, headed by `comment` lines. */
export function toYaml(objects: readonly unknown[], comment: readonly string[] = []): string {
  const head = comment.map((l) => `# ${l}`.trimEnd()).join('\n');
  const body = objects.map((o) => dump(o, { lineWidth: -1, noRefs: true })).join('---\n');
  return head ? `${head}\n${body}` : body;
}
