import { dumpYaml } from '@kubernetes/client-node';
import { BootstrapError } from './errors';
import {
  CLIENT_CA_BUNDLE,
  KUBELET_SIGNER_CERT,
  KUBELET_SIGNER_KEY,
  LOCAL_API_PORT,
  PKI_DIR,
} from './control-plane-files';
import { hostPort, type Endpoint } from './network';
import { BOOTSTRAP_TOKEN_GROUP } from './token';

/** What a machine does: the first control plane (`kubeadm init`), another control plane, or a worker. */
export type NodeRole = 'init' | 'join-control-plane' | 'join-worker';

/** The kubeadm config API this renders: v1beta4, Kubernetes 1.31 and later. */
export const KUBEADM_API_VERSION = 'kubeadm.k8s.io/v1beta4';
/** Supported Kubernetes minors: v1beta4 exists from 1.31; validated with kubeadm 1.34. */
export const MIN_KUBERNETES_MINOR = 31;
export const MAX_KUBERNETES_MINOR = 34;
export const CRI_SOCKET = 'unix:///var/run/containerd/containerd.sock';

/** A Kubernetes release: `v1.34.4` (a leading `v` is optional on input). */
export interface KubernetesVersion {
  /** `v1.34.4` */
  tag: string;
  /** `1.34.4` (the pkgs.k8s.io package version prefix) */
  semver: string;
  /** `v1.34` (the pkgs.k8s.io repository) */
  minorTag: string;
  minor: number;
}

/** Parses a release version; throws BootstrapError `unsupported-version` outside 1.31–1.34. */
export function parseKubernetesVersion(version: string): KubernetesVersion {
  const m = /^v?1\.(\d+)\.(\d+)$/.exec(version);
  if (!m)
    throw new BootstrapError(
      'invalid-input',
      `Kubernetes version ${JSON.stringify(version)} is not a release like v1.34.4 (pre-releases have no packages)`,
    );
  const minor = Number(m[1]);
  if (minor < MIN_KUBERNETES_MINOR || minor > MAX_KUBERNETES_MINOR)
    throw new BootstrapError(
      'unsupported-version',
      `Kubernetes ${version} is not supported: the bootstrap renders kubeadm v1beta4 for 1.${MIN_KUBERNETES_MINOR}–1.${MAX_KUBERNETES_MINOR}; pick a version in that range`,
    );
  return { tag: `v1.${minor}.${m[2]}`, semver: `1.${minor}.${m[2]}`, minorTag: `v1.${minor}`, minor };
}

export interface KubeadmConfigInput {
  role: NodeRole;
  clusterName: string;
  kubernetesVersion: KubernetesVersion;
  controlPlaneEndpoint: Endpoint;
  podCIDR?: string;
  serviceCIDR: string;
  dnsDomain: string;
  /** Node name (the Machine's name). */
  nodeName: string;
  token: string;
  /** init: how long the token `kubeadm init` creates lives, from then on (kubeadm's default: 24 h). */
  tokenTtlMs?: number;
  caCertHash: string;
  /** Control planes: the address the API server and etcd advertise (else kubeadm picks the default route's). */
  advertiseAddress?: string;
  cloudProvider?: '' | 'external';
  kubeletExtraArgs?: Record<string, string>;
}

type Arg = { name: string; value: string };

/**
 * The kubeadm configuration for one machine, as YAML documents: InitConfiguration +
 * ClusterConfiguration for `init`, a JoinConfiguration (with `controlPlane` for control planes)
 * otherwise. Joins pin the cluster CA (`caCertHashes`); nothing here holds a CA key.
 */
export function renderKubeadmConfig(input: KubeadmConfigInput): string {
  const kubeletArgs: Arg[] = args({
    ...(input.cloudProvider ? { 'cloud-provider': input.cloudProvider } : {}),
    ...input.kubeletExtraArgs,
  });
  const nodeRegistration = {
    name: input.nodeName,
    criSocket: CRI_SOCKET,
    ...(kubeletArgs.length ? { kubeletExtraArgs: kubeletArgs } : {}),
  };
  const localAPIEndpoint = {
    ...(input.advertiseAddress ? { advertiseAddress: input.advertiseAddress } : {}),
    bindPort: LOCAL_API_PORT,
  };
  const docs: object[] = [];
  if (input.role === 'init') {
    docs.push({
      apiVersion: KUBEADM_API_VERSION,
      kind: 'InitConfiguration',
      bootstrapTokens: [
        {
          token: input.token,
          description: 'created by kubeadm init from the Cluster API bootstrap data',
          // kubeadm defaults ttl and refuses it together with expires, so the lifetime is relative.
          ...(input.tokenTtlMs !== undefined ? { ttl: `${Math.ceil(input.tokenTtlMs / 1000)}s` } : {}),
          usages: ['signing', 'authentication'],
          groups: [BOOTSTRAP_TOKEN_GROUP],
        },
      ],
      nodeRegistration,
      localAPIEndpoint,
    });
    docs.push({
      apiVersion: KUBEADM_API_VERSION,
      kind: 'ClusterConfiguration',
      clusterName: input.clusterName,
      kubernetesVersion: input.kubernetesVersion.tag,
      controlPlaneEndpoint: hostPort(input.controlPlaneEndpoint),
      certificatesDir: PKI_DIR,
      networking: {
        serviceSubnet: input.serviceCIDR,
        dnsDomain: input.dnsDomain,
        ...(input.podCIDR ? { podSubnet: input.podCIDR } : {}),
      },
      apiServer: {
        // The kubelet signer's client certificates must authenticate: trust it next to the cluster CA.
        extraArgs: args({ 'client-ca-file': CLIENT_CA_BUNDLE }),
      },
      controllerManager: {
        // External CA mode leaves --cluster-signing-{cert,key}-file empty; sign kubelet client CSRs
        // (TLS bootstrap and rotation) with the kubelet signer instead of the cluster CA key.
        extraArgs: args({
          'cluster-signing-kubelet-client-cert-file': KUBELET_SIGNER_CERT,
          'cluster-signing-kubelet-client-key-file': KUBELET_SIGNER_KEY,
          ...(input.cloudProvider ? { 'cloud-provider': input.cloudProvider } : {}),
        }),
      },
    });
  } else {
    docs.push({
      apiVersion: KUBEADM_API_VERSION,
      kind: 'JoinConfiguration',
      discovery: {
        bootstrapToken: {
          apiServerEndpoint: hostPort(input.controlPlaneEndpoint),
          token: input.token,
          caCertHashes: [input.caCertHash],
        },
      },
      nodeRegistration,
      ...(input.role === 'join-control-plane' ? { controlPlane: { localAPIEndpoint } } : {}),
    });
  }
  return docs.map((d) => `---\n${dumpYaml(d, { lineWidth: -1, noRefs: true })}`).join('');
}

function args(values: Record<string, string>): Arg[] {
  return Object.entries(values).map(([name, value]) => ({ name, value }));
}
