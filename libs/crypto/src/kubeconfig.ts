/** Credentials a rendered kubeconfig carries for its user. */
export type KubeconfigCredentials =
  { clientCertificatePem: string; clientKeyPem: string } | { token: string };

export interface KubeconfigSpec {
  /** Used as the cluster, user and context name. */
  name: string;
  /** https://host:port of the API server. */
  server: string;
  /** PEM of the CA that signed the server's certificate. Omit only with insecureSkipTlsVerify. */
  caPem?: string;
  insecureSkipTlsVerify?: boolean;
  /** TLS server name to verify instead of the server URL's host. */
  tlsServerName?: string;
  namespace?: string;
  credentials: KubeconfigCredentials;
}

/**
 * Renders a single-context kubeconfig as YAML. Every scalar is emitted as a JSON string, which is
 * a valid YAML double-quoted scalar, so no value can break the document.
 */
export function renderKubeconfig(spec: KubeconfigSpec): string {
  if (!/^https?:\/\/[^\s/]+/.test(spec.server)) {
    throw new Error(`kubeconfig server must be an http(s) URL, got ${JSON.stringify(spec.server)}`);
  }
  if (!spec.caPem && !spec.insecureSkipTlsVerify && spec.server.startsWith('https:')) {
    throw new Error('kubeconfig needs caPem for an https server (or insecureSkipTlsVerify, which is unsafe)');
  }
  const q = (s: string) => JSON.stringify(s);
  const b64 = (s: string) => q(Buffer.from(s).toString('base64'));
  const cluster = [`    server: ${q(spec.server)}`];
  if (spec.caPem) cluster.push(`    certificate-authority-data: ${b64(spec.caPem)}`);
  if (spec.insecureSkipTlsVerify) cluster.push('    insecure-skip-tls-verify: true');
  if (spec.tlsServerName) cluster.push(`    tls-server-name: ${q(spec.tlsServerName)}`);
  const user =
    'token' in spec.credentials
      ? [`    token: ${q(spec.credentials.token)}`]
      : [
          `    client-certificate-data: ${b64(spec.credentials.clientCertificatePem)}`,
          `    client-key-data: ${b64(spec.credentials.clientKeyPem)}`,
        ];
  const context = [`    cluster: ${q(spec.name)}`, `    user: ${q(spec.name)}`];
  if (spec.namespace) context.push(`    namespace: ${q(spec.namespace)}`);
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${q(spec.name)}`,
    '  cluster:',
    ...cluster,
    'users:',
    `- name: ${q(spec.name)}`,
    '  user:',
    ...user,
    'contexts:',
    `- name: ${q(spec.name)}`,
    '  context:',
    ...context,
    `current-context: ${q(spec.name)}`,
    'preferences: {}',
    '',
  ].join('\n');
}
