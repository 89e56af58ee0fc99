import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { dumpYaml } from '@kubernetes/client-node';
import { BootstrapError } from './errors';
import { checkNodeName, PKI_DIR, requiredControlPlaneFiles, type BootstrapFile } from './control-plane-files';
import {
  parseKubernetesVersion,
  renderKubeadmConfig,
  type KubernetesVersion,
  type NodeRole,
} from './kubeadm-config';
import { checkCidrs, checkEndpoint, type Endpoint } from './network';
import { caCertHash as hashOf, checkClusterName } from './pki';
import { parseBootstrapToken } from './token';
import {
  bootstrapScript,
  BOOTSTRAP_SCRIPT_PATH,
  ENDPOINT_UNIT_PATH,
  endpointUnit,
  KUBEADM_CONFIG_PATH,
} from './node-script';

/** A login cloud-init creates (cloud-config `users`). */
export interface UserDataUser {
  name: string;
  sshAuthorizedKeys?: string[];
  /** sudoers rule, e.g. `ALL=(ALL) NOPASSWD:ALL`. */
  sudo?: string;
  groups?: string[];
  shell?: string;
}

export interface UserDataExtra {
  /** Shell commands run before the node is set up (own mirrors, proxies…). */
  preKubeadmCommands?: string[];
  /** Shell commands run after kubeadm (CNI, cloud provider…). */
  postKubeadmCommands?: string[];
  /** Keys for the image's default user. */
  sshAuthorizedKeys?: string[];
  users?: UserDataUser[];
}

export interface UserDataInput {
  role: NodeRole;
  clusterName: string;
  /** The Machine's name: node name and hostname. */
  machineName: string;
  /** `v1.34.4`; kubelet, kubeadm and kubectl are installed at exactly this version. */
  kubernetesVersion: string;
  controlPlaneEndpoint: Endpoint;
  podCIDR?: string;
  serviceCIDR: string;
  dnsDomain: string;
  token: string;
  /** init: how long the bootstrap token `kubeadm init` creates lives (default 24 h, kubeadm's). */
  tokenTtlMs?: number;
  caCertPem: string;
  caCertHash: string;
  /** Control planes: what controlPlaneFiles issued for this machine. Workers: none. */
  files?: BootstrapFile[];
  /** The machine's addresses if known in advance (the first is the advertise address). */
  nodeAddresses?: string[];
  /** `external` when a cloud controller manager (CPEM) initialises nodes; '' or absent: none (PacketKubeadmConfig's values). */
  cloudProvider?: '' | 'external';
  kubeletExtraArgs?: Record<string, string>;
  /** Which metadata address the kubelet's --node-ip takes (default: the kubelet's own choice). */
  nodeIp?: 'private-ipv4' | 'public-ipv4';
  /**
   * Bind the endpoint's IP on `lo` of control planes (an Equinix Metal EIP must be configured on
   * the host; CAPEM's CPEM flavour does the same). Default: when the endpoint host is an IP.
   */
  endpointOnLoopback?: boolean;
  extra?: UserDataExtra;
}

/** Paths under the PKI dir that hold a CA's private key: never written by this bootstrap. */
const CA_KEY_PATHS = new Set([
  `${PKI_DIR}/ca.key`,
  `${PKI_DIR}/front-proxy-ca.key`,
  `${PKI_DIR}/etcd/ca.key`,
]);
/**
 * The machine's bootstrap data: `#cloud-config` with the machine's files (keys 0600, root-owned),
 * the kubeadm config, and one bootstrap script run from `runcmd` between the pre and post commands
 * (kernel settings, swap off, containerd and kubelet/kubeadm/kubectl at exactly the version from
 * pkgs.k8s.io, the Equinix Metal provider ID, then `kubeadm init` or `kubeadm join` with the CA
 * pinned). Pure: the same input renders the same bytes. Refuses input that would put a CA private
 * key on the machine.
 */
export function renderUserData(input: UserDataInput): string {
  const version = checkInput(input);
  const files = input.files ?? [];
  const controlPlane = input.role !== 'join-worker';
  const endpointOnLo =
    controlPlane && (input.endpointOnLoopback ?? isIP(input.controlPlaneEndpoint.host) !== 0);
  const kubeadmConfig = renderKubeadmConfig({
    role: input.role,
    clusterName: input.clusterName,
    kubernetesVersion: version,
    controlPlaneEndpoint: input.controlPlaneEndpoint,
    podCIDR: input.podCIDR,
    serviceCIDR: input.serviceCIDR,
    dnsDomain: input.dnsDomain,
    nodeName: input.machineName,
    token: input.token,
    tokenTtlMs: input.tokenTtlMs,
    caCertHash: input.caCertHash,
    advertiseAddress: controlPlane ? input.nodeAddresses?.[0] : undefined,
    cloudProvider: input.cloudProvider,
    kubeletExtraArgs: input.kubeletExtraArgs,
  });
  const writeFiles = [
    ...files.map((f) => writeFile(f.path, f.content, f.permissions)),
    writeFile(KUBEADM_CONFIG_PATH, kubeadmConfig, '0600'),
    writeFile(
      BOOTSTRAP_SCRIPT_PATH,
      bootstrapScript({
        role: input.role,
        version,
        nodeIp: input.nodeIp,
        endpointIp: endpointOnLo ? input.controlPlaneEndpoint.host : undefined,
      }),
      '0700',
    ),
    ...(endpointOnLo
      ? [writeFile(ENDPOINT_UNIT_PATH, endpointUnit(input.controlPlaneEndpoint.host), '0644')]
      : []),
  ];
  const extra = input.extra ?? {};
  const config: Record<string, unknown> = {
    ...(extra.users?.length ? { users: ['default', ...extra.users.map(cloudInitUser)] } : {}),
    ...(extra.sshAuthorizedKeys?.length ? { ssh_authorized_keys: extra.sshAuthorizedKeys } : {}),
    write_files: writeFiles,
    runcmd: [
      ...(extra.preKubeadmCommands ?? []),
      ['bash', BOOTSTRAP_SCRIPT_PATH],
      ...(extra.postKubeadmCommands ?? []),
    ],
  };
  return `#cloud-config\n${dumpYaml(config, { lineWidth: -1, noRefs: true })}`;
}

function checkInput(input: UserDataInput): KubernetesVersion {
  checkClusterName(input.clusterName);
  checkNodeName(input.machineName);
  const version = parseKubernetesVersion(input.kubernetesVersion);
  checkEndpoint(input.controlPlaneEndpoint, 'controlPlaneEndpoint');
  checkCidrs(input.serviceCIDR, 'serviceCIDR');
  if (input.podCIDR) checkCidrs(input.podCIDR, 'podCIDR');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(input.dnsDomain))
    throw new BootstrapError(
      'invalid-input',
      `dnsDomain ${JSON.stringify(input.dnsDomain)} is not a DNS domain like cluster.local`,
    );
  parseBootstrapToken(input.token);
  if (input.tokenTtlMs !== undefined && !(Number.isFinite(input.tokenTtlMs) && input.tokenTtlMs >= 1000))
    throw new BootstrapError(
      'invalid-input',
      `tokenTtlMs ${input.tokenTtlMs} must be at least 1000 (a zero TTL would never expire)`,
    );
  if (!/^sha256:[0-9a-f]{64}$/.test(input.caCertHash))
    throw new BootstrapError(
      'invalid-input',
      `caCertHash ${JSON.stringify(input.caCertHash)} is not sha256:<64 hex>; compute it with caCertHash(caPem)`,
    );
  if (hashOf(input.caCertPem) !== input.caCertHash)
    throw new BootstrapError(
      'invalid-input',
      'caCertHash does not pin caCertPem: joins would refuse the cluster; compute it with caCertHash(caPem)',
    );
  for (const a of input.nodeAddresses ?? [])
    if (!isIP(a))
      throw new BootstrapError('invalid-input', `nodeAddresses: ${JSON.stringify(a)} is not an IP address`);
  checkFiles(input);
  return version;
}

/** Control planes get exactly the external-CA file set; workers none; a CA private key never. */
function checkFiles(input: UserDataInput): void {
  const files = input.files ?? [];
  const paths = new Set(files.map((f) => f.path));
  if (input.role === 'join-worker') {
    if (files.length)
      throw new BootstrapError(
        'invalid-input',
        `a worker gets no files (it fetches the CA through discovery, pinned by caCertHash); got ${files.map((f) => f.path).join(', ')}`,
      );
    return;
  }
  const missing = requiredControlPlaneFiles(input.role).filter((p) => !paths.has(p));
  if (missing.length)
    throw new BootstrapError(
      'invalid-input',
      `${input.role} bootstrap lacks ${missing.join(', ')}; render the files with controlPlaneFiles()`,
    );
  const ca = files.find((f) => f.path === `${PKI_DIR}/ca.crt`);
  if (ca && ca.content.trim() !== input.caCertPem.trim())
    throw new BootstrapError(
      'invalid-input',
      `${PKI_DIR}/ca.crt is not caCertPem; the files belong to another cluster`,
    );
  const caKeys = new Set(
    files
      .filter((f) =>
        ['ca.crt', 'front-proxy-ca.crt', 'etcd/ca.crt'].some((n) => f.path === `${PKI_DIR}/${n}`),
      )
      .map((f) => spkiOfCert(f.content)),
  );
  for (const f of files) {
    if (CA_KEY_PATHS.has(f.path))
      throw new BootstrapError(
        'invalid-input',
        `refusing to write ${f.path}: CA private keys stay in the management cluster`,
      );
    if (privateKeysIn(f.content).some((k) => caKeys.has(spkiOfKey(k))))
      throw new BootstrapError(
        'invalid-input',
        `refusing to write ${f.path}: it holds a CA's private key, which stays in the management cluster`,
      );
    if (!f.path.startsWith('/') || f.path.includes('..'))
      throw new BootstrapError(
        'invalid-input',
        `file path ${JSON.stringify(f.path)} must be absolute without '..'`,
      );
  }
}

function spkiOfCert(pem: string): string {
  return new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
}

function spkiOfKey(pem: string): string {
  try {
    return createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    return '';
  }
}

/** The PEM private keys a file holds: as PEM, or base64 in a kubeconfig's client-key-data. */
function privateKeysIn(content: string): string[] {
  const pems =
    content.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[^-]+-----END [A-Z ]*PRIVATE KEY-----/g) ?? [];
  const embedded = [...content.matchAll(/client-key-data: "?([A-Za-z0-9+/=]+)"?/g)].map((m) =>
    Buffer.from(m[1] ?? '', 'base64').toString('utf8'),
  );
  return [...pems, ...embedded];
}

function writeFile(path: string, content: string, permissions: string): Record<string, string> {
  return { path, owner: 'root:root', permissions, content };
}

function cloudInitUser(user: UserDataUser): Record<string, unknown> {
  return {
    name: user.name,
    lock_passwd: true,
    ...(user.sshAuthorizedKeys?.length ? { ssh_authorized_keys: user.sshAuthorizedKeys } : {}),
    ...(user.sudo ? { sudo: user.sudo } : {}),
    ...(user.groups?.length ? { groups: user.groups } : {}),
    ...(user.shell ? { shell: user.shell } : {}),
  };
}
