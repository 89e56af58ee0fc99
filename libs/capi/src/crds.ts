/**
 * The provider's CustomResourceDefinitions, built here once: `charts/capi-packet-manager/crds/` holds
 * them as YAML (a spec keeps the files equal to this, `UPDATE_CRDS=1` rewrites them) and the
 * clusterctl bundle is rendered from the chart. Schemas follow CAPEM v0.9 (same field names and
 * short names, so its objects apply unchanged) plus knet's additions (`eipReclaimPolicy`,
 * `eipReservationID`, `initialization`).
 *
 * The `cluster.x-k8s.io/<contract>: <versions>` labels tell CAPI core which contract each version
 * implements: v1beta1 serves both the v1beta1 contract (`status.ready`) and the v1beta2 contract
 * (`status.initialization.provisioned`).
 */
import { BOOTSTRAP_GROUP, INFRA_GROUP, INFRA_VERSION } from './types';

type Schema = Record<string, unknown>;

const str = (description: string, extra: Schema = {}): Schema => ({ type: 'string', description, ...extra });
const bool = (description: string): Schema => ({ type: 'boolean', description });
const int = (description: string, extra: Schema = {}): Schema => ({
  type: 'integer',
  format: 'int32',
  description,
  ...extra,
});
const arr = (description: string, items: Schema, extra: Schema = {}): Schema => ({
  type: 'array',
  description,
  items,
  ...extra,
});
const obj = (description: string, properties: Record<string, Schema>, required?: string[]): Schema => ({
  type: 'object',
  description,
  properties,
  ...(required ? { required } : {}),
});

const endpoint = obj(
  'The API server endpoint: the elastic IP the provider reserves, port 6443.',
  {
    host: str('The IP address or host name.', { maxLength: 512 }),
    port: int('The port.', { minimum: 1, maximum: 65535 }),
  },
  ['host', 'port'],
);

const conditions = arr(
  'Conditions of both Cluster API contracts: `Ready` summarises; reasons name the step.',
  obj(
    'One condition (metav1.Condition plus CAPI v1beta1 severity).',
    {
      type: str('Type of condition, e.g. Ready.', { maxLength: 316 }),
      status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
      severity: str('v1beta1: how bad a False condition is.', { enum: ['Error', 'Warning', 'Info', ''] }),
      reason: str('CamelCase reason.', { maxLength: 1024 }),
      message: str('Human-readable details.', { maxLength: 32768 }),
      lastTransitionTime: str('When the status last changed.', { format: 'date-time' }),
      observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
    },
    ['type', 'status', 'lastTransitionTime'],
  ),
  { maxItems: 32, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
);

const initialization = obj('Cluster API v1beta2 contract: provisioning progress.', {
  provisioned: bool('True once the infrastructure is provisioned (v1beta2 contract).'),
});

const location = {
  facility: str('Facility code (deprecated by Equinix); exactly one of facility or metro.', {
    maxLength: 64,
  }),
  metro: str('Metro code, e.g. da or am.', { maxLength: 64 }),
};

export const machineSpecSchema: Schema = obj(
  'The device a PacketMachine is.',
  {
    os: str('Operating system slug, e.g. ubuntu_24_04.', { minLength: 1, maxLength: 128 }),
    machineType: str('Plan slug, e.g. c3.small.x86.', { minLength: 1, maxLength: 128 }),
    billingCycle: str('Billing cycle.', { enum: ['hourly', 'daily', 'monthly', 'yearly'] }),
    sshKeys: arr('Public SSH keys installed on the device.', str('An authorized_keys line.'), {
      maxItems: 64,
    }),
    ...location,
    ipxeURL: str('iPXE script URL (os must be custom_ipxe).', { maxLength: 2048 }),
    hardwareReservationID: str(
      'Hardware reservation: a UUID, a comma-separated list tried in order, or next-available.',
      { maxLength: 4096 },
    ),
    providerID: str('equinixmetal://<device id>, set by the provider.', { maxLength: 128 }),
    tags: arr('Extra device tags.', str('A tag.', { maxLength: 256 }), { maxItems: 64 }),
  },
  ['os', 'machineType'],
);

const printer = (name: string, jsonPath: string, description: string, type = 'string') => ({
  name,
  jsonPath,
  description,
  type,
});

function crd(
  group: string,
  provider: string,
  kind: string,
  plural: string,
  shortNames: string[],
  spec: Schema,
  status: Schema | undefined,
  columns: ReturnType<typeof printer>[],
) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${group}`,
      labels: {
        'cluster.x-k8s.io/provider': provider,
        'cluster.x-k8s.io/v1beta1': INFRA_VERSION,
        'cluster.x-k8s.io/v1beta2': INFRA_VERSION,
      },
    },
    spec: {
      group,
      names: {
        kind,
        listKind: `${kind}List`,
        plural,
        singular: kind.toLowerCase(),
        shortNames,
        categories: ['cluster-api'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: INFRA_VERSION,
          served: true,
          storage: true,
          ...(columns.length > 0 ? { additionalPrinterColumns: columns } : {}),
          ...(status ? { subresources: { status: {} } } : {}),
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: `${kind} (Cluster API provider for Packet / Equinix Metal).`,
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                ...(status ? { status } : {}),
              },
              ...(kind.endsWith('Template') ? { required: ['spec'] } : {}),
            },
          },
        },
      ],
    },
  };
}

/** The three infrastructure CRDs, in the order they are applied. */
export function infrastructureCrds() {
  const age = printer('Age', '.metadata.creationTimestamp', 'Time since creation.', 'date');
  return [
    crd(
      INFRA_GROUP,
      'infrastructure-packet',
      'PacketCluster',
      'packetclusters',
      ['pcl'],
      {
        ...obj(
          'Where the cluster lives and how its control plane is reached.',
          {
            projectID: str('Equinix Metal project UUID.', {
              minLength: 1,
              maxLength: 64,
              'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'projectID is immutable' }],
            }),
            ...location,
            controlPlaneEndpoint: endpoint,
            vipManager: str(
              'How the control-plane endpoint is kept: CPEM (an elastic IP, assigned to the first control plane).',
              { enum: ['CPEM'], default: 'CPEM' },
            ),
            eipReclaimPolicy: str(
              'What happens to the elastic IP when the cluster is deleted (CAPEM keeps it).',
              { enum: ['Retain', 'Delete'], default: 'Retain' },
            ),
          },
          ['projectID'],
        ),
        'x-kubernetes-validations': [
          {
            rule: '!(has(self.facility) && has(self.metro))',
            message: 'set either facility or metro, not both',
          },
        ],
      },
      obj('Observed state.', {
        ready: bool('True once the endpoint is reserved (v1beta1 contract).'),
        initialization,
        eipReservationID: str('The IP reservation behind the endpoint.', { maxLength: 64 }),
        observedGeneration: { type: 'integer', format: 'int64' },
        conditions,
      }),
      [
        printer('Cluster', `.metadata.labels.cluster\\.x-k8s\\.io/cluster-name`, 'Owning Cluster.'),
        printer('Ready', '.status.ready', 'Infrastructure ready.'),
        printer('Endpoint', '.spec.controlPlaneEndpoint.host', 'Control-plane endpoint.'),
        printer('Metro', '.spec.metro', 'Metro.'),
        age,
      ],
    ),
    crd(
      INFRA_GROUP,
      'infrastructure-packet',
      'PacketMachine',
      'packetmachines',
      ['pma'],
      machineSpecSchema,
      obj('Observed state.', {
        ready: bool('True once the device is active (v1beta1 contract).'),
        initialization,
        addresses: arr(
          'The device addresses.',
          obj(
            'An address.',
            {
              type: str('Address type.', {
                enum: ['Hostname', 'ExternalIP', 'InternalIP', 'ExternalDNS', 'InternalDNS'],
              }),
              address: str('The address.', { maxLength: 256 }),
            },
            ['type', 'address'],
          ),
          { maxItems: 32 },
        ),
        instanceStatus: str('Device state as the API last reported it.', { maxLength: 64 }),
        failureReason: str('Terminal failure, machine-readable.', { maxLength: 256 }),
        failureMessage: str('Terminal failure, for people.', { maxLength: 10240 }),
        observedGeneration: { type: 'integer', format: 'int64' },
        conditions,
      }),
      [
        printer('Cluster', `.metadata.labels.cluster\\.x-k8s\\.io/cluster-name`, 'Owning Cluster.'),
        printer('State', '.status.instanceStatus', 'Device state.'),
        printer('Ready', '.status.ready', 'Machine ready.'),
        printer('ProviderID', '.spec.providerID', 'equinixmetal://<device id>.'),
        printer('Machine', '.metadata.ownerReferences[?(@.kind=="Machine")].name', 'Owning Machine.'),
        age,
      ],
    ),
    crd(
      INFRA_GROUP,
      'infrastructure-packet',
      'PacketMachineTemplate',
      'packetmachinetemplates',
      ['pmt'],
      obj(
        'The template MachineSets and KubeadmControlPlane stamp PacketMachines from.',
        {
          template: obj(
            'The PacketMachine to create.',
            {
              metadata: {
                type: 'object',
                properties: {
                  labels: { type: 'object', additionalProperties: { type: 'string' } },
                  annotations: { type: 'object', additionalProperties: { type: 'string' } },
                },
              },
              spec: machineSpecSchema,
            },
            ['spec'],
          ),
        },
        ['template'],
      ),
      undefined,
      [age],
    ),
  ];
}

const bootstrapSpec: Schema = obj('How the node is bootstrapped (all optional).', {
  sshAuthorizedKeys: arr(
    "Lines added to root's authorized_keys.",
    str('An authorized_keys line.', { maxLength: 16384 }),
    {
      maxItems: 64,
    },
  ),
  preKubeadmCommands: arr('Commands run before kubeadm.', str('A shell command.', { maxLength: 10240 }), {
    maxItems: 100,
  }),
  postKubeadmCommands: arr('Commands run after kubeadm.', str('A shell command.', { maxLength: 10240 }), {
    maxItems: 100,
  }),
  kubeletExtraArgs: {
    type: 'object',
    description: 'Extra kubelet flags.',
    additionalProperties: { type: 'string', maxLength: 4096 },
    maxProperties: 64,
  },
  cloudProvider: str('external when a cloud controller manager (CPEM) runs in the cluster.', {
    enum: ['', 'external'],
  }),
  tokenTTL: str('Bootstrap token lifetime for joins, e.g. 24h (default) or 30m.', {
    pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
    maxLength: 32,
  }),
});

/** The bootstrap provider's CRDs (the seed's bootstrap, as PacketKubeadmConfig). */
export function bootstrapCrds() {
  const age = printer('Age', '.metadata.creationTimestamp', 'Time since creation.', 'date');
  return [
    crd(
      BOOTSTRAP_GROUP,
      'bootstrap-packet-kubeadm',
      'PacketKubeadmConfig',
      'packetkubeadmconfigs',
      ['pkc'],
      bootstrapSpec,
      obj('Observed state.', {
        ready: bool('True once the bootstrap data Secret exists (v1beta1 contract).'),
        initialization: obj('Cluster API v1beta2 contract: progress.', {
          dataSecretCreated: bool('True once the bootstrap data Secret exists (v1beta2 contract).'),
        }),
        dataSecretName: str('The Secret with the cloud-init user data (key value).', { maxLength: 253 }),
        failureReason: str('Terminal failure, machine-readable.', { maxLength: 256 }),
        failureMessage: str('Terminal failure, for people.', { maxLength: 10240 }),
        observedGeneration: { type: 'integer', format: 'int64' },
        conditions,
      }),
      [
        printer('Cluster', `.metadata.labels.cluster\\.x-k8s\\.io/cluster-name`, 'Owning Cluster.'),
        printer('DataSecret', '.status.dataSecretName', 'Bootstrap data Secret.'),
        printer('Ready', '.status.ready', 'Bootstrap data ready.'),
        age,
      ],
    ),
    crd(
      BOOTSTRAP_GROUP,
      'bootstrap-packet-kubeadm',
      'PacketKubeadmConfigTemplate',
      'packetkubeadmconfigtemplates',
      ['pkct'],
      obj(
        'The template MachineDeployments stamp PacketKubeadmConfigs from.',
        {
          template: obj('The PacketKubeadmConfig to create.', {
            metadata: {
              type: 'object',
              properties: {
                labels: { type: 'object', additionalProperties: { type: 'string' } },
                annotations: { type: 'object', additionalProperties: { type: 'string' } },
              },
            },
            spec: bootstrapSpec,
          }),
        },
        ['template'],
      ),
      undefined,
      [age],
    ),
  ];
}
