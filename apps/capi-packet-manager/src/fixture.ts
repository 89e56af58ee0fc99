/**
 * Objects for the specs: a Cluster `c1` in namespace `ns` with its PacketCluster, control-plane and
 * worker Machines with their PacketMachines, as CAPI core creates them (owner references, the
 * cluster-name label, the bootstrap data secret). Not exported from the app.
 */
import {
  CLUSTER_NAME_LABEL,
  CONTROL_PLANE_LABEL,
  INFRA_API_VERSION,
  PACKET_CLUSTER_FINALIZER,
  PACKET_MACHINE_FINALIZER,
  type CapiCluster,
  type CapiMachine,
  type PacketCluster,
  type PacketMachine,
} from '@knet/capi';

export const NS = 'ns';
export const CLUSTER = 'c1';
export const PROJECT = '11111111-2222-4333-8444-555555555555';
export const EIP = '203.0.113.10';

export function cluster(over: { provisioned?: boolean; paused?: boolean } = {}): CapiCluster {
  return {
    apiVersion: 'cluster.x-k8s.io/v1beta2',
    kind: 'Cluster',
    metadata: { name: CLUSTER, namespace: NS, uid: 'uid-cluster' },
    spec: {
      paused: over.paused,
      infrastructureRef: {
        apiGroup: 'infrastructure.cluster.x-k8s.io',
        kind: 'PacketCluster',
        name: CLUSTER,
      },
      clusterNetwork: {
        pods: { cidrBlocks: ['192.168.0.0/16'] },
        services: { cidrBlocks: ['172.26.0.0/16'] },
      },
    },
    status: { initialization: { infrastructureProvisioned: over.provisioned ?? true } },
  };
}

export function packetCluster(
  over: { endpoint?: boolean; ready?: boolean; finalizer?: boolean } = {},
): PacketCluster {
  return {
    apiVersion: INFRA_API_VERSION,
    kind: 'PacketCluster',
    metadata: {
      name: CLUSTER,
      namespace: NS,
      labels: { [CLUSTER_NAME_LABEL]: CLUSTER },
      ownerReferences: [
        { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Cluster', name: CLUSTER, uid: 'uid-cluster' },
      ],
      finalizers: over.finalizer === false ? undefined : [PACKET_CLUSTER_FINALIZER],
    },
    spec: {
      projectID: PROJECT,
      metro: 'da',
      ...(over.endpoint === false ? {} : { controlPlaneEndpoint: { host: EIP, port: 6443 } }),
    },
    status: over.ready ? { ready: true, initialization: { provisioned: true } } : undefined,
  };
}

export function machine(
  name: string,
  over: { controlPlane?: boolean; dataSecret?: boolean } = {},
): CapiMachine {
  return {
    apiVersion: 'cluster.x-k8s.io/v1beta2',
    kind: 'Machine',
    metadata: {
      name,
      namespace: NS,
      uid: `uid-${name}`,
      labels: { [CLUSTER_NAME_LABEL]: CLUSTER, ...(over.controlPlane ? { [CONTROL_PLANE_LABEL]: '' } : {}) },
    },
    spec: {
      clusterName: CLUSTER,
      version: 'v1.34.4',
      bootstrap: over.dataSecret === false ? {} : { dataSecretName: `${name}-bootstrap` },
      infrastructureRef: { apiGroup: 'infrastructure.cluster.x-k8s.io', kind: 'PacketMachine', name },
    },
  };
}

export function packetMachine(
  name: string,
  over: {
    finalizer?: boolean;
    providerID?: string;
    intent?: boolean;
    ready?: boolean;
    sshKeys?: string[];
  } = {},
): PacketMachine {
  return {
    apiVersion: INFRA_API_VERSION,
    kind: 'PacketMachine',
    metadata: {
      name,
      namespace: NS,
      labels: { [CLUSTER_NAME_LABEL]: CLUSTER },
      ownerReferences: [
        { apiVersion: 'cluster.x-k8s.io/v1beta2', kind: 'Machine', name, uid: `uid-${name}` },
      ],
      finalizers: over.finalizer === false ? undefined : [PACKET_MACHINE_FINALIZER],
      annotations: over.intent
        ? { 'capi-packet.knet.dev/device-create-requested': '2026-12-06T10:00:00Z' }
        : undefined,
    },
    spec: {
      os: 'ubuntu_24_04',
      machineType: 'c3.small.x86',
      billingCycle: 'hourly',
      ...(over.sshKeys ? { sshKeys: over.sshKeys } : {}),
      ...(over.providerID ? { providerID: over.providerID } : {}),
    },
    status: over.ready ? { ready: true, initialization: { provisioned: true } } : undefined,
  };
}
