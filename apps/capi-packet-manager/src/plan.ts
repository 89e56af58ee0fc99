/**
 * The pure core: from the objects (and, once looked up, the device or elastic IP) to the one next
 * step a reconcile takes. No I/O; the loops (cluster-reconciler.ts, machine-reconciler.ts) carry
 * the steps out and call again until a step waits or is done. Each step is idempotent and safe to
 * repeat after a crash at any point, because the only state is in the API objects and the tags.
 */
import {
  API_SERVER_PORT,
  PACKET_CLUSTER_FINALIZER,
  PACKET_MACHINE_FINALIZER,
  deviceIdFromProviderId,
  deviceTags,
  eipTag,
  infrastructureProvisioned,
  isControlPlaneMachine,
  isPaused,
  type CapiCluster,
  type CapiMachine,
  type MachineAddress,
  type PacketCluster,
  type PacketMachine,
} from '@knet/capi';
import type { Device, DeviceCreateInput, DeviceCreateRequest, IPReservation } from '@knet/metal';

/** An annotation recorded before the create call: its absence proves no device can exist yet. */
export const CREATE_INTENT_ANNOTATION = 'capi-packet.knet.dev/device-create-requested';

/** Condition types and reasons (CAPEM's names where it has one). */
export const READY = 'Ready';
export const INSTANCE_READY = 'InstanceReady';
export const NETWORK_READY = 'NetworkInfrastructureReady';
export const PAUSED = 'Paused';
export const REASON = {
  waitingForClusterInfrastructure: 'WaitingForClusterInfrastructure',
  waitingForBootstrapData: 'WaitingForBootstrapData',
  provisionStarted: 'InstanceProvisionStarted',
  provisionFailed: 'InstanceProvisionFailed',
  notFound: 'InstanceNotFound',
  notReady: 'InstanceNotReady',
  unexpectedState: 'InstanceStateUnexpected',
  createRejected: 'InstanceCreateRejected',
  credentialsInvalid: 'CredentialsInvalid',
  apiUnavailable: 'MetalApiUnavailable',
  eipReserveRejected: 'ElasticIPReservationRejected',
  deleting: 'Deleting',
  ready: 'Ready',
  paused: 'Paused',
  notPaused: 'NotPaused',
} as const;

/** How a device lookup came out. */
export type DeviceObservation =
  | { kind: 'not-looked-up' }
  /** No providerID and no tagged device. */
  | { kind: 'absent' }
  /** GET by providerID answered 404. */
  | { kind: 'gone' }
  /** GET by providerID answered 403: what the API answers for a device whose provisioning failed. */
  | { kind: 'forbidden' }
  | { kind: 'found'; device: Device };

export interface ConditionUpdate {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  severity?: 'Error' | 'Warning' | 'Info' | '';
}

export type MachineStep =
  /** Nothing to do now; the watches bring the object back (owner set, cluster unpaused…). */
  | { do: 'wait'; why: string; conditions?: ConditionUpdate[]; requeueMs?: number }
  | { do: 'add-finalizer' }
  | { do: 'look-up-device' }
  /** Record CREATE_INTENT_ANNOTATION (and InstanceProvisionStarted) before the create call. */
  | { do: 'record-create-intent' }
  | { do: 'read-bootstrap-data'; secret: string }
  | { do: 'create-device'; request: DeviceCreateRequest; hardwareReservations: string[] }
  /** Write providerID, addresses, state and conditions (and ready once active). */
  | {
      do: 'write-status';
      providerID: string;
      addresses: MachineAddress[];
      instanceStatus: string;
      ready: boolean;
      conditions: ConditionUpdate[];
      requeueMs?: number;
      event?: { type: 'Normal' | 'Warning'; reason: string; message: string };
    }
  | { do: 'assign-elastic-ip'; deviceId: string; address: string }
  | { do: 'fail'; reason: string; message: string }
  | { do: 'delete-device'; deviceId: string }
  | { do: 'remove-finalizer' }
  | { do: 'done'; why: string };

export interface MachineInput {
  packetMachine: PacketMachine;
  machine?: CapiMachine;
  cluster?: CapiCluster;
  packetCluster?: PacketCluster;
  device: DeviceObservation;
  /** The bootstrap data (the Secret's `value`), once read. */
  userdata?: string;
  /** Whether another device of the cluster already holds the elastic IP (from the cluster listing). */
  elasticIpHeld?: boolean;
  /** How long to wait before looking at a provisioning device again. */
  pollIntervalMs: number;
}

const PENDING_STATES = new Set(['new', 'queued', 'provisioning', 'reinstalling', 'powering_on']);

/** The next step for a PacketMachine. */
export function planMachine(i: MachineInput): MachineStep {
  const pm = i.packetMachine;
  const deleting = pm.metadata.deletionTimestamp !== undefined;
  const hasFinalizer = pm.metadata.finalizers?.includes(PACKET_MACHINE_FINALIZER) === true;
  if (!i.machine) {
    if (deleting && hasFinalizer) return deleteSteps(i);
    return { do: 'wait', why: 'no owner Machine yet' };
  }
  if (!i.cluster) return { do: 'wait', why: `Cluster ${i.machine.spec.clusterName} not found` };
  if (isPaused(i.cluster, pm)) {
    return {
      do: 'wait',
      why: 'paused',
      conditions: [
        { type: PAUSED, status: 'True', reason: REASON.paused, message: 'reconciliation is paused' },
      ],
    };
  }
  if (deleting) return hasFinalizer ? deleteSteps(i) : { do: 'done', why: 'deleted' };
  if (!hasFinalizer) return { do: 'add-finalizer' };
  if (pm.status?.failureReason) return { do: 'done', why: `failed: ${pm.status.failureReason}` };
  if (!i.packetCluster) return { do: 'wait', why: 'PacketCluster not found' };
  const notPaused: ConditionUpdate = {
    type: PAUSED,
    status: 'False',
    reason: REASON.notPaused,
    message: '',
  };
  if (!infrastructureProvisioned(i.cluster)) {
    return {
      do: 'wait',
      why: 'cluster infrastructure not provisioned',
      conditions: [
        notPaused,
        waiting(REASON.waitingForClusterInfrastructure, 'waiting for the cluster infrastructure'),
      ],
    };
  }
  const dataSecret = i.machine.spec.bootstrap?.dataSecretName;
  if (!dataSecret) {
    return {
      do: 'wait',
      why: 'no bootstrap data yet',
      conditions: [
        notPaused,
        waiting(REASON.waitingForBootstrapData, 'waiting for the bootstrap data secret'),
      ],
    };
  }
  // Steady state: an active, ready machine costs no API call.
  if (pm.status?.ready === true && pm.spec.providerID) return { do: 'done', why: 'ready' };

  const providerDeviceId = deviceIdFromProviderId(pm.spec.providerID);
  const intent = pm.metadata.annotations?.[CREATE_INTENT_ANNOTATION] !== undefined;
  if (i.device.kind === 'not-looked-up') {
    // Without a providerID and without a recorded create intent no device can exist: skip the lookup.
    if (providerDeviceId || intent) return { do: 'look-up-device' };
    return { do: 'record-create-intent' };
  }
  if (i.device.kind === 'gone') {
    return { do: 'fail', reason: REASON.notFound, message: `device ${providerDeviceId} no longer exists` };
  }
  if (i.device.kind === 'forbidden') {
    return {
      do: 'fail',
      reason: REASON.provisionFailed,
      message: `the API refuses device ${providerDeviceId} (403): its provisioning failed`,
    };
  }
  if (i.device.kind === 'absent') {
    if (!intent) return { do: 'record-create-intent' };
    if (i.userdata === undefined) return { do: 'read-bootstrap-data', secret: dataSecret };
    return createStep(i, i.machine, i.packetCluster, i.userdata);
  }
  return deviceSteps(i, i.machine, i.device.device);
}

function waiting(reason: string, message: string): ConditionUpdate {
  return { type: INSTANCE_READY, status: 'False', reason, message, severity: 'Info' };
}

function createStep(
  i: MachineInput,
  machine: CapiMachine,
  pcl: PacketCluster,
  userdata: string,
): MachineStep {
  const pm = i.packetMachine;
  const metro = pm.spec.metro ?? (pm.spec.facility ? undefined : pcl.spec.metro);
  const facility = pm.spec.facility ?? (pm.spec.metro ? undefined : pcl.spec.facility);
  const keys = pm.spec.sshKeys ?? [];
  const reservations = (pm.spec.hardwareReservationID ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const common: DeviceCreateInput = {
    hostname: pm.metadata.name,
    plan: pm.spec.machineType,
    operating_system: pm.spec.os,
    billing_cycle: pm.spec.billingCycle ?? 'hourly',
    userdata,
    tags: deviceTags({
      cluster: machine.spec.clusterName,
      namespace: pm.metadata.namespace ?? 'default',
      machine: machine.metadata.name,
      controlPlane: isControlPlaneMachine(machine),
      extra: pm.spec.tags,
    }),
    ...(keys.length > 0
      ? { ssh_keys: keys.map((key, n) => ({ label: `${pm.metadata.name}-${n}`, key })) }
      : {}),
    ...(pm.spec.ipxeURL ? { ipxe_script_url: pm.spec.ipxeURL, always_pxe: false } : {}),
  };
  // The API wants one of the two; without either the device may land in any metro.
  const request: DeviceCreateRequest = facility
    ? { ...common, facility: [facility] }
    : { ...common, metro: metro ?? 'any' };
  return { do: 'create-device', request, hardwareReservations: reservations };
}

/** ExternalIP for public addresses, InternalIP for private ones; the hostname too. */
export function deviceAddresses(device: Device): MachineAddress[] {
  const out: MachineAddress[] = [];
  if (device.hostname) out.push({ type: 'Hostname', address: device.hostname });
  for (const ip of device.ip_addresses ?? []) {
    if (!ip.address) continue;
    out.push({ type: ip.public ? 'ExternalIP' : 'InternalIP', address: ip.address });
  }
  return out;
}

function deviceSteps(i: MachineInput, machine: CapiMachine, device: Device): MachineStep {
  const providerID = `equinixmetal://${device.id}`;
  const addresses = deviceAddresses(device);
  const state = device.state ?? 'unknown';
  if (PENDING_STATES.has(state)) {
    return {
      do: 'write-status',
      providerID,
      addresses,
      instanceStatus: state,
      ready: false,
      conditions: [
        {
          type: INSTANCE_READY,
          status: 'False',
          reason: REASON.notReady,
          message: `device ${device.id} is ${state}`,
          severity: 'Info',
        },
      ],
      requeueMs: i.pollIntervalMs,
    };
  }
  if (state !== 'active') {
    const reason = state === 'failed' ? REASON.provisionFailed : REASON.unexpectedState;
    return { do: 'fail', reason, message: `device ${device.id} is ${state}` };
  }
  const eip = i.packetCluster?.spec.controlPlaneEndpoint?.host;
  const holds = eip !== undefined && (device.ip_addresses ?? []).some((a) => a.address === eip);
  if (isControlPlaneMachine(machine) && eip && !holds && i.elasticIpHeld === false) {
    return { do: 'assign-elastic-ip', deviceId: device.id, address: eip };
  }
  return {
    do: 'write-status',
    providerID,
    addresses,
    instanceStatus: state,
    ready: true,
    conditions: [{ type: INSTANCE_READY, status: 'True', reason: REASON.ready, message: '' }],
    event: { type: 'Normal', reason: 'DeviceActive', message: `device ${device.id} is active` },
  };
}

function deleteSteps(i: MachineInput): MachineStep {
  const pm = i.packetMachine;
  const providerDeviceId = deviceIdFromProviderId(pm.spec.providerID);
  const intent = pm.metadata.annotations?.[CREATE_INTENT_ANNOTATION] !== undefined;
  if (i.device.kind === 'not-looked-up') {
    if (!providerDeviceId && !intent) return { do: 'remove-finalizer' };
    return { do: 'look-up-device' };
  }
  if (i.device.kind === 'found' && i.device.device.state !== 'deprovisioning') {
    return { do: 'delete-device', deviceId: i.device.device.id };
  }
  return { do: 'remove-finalizer' };
}

// ---------------------------------------------------------------------------------------------------

export type ClusterStep =
  | { do: 'wait'; why: string; conditions?: ConditionUpdate[] }
  | { do: 'add-finalizer' }
  | { do: 'look-up-elastic-ip' }
  | { do: 'reserve-elastic-ip'; metro?: string; facility?: string; tags: string[] }
  | { do: 'set-endpoint'; host: string; port: number; reservationId: string }
  | { do: 'write-ready'; conditions: ConditionUpdate[]; event?: { reason: string; message: string } }
  | { do: 'release-elastic-ip'; reservationId: string }
  | { do: 'remove-finalizer' }
  | { do: 'done'; why: string };

export interface ClusterInput {
  packetCluster: PacketCluster;
  cluster?: CapiCluster;
  /** undefined: not looked up; null: none tagged for the cluster. */
  reservation?: IPReservation | null;
}

/** The next step for a PacketCluster. */
export function planCluster(i: ClusterInput): ClusterStep {
  const pcl = i.packetCluster;
  const hasFinalizer = pcl.metadata.finalizers?.includes(PACKET_CLUSTER_FINALIZER) === true;
  const deleting = pcl.metadata.deletionTimestamp !== undefined;
  if (deleting) {
    if (!hasFinalizer) return { do: 'done', why: 'deleted' };
    if (pcl.spec.eipReclaimPolicy === 'Delete') {
      const id = pcl.status?.eipReservationID;
      if (i.reservation === undefined && !id) return { do: 'look-up-elastic-ip' };
      const target = id ?? i.reservation?.id;
      if (target && i.reservation !== null) return { do: 'release-elastic-ip', reservationId: target };
    }
    return { do: 'remove-finalizer' };
  }
  if (!i.cluster) return { do: 'wait', why: 'no owner Cluster yet' };
  if (isPaused(i.cluster, pcl)) {
    return {
      do: 'wait',
      why: 'paused',
      conditions: [
        { type: PAUSED, status: 'True', reason: REASON.paused, message: 'reconciliation is paused' },
      ],
    };
  }
  if (!hasFinalizer) return { do: 'add-finalizer' };
  const endpoint = pcl.spec.controlPlaneEndpoint;
  if (!endpoint?.host) {
    if (i.reservation === undefined) return { do: 'look-up-elastic-ip' };
    if (i.reservation === null) {
      return {
        do: 'reserve-elastic-ip',
        ...(pcl.spec.metro ? { metro: pcl.spec.metro } : { facility: pcl.spec.facility }),
        tags: [eipTag(i.cluster.metadata.name)],
      };
    }
    // A reservation still pending review has no address yet.
    if (!i.reservation.address)
      return { do: 'wait', why: `reservation ${i.reservation.id} has no address yet` };
    return {
      do: 'set-endpoint',
      host: i.reservation.address,
      port: API_SERVER_PORT,
      reservationId: i.reservation.id,
    };
  }
  if (pcl.status?.ready === true && pcl.status.initialization?.provisioned === true)
    return { do: 'done', why: 'ready' };
  return {
    do: 'write-ready',
    conditions: [
      { type: PAUSED, status: 'False', reason: REASON.notPaused, message: '' },
      { type: NETWORK_READY, status: 'True', reason: REASON.ready, message: '' },
      { type: READY, status: 'True', reason: REASON.ready, message: '' },
    ],
    event: { reason: 'EndpointReady', message: `control-plane endpoint ${endpoint.host}:${endpoint.port}` },
  };
}
