/**
 * A workload cluster's Cluster API objects for tests and benches of the Packet provider: a Cluster
 * (CAPI v1beta2) with its PacketCluster, control-plane Machines with their PacketMachines, and a
 * MachineDeployment of workers from a PacketMachineTemplate. Every Machine names one ready-made
 * bootstrap data Secret (`<name>-bootstrap`), so no bootstrap provider is needed and no device ever
 * runs anything; a test that wants a bootstrap provider swaps the `bootstrap` of the Machines.
 * Nothing here has a kubeconfig of the workload cluster, so CAPI core never dials its endpoint.
 * And the command that runs capi-packet-manager's bundle against a test bed and a fake Metal API.
 */
import { appBundle } from './bundle';

/** A Kubernetes object as JSON, free to change in a test before it is applied. */
export type KubeJson = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const INFRA = 'infrastructure.cluster.x-k8s.io';
const CAPI = 'cluster.x-k8s.io/v1beta2';

export interface CapiClusterObjectsOptions {
  namespace: string;
  /** The Cluster's name; Machines are `<name>-cp-<i>`, the MachineDeployment `<name>-worker`. */
  name: string;
  /** The PacketCluster's `projectID`. */
  projectId: string;
  /** Control-plane Machines (default 1). */
  controlPlanes?: number;
  /** Replicas of the worker MachineDeployment. */
  workers: number;
  /** More fields of the PacketCluster's spec (metro `da` is set), e.g. `{ vipManager: 'CPEM' }`. */
  packetCluster?: KubeJson;
  /** Pause the Cluster (`spec.paused`). */
  paused?: boolean;
}

/** The objects of one cluster, in the order they can be applied. */
export function capiClusterObjects(o: CapiClusterObjectsOptions): KubeJson[] {
  const { namespace, name } = o;
  const labels = { 'cluster.x-k8s.io/cluster-name': name };
  const ref = (kind: string, n: string) => ({ apiGroup: INFRA, kind, name: n });
  const machineSpec = (infra: KubeJson) => ({
    clusterName: name,
    version: 'v1.34.4',
    bootstrap: { dataSecretName: `${name}-bootstrap` },
    infrastructureRef: infra,
  });
  const pmSpec = { os: 'ubuntu_24_04', machineType: 'c3.small.x86', billingCycle: 'hourly' };
  const controlPlanes = Array.from({ length: o.controlPlanes ?? 1 }, (_, i) => `${name}-cp-${i}`);
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-bootstrap`, namespace, labels },
      stringData: { value: `#cloud-config\nhostname: ${name}\n`, format: 'cloud-config' },
    },
    {
      apiVersion: CAPI,
      kind: 'Cluster',
      metadata: { name, namespace },
      spec: {
        ...(o.paused ? { paused: true } : {}),
        clusterNetwork: {
          pods: { cidrBlocks: ['192.168.0.0/16'] },
          services: { cidrBlocks: ['172.26.0.0/16'] },
        },
        infrastructureRef: ref('PacketCluster', name),
      },
    },
    {
      apiVersion: `${INFRA}/v1beta1`,
      kind: 'PacketCluster',
      metadata: { name, namespace },
      spec: { projectID: o.projectId, metro: 'da', ...o.packetCluster },
    },
    ...controlPlanes.flatMap((machine) => [
      {
        apiVersion: CAPI,
        kind: 'Machine',
        metadata: {
          name: machine,
          namespace,
          labels: { ...labels, 'cluster.x-k8s.io/control-plane': '' },
        },
        spec: machineSpec(ref('PacketMachine', machine)),
      },
      {
        apiVersion: `${INFRA}/v1beta1`,
        kind: 'PacketMachine',
        metadata: { name: machine, namespace },
        spec: pmSpec,
      },
    ]),
    {
      apiVersion: `${INFRA}/v1beta1`,
      kind: 'PacketMachineTemplate',
      metadata: { name: `${name}-worker`, namespace },
      spec: { template: { spec: pmSpec } },
    },
    {
      apiVersion: CAPI,
      kind: 'MachineDeployment',
      metadata: { name: `${name}-worker`, namespace },
      spec: {
        clusterName: name,
        replicas: o.workers,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: machineSpec(ref('PacketMachineTemplate', `${name}-worker`)),
        },
      },
    },
  ];
}

export interface CapiPacketManagerCommandOptions {
  kubeconfig: string;
  /** `--namespace`: the one namespace it watches. */
  namespace: string;
  /** The Metal API it calls (`METAL_API_URL`) with `token` (`PACKET_API_KEY`). */
  metalApiUrl: string;
  token: string;
  /** `/healthz`, `/readyz` and `/metrics` on 127.0.0.1 at this port. */
  metricsPort: number;
  /** More flags of the manager (a later flag wins), e.g. `--device-poll-interval=1s`. */
  flags?: readonly string[];
  /** Flags of node before the bundle, e.g. `--inspect=127.0.0.1:<port>`. */
  nodeFlags?: readonly string[];
}

/** How to run capi-packet-manager's bundle (for `ManagedProcess.start(name, cmd, args, log, env)`). */
export async function capiPacketManagerCommand(
  o: CapiPacketManagerCommandOptions,
): Promise<{ cmd: string; args: string[]; env: NodeJS.ProcessEnv }> {
  return {
    cmd: process.execPath,
    args: [
      ...(o.nodeFlags ?? []),
      await appBundle('capi-packet-manager'),
      `--kubeconfig=${o.kubeconfig}`,
      `--namespace=${o.namespace}`,
      '--metrics-host=127.0.0.1',
      `--metrics-port=${o.metricsPort}`,
      ...(o.flags ?? []),
    ],
    env: { ...process.env, PACKET_API_KEY: o.token, METAL_API_URL: o.metalApiUrl },
  };
}
