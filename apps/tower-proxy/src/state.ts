import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  createCertificateAuthority,
  loadCertificateAuthority,
  type CertificateAuthority,
} from '@knet/crypto';
import { Secrets, isNotFound, patchObject, secretData } from '@knet/k8s';
import { errorMessage } from '@knet/runtime';
import { generateHostKey, loadHostKey, type HostKey } from '@knet/tunnel';

const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'tower-proxy' };

/**
 * Runs `create`, which creates `what` in `namespace`. A create (or a server-side apply that creates)
 * answers 404 only when the namespace does not exist: that is said in one line with the way out,
 * instead of the API server's `namespaces "x" not found` deep in a stack of operations.
 */
async function inNamespace<T>(namespace: string, what: string, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new Error(
      `namespace ${namespace} does not exist: tower-proxy keeps its ${what} there; create it (kubectl create namespace ${namespace}) or choose an existing one with --namespace`,
      { cause: e },
    );
  }
}

/**
 * The SSH host key, kept in a Secret so agents' pinned fingerprint survives restarts and is shared
 * by every replica. The first replica to start creates it; a race is settled by the API server
 * (create conflicts, the loser reads the winner's key).
 */
export async function loadOrCreateHostKey(kc: KubeConfig, namespace: string, name: string): Promise<HostKey> {
  const secrets = new Secrets(kc);
  const { secret } = await inNamespace(namespace, `SSH host key (Secret ${name})`, () =>
    secrets.upsert(namespace, name, (cur) => {
      if (cur && secretData(cur)['ssh-host-key']?.length) return cur;
      const key = generateHostKey();
      // Keep whatever else an existing Secret holds; add the key.
      return {
        ...cur,
        metadata: {
          ...cur?.metadata,
          name,
          labels: { ...cur?.metadata?.labels, ...MANAGED_BY },
          annotations: { ...cur?.metadata?.annotations, 'tower.knet.io/fingerprint': key.fingerprint },
        },
        type: cur?.type ?? 'Opaque',
        stringData: { 'ssh-host-key': key.privateKey, 'ssh-host-key.pub': key.publicKey },
      };
    }),
  );
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
          `${what} ${f} cannot be read: ${(e as NodeJS.ErrnoException).code ?? errorMessage(e)}`,
        );
      }
    };
    return loadCertificateAuthority(read(files.cert, '--ca-cert'), read(files.key, '--ca-key'));
  }
  const secrets = new Secrets(kc);
  const has = (d: Record<string, Buffer>) => Boolean(d['tls.crt']?.length && d['tls.key']?.length);
  const existing = await secrets.get(namespace, name);
  if (existing && existing.type !== 'kubernetes.io/tls' && !has(secretData(existing))) {
    throw new Error(
      `Secret ${namespace}/${name} exists with type ${existing.type ?? 'Opaque'} and no CA in it; delete it or choose another --ca-secret`,
    );
  }
  if (!has(secretData(existing))) {
    const ca = await createCertificateAuthority('knet-tower-proxy-ca');
    await inNamespace(namespace, `CA (Secret ${name})`, () =>
      secrets.upsert(namespace, name, (cur) =>
        cur && has(secretData(cur))
          ? cur // another replica was faster: keep its CA
          : {
              metadata: { name, labels: MANAGED_BY },
              type: 'kubernetes.io/tls',
              stringData: { 'tls.crt': ca.certPem, 'tls.key': ca.keyPem },
            },
      ),
    );
  }
  const d = secretData(await secrets.get(namespace, name));
  const cert = d['tls.crt'];
  const key = d['tls.key'];
  if (!cert || !key) throw new Error(`Secret ${namespace}/${name} has no tls.crt/tls.key`);
  return loadCertificateAuthority(cert.toString('utf8'), key.toString('utf8'));
}

/**
 * Publishes what agent installers need in a ConfigMap (server-side apply): the host key's
 * fingerprint and public key, the CA certificate and the proxy's version. Labelled
 * `app.kubernetes.io/managed-by=tower-proxy`, like the Secrets it creates.
 */
export async function publishProxyInfo(
  kc: KubeConfig,
  namespace: string,
  name: string,
  info: { hostKey: HostKey; ca: CertificateAuthority; version: string },
): Promise<void> {
  await inNamespace(namespace, `info ConfigMap ${name}`, () =>
    patchObject(
      kc,
      { apiVersion: 'v1', kind: 'ConfigMap', name, namespace },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace, labels: MANAGED_BY },
        data: {
          fingerprint: info.hostKey.fingerprint,
          'ssh-host-key.pub': info.hostKey.publicKey,
          'ca.crt': info.ca.certPem,
          version: info.version,
        },
      },
      'apply',
      { fieldManager: 'tower-proxy', force: true },
    ),
  );
}
