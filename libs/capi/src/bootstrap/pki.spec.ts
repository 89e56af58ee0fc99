import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { BootstrapError } from './errors';
import { opensslRsaCa } from './fixtures';
import {
  caCertHash,
  clusterPki,
  CLUSTER_SECRET_PURPOSES,
  type ClusterPki,
  type ClusterSecretPurpose,
} from './pki';

let dir: string;
let pki: ClusterPki;
let rsaCa: { certPem: string; keyPem: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'knet-capi-pki-'));
  pki = await clusterPki('alpha');
  rsaCa = await opensslRsaCa(dir);
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const b64 = (s: string) => Buffer.from(s).toString('base64');
const asSecret = (pair: { certPem: string; keyPem: string }) => ({
  data: { 'tls.crt': b64(pair.certPem), 'tls.key': b64(pair.keyPem) },
});
const existingOf = (p: ClusterPki): Record<ClusterSecretPurpose, { data: Record<string, string> }> =>
  Object.fromEntries(
    p.secrets.map((s) => [s.metadata.name.replace(/^alpha-/, ''), { data: s.data }]),
  ) as Record<ClusterSecretPurpose, { data: Record<string, string> }>;

async function kind(e: Promise<unknown>): Promise<string> {
  try {
    await e;
  } catch (err) {
    if (err instanceof BootstrapError) return `${err.kind}: ${err.message}`;
    throw err;
  }
  return 'no error';
}

describe('clusterPki', () => {
  it('generates the five per-cluster Secrets with CAPI names, type and label', () => {
    expect(pki.generated).toEqual([...CLUSTER_SECRET_PURPOSES]);
    expect(pki.secrets.map((s) => s.metadata.name)).toEqual([
      'alpha-ca',
      'alpha-etcd',
      'alpha-proxy',
      'alpha-sa',
      'alpha-kubelet-signer',
    ]);
    for (const s of pki.secrets) {
      expect(s.type).toBe('cluster.x-k8s.io/secret');
      expect(s.metadata.labels).toEqual({ 'cluster.x-k8s.io/cluster-name': 'alpha' });
      expect(Object.keys(s.data).sort()).toEqual(['tls.crt', 'tls.key']);
    }
  });

  it('makes four distinct CAs valid for 10 years, with kubeadm common names', () => {
    const cas = { ca: pki.ca, etcd: pki.etcd, proxy: pki.proxy, signer: pki.kubeletSigner };
    const certs = Object.values(cas).map((c) => new X509Certificate(c.certPem));
    expect(certs.map((c) => c.subject)).toEqual([
      'CN=kubernetes',
      'CN=etcd-ca',
      'CN=front-proxy-ca',
      'CN=kubelet-client-signer',
    ]);
    for (const c of certs) {
      expect(c.ca).toBe(true);
      expect(c.checkIssued(c)).toBe(true);
      const years = (Date.parse(c.validTo) - Date.parse(c.validFrom)) / (365.25 * 86_400_000);
      expect(years).toBeGreaterThan(9.9);
      expect(years).toBeLessThan(10.1);
    }
    expect(new Set(certs.map((c) => c.fingerprint256)).size).toBe(4);
  });

  it('makes an RSA-2048 service-account key stored as CAPI does (tls.crt = public key)', async () => {
    expect(pki.sa.keyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(pki.sa.certPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const { stdout } = await execa('openssl', ['pkey', '-pubin', '-noout', '-text'], {
      input: pki.sa.certPem,
    });
    expect(stdout).toMatch(/Public-Key: \(2048 bit\)/);
  });

  it('keeps every existing Secret byte for byte and generates nothing (deterministic)', async () => {
    const again = await clusterPki('alpha', existingOf(pki));
    expect(again.generated).toEqual([]);
    expect(again.secrets).toEqual(pki.secrets);
    expect(await clusterPki('alpha', existingOf(pki))).toEqual(again);
  });

  it('generates only what is missing', async () => {
    const { ca, sa } = existingOf(pki);
    const partial = await clusterPki('alpha', { ca, sa });
    expect(partial.generated).toEqual(['etcd', 'proxy', 'kubelet-signer']);
    expect(partial.ca).toEqual(pki.ca);
    expect(partial.sa).toEqual(pki.sa);
    expect(partial.etcd.certPem).not.toBe(pki.etcd.certPem);
  });

  it('keeps a CABPK-style RSA CA (PKCS#1 key) as it is', async () => {
    const kept = await clusterPki('alpha', { ca: asSecret(rsaCa) });
    expect(kept.ca).toEqual(rsaCa);
    expect(kept.secrets[0]?.data['tls.key']).toBe(b64(rsaCa.keyPem));
  });

  it.each<[string, () => Partial<Record<ClusterSecretPurpose, { data: Record<string, string> }>>, RegExp]>([
    [
      'a CA whose key belongs to another CA',
      () => ({ ca: asSecret({ certPem: pki.ca.certPem, keyPem: pki.etcd.keyPem }) }),
      /alpha-ca: CA key does not match/,
    ],
    [
      'a CA Secret without tls.key (external CA)',
      () => ({ ca: { data: { 'tls.crt': b64(pki.ca.certPem) } } }),
      /alpha-ca lacks tls.key/,
    ],
    [
      'a CA Secret without tls.crt',
      () => ({ etcd: { data: { 'tls.key': b64(pki.etcd.keyPem) } } }),
      /alpha-etcd lacks tls.crt/,
    ],
    [
      'a leaf certificate as CA',
      () => ({
        proxy: asSecret({
          certPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
          keyPem: pki.proxy.keyPem,
        }),
      }),
      /alpha-proxy: CA certificate is not a valid PEM/,
    ],
    [
      'a service-account public key of another key',
      () => ({ sa: asSecret({ certPem: rsaPublicOf(rsaCa.certPem), keyPem: pki.sa.keyPem }) }),
      /alpha-sa: tls.crt is not the public key/,
    ],
  ])('refuses %s (invalid-secret), never echoing key material', async (_what, existing, message) => {
    const result = await kind(clusterPki('alpha', existing()));
    expect(result).toMatch(/^invalid-secret: /);
    expect(result).toMatch(message);
    for (const pair of [pki.ca, pki.etcd, pki.proxy, pki.sa, rsaCa])
      expect(result).not.toContain(pemBody(pair.keyPem).slice(0, 40));
  });

  it('refuses a cluster name that cannot prefix a Secret name', async () => {
    expect(await kind(clusterPki('Alpha_1'))).toMatch(/^invalid-input: cluster name "Alpha_1"/);
  });
});

describe('caCertHash', () => {
  it.each([
    ['the generated ECDSA CA', () => pki.ca.certPem],
    ['an openssl RSA-2048 CA', () => rsaCa.certPem],
  ])(
    'of %s equals openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum',
    async (_what, pem) => {
      const { stdout: spkiPem } = await execa('openssl', ['x509', '-pubkey', '-noout'], { input: pem() });
      const der = await execa('openssl', ['pkey', '-pubin', '-outform', 'der'], {
        input: spkiPem,
        encoding: 'buffer',
      });
      const { stdout: sum } = await execa('sha256sum', { input: der.stdout });
      expect(caCertHash(pem())).toBe(`sha256:${sum.split(' ')[0]}`);
    },
  );

  it('refuses what is not a certificate', () => {
    expect(() => caCertHash('not a cert')).toThrow(BootstrapError);
  });
});

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

function rsaPublicOf(certPem: string): string {
  return new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'pem' }) as string;
}
