/**
 * The provider's API objects: `infrastructure.cluster.x-k8s.io/v1beta1` PacketCluster, PacketMachine
 * and PacketMachineTemplate (CAPEM v0.9's fields, so its manifests and `clusterctl move` carry over)
 * and the CAPI core objects the controllers read. Field names are the wire names.
 *
 * Status carries both Cluster API contracts: `status.ready` (v1beta1 contract, read by CAPI ≤ 1.10)
 * and `status.initialization.provisioned` (v1beta2 contract, read by CAPI 1.11+); conditions are a
 * superset of CAPI's v1beta1 Condition (`severity`) and metav1.Condition (`reason` always set,
 * `observedGeneration`), so both readers understand them.
 */

export const INFRA_GROUP = 'infrastructure.cluster.x-k8s.io';
export const INFRA_VERSION = 'v1beta1';
export const INFRA_API_VERSION = `${INFRA_GROUP}/${INFRA_VERSION}`;
export const CAPI_GROUP = 'cluster.x-k8s.io';
/** The CAPI core version the controllers read and write (v1.11+ stores v1beta2). */
export const CAPI_VERSION = 'v1beta2';

/** Finalizers, as CAPEM names them (so objects moved from CAPEM keep theirs). */
export const PACKET_CLUSTER_FINALIZER = 'packetcluster.infrastructure.cluster.x-k8s.io';
export const PACKET_MACHINE_FINALIZER = 'packetmachine.infrastructure.cluster.x-k8s.io';

/** Labels and annotations CAPI defines. */
export const CLUSTER_NAME_LABEL = 'cluster.x-k8s.io/cluster-name';
export const CONTROL_PLANE_LABEL = 'cluster.x-k8s.io/control-plane';
export const PAUSED_ANNOTATION = 'cluster.x-k8s.io/paused';

/** The API server port the control-plane endpoint gets (kubeadm's default). */
export const API_SERVER_PORT = 6443;
/** `spec.providerID` prefix (CAPEM since Sep 2021; `packet://` before). */
export const PROVIDER_ID_PREFIX = 'equinixmetal://';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  /** Set once deletion was asked for (a string on the wire; client-node's type says Date). */
  deletionTimestamp?: Date;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ApiEndpoint {
  host: string;
  port: number;
}

export type ConditionStatus = 'True' | 'False' | 'Unknown';
export type ConditionSeverity = 'Error' | 'Warning' | 'Info' | '';

export interface CapiCondition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  /** CAPI v1beta1 conditions: how bad a False is. */
  severity?: ConditionSeverity;
  observedGeneration?: number;
}

export type VipManager = 'CPEM';
export type EipReclaimPolicy = 'Retain' | 'Delete';

export interface PacketClusterSpec {
  /** Equinix Metal project UUID (immutable). */
  projectID: string;
  /** Deprecated by Equinix; exactly one of facility or metro. */
  facility?: string;
  metro?: string;
  controlPlaneEndpoint?: ApiEndpoint;
  /** Only CPEM (the provider reserves an elastic IP and assigns it to the first control plane). */
  vipManager?: VipManager;
  /**
   * What happens to the control-plane elastic IP when the cluster is deleted: CAPEM always keeps it
   * (#203), so that is the default; `Delete` releases it.
   */
  eipReclaimPolicy?: EipReclaimPolicy;
}

export interface PacketClusterStatus {
  ready?: boolean;
  initialization?: { provisioned?: boolean };
  /** The reservation that backs the endpoint (so deletion and moves need no lookup). */
  eipReservationID?: string;
  conditions?: CapiCondition[];
  observedGeneration?: number;
}

export interface PacketCluster {
  apiVersion: string;
  kind: 'PacketCluster';
  metadata: ObjectMeta;
  spec: PacketClusterSpec;
  status?: PacketClusterStatus;
}

export type BillingCycle = 'hourly' | 'daily' | 'monthly' | 'yearly';

export interface PacketMachineSpec {
  /** Operating system slug (e.g. ubuntu_24_04). */
  os: string;
  /** The plan slug (e.g. c3.small.x86). */
  machineType: string;
  billingCycle?: BillingCycle;
  /** Public keys, sent to the API with the device (CAPEM never sent them: #788). */
  sshKeys?: string[];
  /** Override the cluster's location. */
  facility?: string;
  metro?: string;
  /** iPXE script URL; the OS must be `custom_ipxe`. */
  ipxeURL?: string;
  /** A reservation UUID, a comma-separated list tried in order, or `next-available`. */
  hardwareReservationID?: string;
  /** `equinixmetal://<device id>`, set once the device exists. */
  providerID?: string;
  /** Extra device tags, sent with the device (CAPEM dropped them). */
  tags?: string[];
}

export interface MachineAddress {
  type: 'Hostname' | 'ExternalIP' | 'InternalIP' | 'ExternalDNS' | 'InternalDNS';
  address: string;
}

export interface PacketMachineStatus {
  ready?: boolean;
  initialization?: { provisioned?: boolean };
  addresses?: MachineAddress[];
  /** The device's state as the API last reported it (queued, provisioning, active, failed…). */
  instanceStatus?: string;
  failureReason?: string;
  failureMessage?: string;
  conditions?: CapiCondition[];
  observedGeneration?: number;
}

export interface PacketMachine {
  apiVersion: string;
  kind: 'PacketMachine';
  metadata: ObjectMeta;
  spec: PacketMachineSpec;
  status?: PacketMachineStatus;
}

export interface PacketMachineTemplate {
  apiVersion: string;
  kind: 'PacketMachineTemplate';
  metadata: ObjectMeta;
  spec: { template: { metadata?: Partial<ObjectMeta>; spec: PacketMachineSpec } };
}

/** The fields of a CAPI (v1beta2) Cluster the provider reads. */
export interface CapiCluster {
  apiVersion: string;
  kind: 'Cluster';
  metadata: ObjectMeta;
  spec?: {
    paused?: boolean;
    infrastructureRef?: { apiGroup?: string; kind: string; name: string };
    controlPlaneRef?: { apiGroup?: string; kind: string; name: string };
    controlPlaneEndpoint?: ApiEndpoint;
    clusterNetwork?: {
      pods?: { cidrBlocks?: string[] };
      services?: { cidrBlocks?: string[] };
      serviceDomain?: string;
      apiServerPort?: number;
    };
  };
  status?: {
    initialization?: { infrastructureProvisioned?: boolean; controlPlaneInitialized?: boolean };
    /** v1beta1 Cluster status, kept by CAPI 1.11 under `deprecated.v1beta1`… and in older CAPI here. */
    infrastructureReady?: boolean;
    phase?: string;
  };
}

/** The fields of a CAPI (v1beta2) Machine the provider reads. */
export interface CapiMachine {
  apiVersion: string;
  kind: 'Machine';
  metadata: ObjectMeta;
  spec: {
    clusterName: string;
    version?: string;
    bootstrap?: { dataSecretName?: string; configRef?: { apiGroup?: string; kind: string; name: string } };
    infrastructureRef?: { apiGroup?: string; kind: string; name: string };
    providerID?: string;
    failureDomain?: string;
  };
  status?: { phase?: string; nodeRef?: { name: string } };
}

export const isControlPlaneMachine = (m: CapiMachine): boolean =>
  m.metadata.labels?.[CONTROL_PLANE_LABEL] !== undefined;

/** Whether the Cluster (or the object itself) is paused: CAPI's rule for every provider. */
export function isPaused(cluster: CapiCluster, obj: { metadata: ObjectMeta }): boolean {
  return (
    cluster.spec?.paused === true ||
    obj.metadata.annotations?.[PAUSED_ANNOTATION] !== undefined ||
    cluster.metadata.annotations?.[PAUSED_ANNOTATION] !== undefined
  );
}

/** Whether CAPI says the cluster's infrastructure is provisioned (v1beta2, else v1beta1 field). */
export function infrastructureProvisioned(cluster: CapiCluster): boolean {
  return (
    cluster.status?.initialization?.infrastructureProvisioned === true ||
    cluster.status?.infrastructureReady === true
  );
}

/** `equinixmetal://<id>` → `<id>` (also the legacy `packet://`); undefined for anything else. */
export function deviceIdFromProviderId(providerID: string | undefined): string | undefined {
  if (!providerID) return undefined;
  const m = /^(?:equinixmetal|packet):\/\/([0-9a-fA-F-]{36})$/.exec(providerID);
  return m?.[1];
}

export const providerIdFor = (deviceId: string): string => `${PROVIDER_ID_PREFIX}${deviceId}`;

export const BOOTSTRAP_GROUP = 'bootstrap.cluster.x-k8s.io';
export const BOOTSTRAP_API_VERSION = `${BOOTSTRAP_GROUP}/v1beta1`;

/**
 * The seed's bootstrap as a CAPI bootstrap provider: the Machine's role (first control plane:
 * `kubeadm init`; other control planes and workers: `kubeadm join`) comes from the Machine, the
 * network from the Cluster, the version from `Machine.spec.version`. Everything here is optional.
 */
export interface PacketKubeadmConfigSpec {
  /** Lines added to root's authorized_keys (besides the device's own SSH keys). */
  sshAuthorizedKeys?: string[];
  /** Commands run before / after kubeadm. */
  preKubeadmCommands?: string[];
  postKubeadmCommands?: string[];
  /** Extra kubelet flags (`--key=value`). */
  kubeletExtraArgs?: Record<string, string>;
  /** `external` when a cloud controller manager (CPEM) runs in the cluster. */
  cloudProvider?: '' | 'external';
  /** Bootstrap token lifetime for joins (default 24h; the seed used 30 min). */
  tokenTTL?: string;
}

export interface PacketKubeadmConfigStatus {
  ready?: boolean;
  initialization?: { dataSecretCreated?: boolean };
  dataSecretName?: string;
  failureReason?: string;
  failureMessage?: string;
  conditions?: CapiCondition[];
  observedGeneration?: number;
}

export interface PacketKubeadmConfig {
  apiVersion: string;
  kind: 'PacketKubeadmConfig';
  metadata: ObjectMeta;
  spec?: PacketKubeadmConfigSpec;
  status?: PacketKubeadmConfigStatus;
}

export interface PacketKubeadmConfigTemplate {
  apiVersion: string;
  kind: 'PacketKubeadmConfigTemplate';
  metadata: ObjectMeta;
  spec: { template: { metadata?: Partial<ObjectMeta>; spec?: PacketKubeadmConfigSpec } };
}
