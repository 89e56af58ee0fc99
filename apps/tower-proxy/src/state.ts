import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  createCertificateAuthority,
  loadCertificateAuthority,
  type CertificateAuthority,
} from '@knet/crypto';
import { Secrets, secretData } from '@knet/k8s';
import { generateHostKey, loadHostKey, type HostKey } from '@knet/tunnel';

const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'tower-proxy' };

/**
 * The SSH host key, kept in a Secret so agents' pinned fingerprint survives restarts and is shared
 * by every replica. The first replica to start creates it; a race is settled by the API server
 * (create conflicts, the loser reads the winner's key).
 */
export async function loadOrCreateHostKey(kc: KubeConfig, namespace: string, name: string): Promise<HostKey> {
  const secrets = new Secrets(kc);
  const { secret } = await secrets.upsert(namespace, name, (cur) => {
    if (cur && secretData(cur)['ssh-host-key']) return cur;
    const key = generateHostKey();
    return {
      metadata: { name, labels: MANAGED_BY, annotations: { 'tower.knet.io/fingerprint': key.fingerprint } },
      type: 'Opaque',
      stringData: { 'ssh-host-key': key.privateKey, 'ssh-host-key.pub': key.publicKey },
    };
  });
  const pem = secretData(secret)['ssh-host-key'];
  if (!pem) throw new Error(`Secret ${namespace}/${name} has no ssh-host-key`);
  return loadHostKey(pem.toString('utf8'));
}

/**
 * The CA that signs listener certificates and kubeconfig client certificates: from files
 * (--ca-cert/--ca-key), else a Secret created on first start.
 */
export async function loadOrCreateCa(
  kc: KubeConfig,
  namespace: string,
  name: string,
  files?: { cert: string; key: string },
): Promise<CertificateAuthority> {
  if (files) {
    const read = (f: string, what: string) => {
      try {
        return readFileSync(f, 'utf8');
      } catch (e) {
        throw new Error(
          `${what} ${f} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    };
    return loadCertificateAuthority(read(files.cert, '--ca-cert'), read(files.key, '--ca-key'));
  }
  const secrets = new Secrets(kc);
  const has = (d: Record<string, Buffer>) => Boolean(d['tls.crt'] && d['tls.key']);
  if (!has(secretData(await secrets.get(namespace, name)))) {
    const ca = await createCertificateAuthority('knet-tower-proxy-ca');
    await secrets.upsert(namespace, name, (cur) =>
      cur && has(secretData(cur))
        ? cur // another replica was faster: keep its CA
        : {
            metadata: { name, labels: MANAGED_BY },
            type: 'kubernetes.io/tls',
            stringData: { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem },
          },
    );
  }
  const d = secretData(await secrets.get(namespace, name));
  const cert = d['tls.crt'];
  const key = d['tls.key'];
  if (!cert || !key) throw new Error(`Secret ${namespace}/${name} has no tls.crt/tls.key`);
  return loadCertificateAuthority(cert.toString('utf8'), key.toString('utf8'));
}
