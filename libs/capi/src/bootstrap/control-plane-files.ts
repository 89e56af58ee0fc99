import { isIP } from 'node:net';
import {
  issueCertificate,
  renderKubeconfig,
  type CertificateAuthority,
  type CertificateRequest,
} from '@knet/crypto';
import { BootstrapError } from './errors';
import { apiServerServiceIp, checkCidrs, checkEndpoint, endpointUrl, type Endpoint } from './network';
import {
  CLUSTER_SECRET_TYPE,
  checkClusterName,
  clusterSecretName,
  loadCa,
  type ClusterPki,
  type KeyPairPem,
} from './pki';

/** A file cloud-init writes on the machine (owner root:root). Keys and kubeconfigs are 0600. */
export interface BootstrapFile {
  path: string;
  content: string;
  permissions: '0600' | '0644';
}

/** kubeadm's fixed locations (`kubeadmconstants`). */
export const KUBERNETES_DIR = '/etc/kubernetes';
export const PKI_DIR = `${KUBERNETES_DIR}/pki`;
/** The API server's client CA bundle: the cluster CA plus the kubelet client signer. */
export const CLIENT_CA_BUNDLE = `${PKI_DIR}/client-ca-bundle.crt`;
export const KUBELET_SIGNER_CERT = `${PKI_DIR}/kubelet-signer.crt`;
export const KUBELET_SIGNER_KEY = `${PKI_DIR}/kubelet-signer.key`;
/** The port kube-apiserver binds on every control plane (kubeadm's `localAPIEndpoint.bindPort`). */
export const LOCAL_API_PORT = 6443;

/** Leaf validity: one year, like kubeadm; control planes must be replaced within it (no CA key on the node to renew). */
export const LEAF_VALIDITY_DAYS = 365;
/** admin.conf and super-admin.conf on the node only serve `kubeadm init`/`join` and the post commands. */
export const DEFAULT_NODE_ADMIN_VALIDITY_HOURS = 24;

/** kubeadm's groups (`kubeadmconstants`): admin.conf's group is bound to cluster-admin by `kubeadm init`. */
const CLUSTER_ADMINS_GROUP = 'kubeadm:cluster-admins';
const SYSTEM_MASTERS = 'system:masters';
const NODES_GROUP = 'system:nodes';

/** What kubeadm's external CA mode needs on every control plane. */
const CONTROL_PLANE_FILES = [
  'pki/ca.crt',
  'pki/apiserver.crt',
  'pki/apiserver.key',
  'pki/apiserver-kubelet-client.crt',
  'pki/apiserver-kubelet-client.key',
  'pki/front-proxy-ca.crt',
  'pki/front-proxy-client.crt',
  'pki/front-proxy-client.key',
  'pki/etcd/ca.crt',
  'pki/etcd/server.crt',
  'pki/etcd/server.key',
  'pki/etcd/peer.crt',
  'pki/etcd/peer.key',
  'pki/etcd/healthcheck-client.crt',
  'pki/etcd/healthcheck-client.key',
  'pki/apiserver-etcd-client.crt',
  'pki/apiserver-etcd-client.key',
  'pki/sa.key',
  'pki/sa.pub',
  'pki/client-ca-bundle.crt',
  'pki/kubelet-signer.crt',
  'pki/kubelet-signer.key',
  'admin.conf',
  'controller-manager.conf',
  'scheduler.conf',
].map((f) => `${KUBERNETES_DIR}/${f}`);
/** The first control plane also needs these: kubeadm init uses super-admin.conf, and its kubelet cannot TLS-bootstrap. */
const INIT_ONLY_FILES = ['super-admin.conf', 'kubelet.conf'].map((f) => `${KUBERNETES_DIR}/${f}`);

/** The paths controlPlaneFiles writes for `role`: kubeadm refuses external CA mode without any of them. */
export function requiredControlPlaneFiles(role: 'init' | 'join-control-plane' | 'join-worker'): string[] {
  if (role === 'join-worker') return [];
  return role === 'init' ? [...CONTROL_PLANE_FILES, ...INIT_ONLY_FILES] : CONTROL_PLANE_FILES;
}

export interface ControlPlaneFilesInput {
  role: 'init' | 'join-control-plane';
  clusterName: string;
  /** The Machine's name: node name, hostname, and CN of its etcd and kubelet certificates. */
  machineName: string;
  controlPlaneEndpoint: Endpoint;
  serviceCIDR: string;
  dnsDomain: string;
  /**
   * The machine's IP addresses when known before it exists (e.g. assigned from a reservation).
   * They go into the API server and etcd certificates and the first one becomes the advertise
   * address. Required for join-control-plane (etcd peers dial each other by IP); without them the
   * first control plane works alone and the cluster cannot grow to more control planes.
   */
  nodeAddresses?: string[];
  /** Extra API server SANs (DNS names or IPs). */
  extraSANs?: string[];
  /** Validity of admin.conf/super-admin.conf on the node (default 24 h). */
  nodeAdminValidityHours?: number;
}

/**
 * Everything a control-plane node needs for kubeadm's external CA mode, issued by the provider:
 * no private key of the cluster, etcd or front-proxy CA is among them. kubeadm then skips every
 * certificate and kubeconfig it would have signed, and the controller-manager signs kubelet client
 * certificates with the kubelet signer (its own CA, trusted by the API server's client CA bundle).
 */
export async function controlPlaneFiles(
  pki: ClusterPki,
  input: ControlPlaneFilesInput,
): Promise<BootstrapFile[]> {
  checkClusterName(input.clusterName);
  checkEndpoint(input.controlPlaneEndpoint, 'controlPlaneEndpoint');
  checkCidrs(input.serviceCIDR, 'serviceCIDR');
  checkNodeName(input.machineName);
  const addresses = input.nodeAddresses ?? [];
  for (const a of addresses)
    if (!isIP(a))
      throw new BootstrapError('invalid-input', `nodeAddresses: ${JSON.stringify(a)} is not an IP address`);
  if (input.role === 'join-control-plane' && addresses.length === 0)
    throw new BootstrapError(
      'node-addresses-required',
      `machine ${input.machineName}: a joining control plane needs its IP addresses for its etcd peer and API server certificates; assign them before rendering (e.g. from an IP reservation) or run a single control plane`,
    );
  const [ca, etcdCa, proxyCa, signer] = await Promise.all([
    loadCa(input.clusterName, 'ca', pki.ca),
    loadCa(input.clusterName, 'etcd', pki.etcd),
    loadCa(input.clusterName, 'proxy', pki.proxy),
    loadCa(input.clusterName, 'kubelet-signer', pki.kubeletSigner),
  ]);

  const endpointIsIp = isIP(input.controlPlaneEndpoint.host) !== 0;
  const extraSans = input.extraSANs ?? [];
  const apiServerDns = unique([
    input.machineName,
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    `kubernetes.default.svc.${input.dnsDomain}`,
    'localhost',
    ...(endpointIsIp ? [] : [input.controlPlaneEndpoint.host]),
    ...extraSans.filter((s) => !isIP(s)),
  ]);
  const apiServerIps = unique([
    apiServerServiceIp(input.serviceCIDR),
    '127.0.0.1',
    '::1',
    ...(endpointIsIp ? [input.controlPlaneEndpoint.host] : []),
    ...addresses,
    ...extraSans.filter((s) => isIP(s)),
  ]);
  const etcdSans = {
    dnsNames: [input.machineName, 'localhost'],
    ipAddresses: unique(['127.0.0.1', '::1', ...addresses]),
  };
  const leaf = (authority: CertificateAuthority, req: CertificateRequest) =>
    issueCertificate(authority, { validityDays: LEAF_VALIDITY_DAYS, ...req });

  const [apiserver, kubeletClient, proxyClient, etcdServer, etcdPeer, etcdHealth, etcdClient] =
    await Promise.all([
      leaf(ca, {
        commonName: 'kube-apiserver',
        dnsNames: apiServerDns,
        ipAddresses: apiServerIps,
        usage: 'server',
      }),
      leaf(ca, {
        commonName: 'kube-apiserver-kubelet-client',
        organizations: [CLUSTER_ADMINS_GROUP],
        usage: 'client',
      }),
      leaf(proxyCa, { commonName: 'front-proxy-client', usage: 'client' }),
      leaf(etcdCa, { commonName: input.machineName, ...etcdSans, usage: 'server-and-client' }),
      leaf(etcdCa, { commonName: input.machineName, ...etcdSans, usage: 'server-and-client' }),
      leaf(etcdCa, { commonName: 'kube-etcd-healthcheck-client', usage: 'client' }),
      leaf(etcdCa, { commonName: 'kube-apiserver-etcd-client', usage: 'client' }),
    ]);

  // kubeadm expects controller-manager.conf and scheduler.conf at the local API endpoint; without a
  // known address they use loopback (in the serving certificate; kubeadm only warns about the URL).
  const localApi = endpointUrl({ host: addresses[0] ?? '127.0.0.1', port: LOCAL_API_PORT });
  const endpoint = endpointUrl(input.controlPlaneEndpoint);
  const adminDays = (input.nodeAdminValidityHours ?? DEFAULT_NODE_ADMIN_VALIDITY_HOURS) / 24;
  const kubeconfig = async (
    file: string,
    server: string,
    authority: CertificateAuthority,
    req: Omit<CertificateRequest, 'usage'>,
    validityDays = LEAF_VALIDITY_DAYS,
  ): Promise<BootstrapFile> => {
    const client = await issueCertificate(authority, { ...req, usage: 'client', validityDays });
    const content = renderKubeconfig({
      name: `${req.commonName}@${input.clusterName}`,
      server,
      caPem: pki.ca.certPem,
      credentials: { clientCertificatePem: client.certPem, clientKeyPem: client.keyPem },
    });
    return { path: `${KUBERNETES_DIR}/${file}`, content, permissions: '0600' };
  };
  const kubeconfigs = await Promise.all([
    kubeconfig(
      'admin.conf',
      endpoint,
      ca,
      { commonName: 'kubernetes-admin', organizations: [CLUSTER_ADMINS_GROUP] },
      adminDays,
    ),
    kubeconfig('controller-manager.conf', localApi, ca, { commonName: 'system:kube-controller-manager' }),
    kubeconfig('scheduler.conf', localApi, ca, { commonName: 'system:kube-scheduler' }),
    ...(input.role === 'init'
      ? [
          kubeconfig(
            'super-admin.conf',
            endpoint,
            ca,
            { commonName: 'kubernetes-super-admin', organizations: [SYSTEM_MASTERS] },
            adminDays,
          ),
          // The first control plane's kubelet cannot TLS-bootstrap before its own API server runs.
          kubeconfig('kubelet.conf', endpoint, signer, {
            commonName: `system:node:${input.machineName}`,
            organizations: [NODES_GROUP],
          }),
        ]
      : []),
  ]);

  return [
    cert(`${PKI_DIR}/ca.crt`, pki.ca.certPem),
    cert(CLIENT_CA_BUNDLE, `${pki.ca.certPem.trim()}\n${pki.kubeletSigner.certPem.trim()}\n`),
    cert(KUBELET_SIGNER_CERT, pki.kubeletSigner.certPem),
    key(KUBELET_SIGNER_KEY, pki.kubeletSigner.keyPem),
    ...pair(`${PKI_DIR}/apiserver`, apiserver),
    ...pair(`${PKI_DIR}/apiserver-kubelet-client`, kubeletClient),
    cert(`${PKI_DIR}/front-proxy-ca.crt`, pki.proxy.certPem),
    ...pair(`${PKI_DIR}/front-proxy-client`, proxyClient),
    cert(`${PKI_DIR}/etcd/ca.crt`, pki.etcd.certPem),
    ...pair(`${PKI_DIR}/etcd/server`, etcdServer),
    ...pair(`${PKI_DIR}/etcd/peer`, etcdPeer),
    ...pair(`${PKI_DIR}/etcd/healthcheck-client`, etcdHealth),
    ...pair(`${PKI_DIR}/apiserver-etcd-client`, etcdClient),
    key(`${PKI_DIR}/sa.key`, pki.sa.keyPem),
    cert(`${PKI_DIR}/sa.pub`, pki.sa.certPem),
    ...kubeconfigs,
  ];
}

/** The admin kubeconfig and its Secret `<cluster>-kubeconfig` (key `value`, what `clusterctl get kubeconfig` reads). */
export interface AdminKubeconfig {
  kubeconfig: string;
  secret: {
    apiVersion: 'v1';
    kind: 'Secret';
    metadata: { name: string; labels: Record<string, string> };
    type: typeof CLUSTER_SECRET_TYPE;
    data: { value: string };
  };
}

/**
 * The cluster's admin kubeconfig for the management side: a client certificate from the cluster CA,
 * CN `kubernetes-admin`, O `kubeadm:cluster-admins` (kubeadm 1.29+'s admin.conf identity; `kubeadm
 * init` binds that group to cluster-admin), one year by default; server = the control-plane endpoint.
 */
export async function adminKubeconfig(
  clusterName: string,
  ca: KeyPairPem,
  endpoint: Endpoint,
  validityDays = LEAF_VALIDITY_DAYS,
): Promise<AdminKubeconfig> {
  checkClusterName(clusterName);
  checkEndpoint(endpoint, 'controlPlaneEndpoint');
  const authority = await loadCa(clusterName, 'ca', ca);
  const client = await issueCertificate(authority, {
    commonName: 'kubernetes-admin',
    organizations: [CLUSTER_ADMINS_GROUP],
    usage: 'client',
    validityDays,
  });
  const kubeconfig = renderKubeconfig({
    name: `${clusterName}-admin@${clusterName}`,
    server: endpointUrl(endpoint),
    caPem: ca.certPem,
    credentials: { clientCertificatePem: client.certPem, clientKeyPem: client.keyPem },
  });
  return {
    kubeconfig,
    secret: {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: clusterSecretName(clusterName, 'kubeconfig'),
        labels: { 'cluster.x-k8s.io/cluster-name': clusterName },
      },
      type: CLUSTER_SECRET_TYPE,
      data: { value: Buffer.from(kubeconfig).toString('base64') },
    },
  };
}

/** Throws unless `name` can be a node name (a DNS subdomain: kubeadm and the node authorizer use it). */
export function checkNodeName(name: string): void {
  if (!/^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name))
    throw new BootstrapError(
      'invalid-input',
      `machine name ${JSON.stringify(name)} is not a valid node name (lower-case DNS subdomain)`,
    );
}

function cert(path: string, content: string): BootstrapFile {
  return { path, content: ensureNewline(content), permissions: '0644' };
}

function key(path: string, content: string): BootstrapFile {
  return { path, content: ensureNewline(content), permissions: '0600' };
}

function pair(base: string, issued: { certPem: string; keyPem: string }): BootstrapFile[] {
  return [cert(`${base}.crt`, issued.certPem), key(`${base}.key`, issued.keyPem)];
}

function ensureNewline(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
