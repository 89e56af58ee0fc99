import 'reflect-metadata';
import { createHash, createPrivateKey, createPublicKey, randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { errorMessage } from '@knet/runtime';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** A certificate and its private key, both PEM (the key as PKCS#8 "PRIVATE KEY"). */
export interface CertificateAndKey {
  certPem: string;
  keyPem: string;
}

/** A loaded certificate authority that can issue certificates. */
export interface CertificateAuthority extends CertificateAndKey {
  readonly cert: x509.X509Certificate;
  readonly key: CryptoKey;
  readonly algorithm: SigningAlgorithm;
}

export type CertificateUsage = 'server' | 'client' | 'server-and-client';

export interface CertificateRequest {
  commonName: string;
  /** Subject O= values; for Kubernetes client certs these are the user's groups. */
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: CertificateUsage;
  /** Validity in days from now (default 365). */
  validityDays?: number;
}

type SigningAlgorithm =
  (webcrypto.EcKeyGenParams & { hash: string }) | (webcrypto.RsaHashedImportParams & { hash: string });

const EC_P256: SigningAlgorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const CLOCK_SKEW_MS = 5 * 60 * 1000;

/** Creates a self-signed CA with an ECDSA P-256 key. */
export async function createCertificateAuthority(
  commonName: string,
  validityDays = 3650,
): Promise<CertificateAuthority> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const { notBefore, notAfter } = validity(validityDays);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: new x509.Name([{ CN: [commonName] }]),
    notBefore,
    notAfter,
    signingAlgorithm: EC_P256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert,
    key: keys.privateKey,
    algorithm: EC_P256,
    certPem: cert.toString('pem'),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

/**
 * Loads a CA from PEM. The key may be PKCS#8, PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"),
 * RSA or ECDSA P-256/P-384. Throws when the key does not belong to the certificate or the
 * certificate is not a CA.
 */
export async function loadCertificateAuthority(
  certPem: string,
  keyPem: string,
): Promise<CertificateAuthority> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(certPem);
  } catch (e) {
    throw new Error(`CA certificate is not a valid PEM certificate: ${errorMessage(e)}`);
  }
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca)
    throw new Error(`certificate "${cert.subject}" is not a CA (basicConstraints CA:FALSE or missing)`);

  let nodeKey;
  try {
    nodeKey = createPrivateKey(keyPem);
  } catch (e) {
    throw new Error(`CA key is not a valid PEM private key: ${errorMessage(e)}`);
  }
  let algorithm: SigningAlgorithm;
  if (nodeKey.asymmetricKeyType === 'rsa') {
    algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else if (nodeKey.asymmetricKeyType === 'ec') {
    const curve = nodeKey.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (!named) throw new Error(`CA key uses unsupported EC curve ${curve}; use P-256 or P-384`);
    algorithm = { name: 'ECDSA', namedCurve: named, hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' };
  } else {
    throw new Error(`CA key type ${nodeKey.asymmetricKeyType} is not supported; use RSA or ECDSA`);
  }
  const der = nodeKey.export({ format: 'der', type: 'pkcs8' });
  const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, true, ['sign']);

  const certSpki = Buffer.from(await webcrypto.subtle.exportKey('spki', await cert.publicKey.export()));
  const keySpki = createPublicKeyDer(keyPem);
  if (!certSpki.equals(keySpki)) throw new Error('CA key does not match the CA certificate');

  return { cert, key, algorithm, certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(key) };
}

/** Issues a leaf certificate signed by `ca`, with a fresh ECDSA P-256 key. */
export async function issueCertificate(
  ca: CertificateAuthority,
  req: CertificateRequest,
): Promise<CertificateAndKey> {
  if (!req.commonName) throw new Error('issueCertificate: commonName must not be empty');
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify'])) as CryptoKeyPair;
  const { notBefore, notAfter } = validity(req.validityDays ?? 365);
  const eku =
    req.usage === 'server'
      ? [x509.ExtendedKeyUsage.serverAuth]
      : req.usage === 'client'
        ? [x509.ExtendedKeyUsage.clientAuth]
        : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const sans: x509.JsonGeneralName[] = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
    new x509.ExtendedKeyUsageExtension(eku, false),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
  ];
  if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));

  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: new x509.Name([{ CN: [req.commonName] }, ...(req.organizations ?? []).map((o) => ({ O: [o] }))]),
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: ca.algorithm,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** True when `certPem` was signed by `caPem`'s key (signature only; no time or usage checks). */
export async function isSignedBy(certPem: string, caPem: string): Promise<boolean> {
  const cert = new x509.X509Certificate(certPem);
  const ca = new x509.X509Certificate(caPem);
  return cert.verify({ publicKey: ca.publicKey, signatureOnly: true });
}

/** SHA-256 fingerprint of a certificate's DER, as colon-separated upper-case hex (openssl style). */
export function certificateFingerprintSha256(certPem: string): string {
  const der = Buffer.from(new x509.X509Certificate(certPem).rawData);
  const hex = createHash('sha256').update(der).digest('hex').toUpperCase();
  return hex.replace(/(..)(?!$)/g, '$1:');
}

/** Subject common name, DNS/IP SANs and validity of a PEM certificate. */
export function describeCertificate(certPem: string): {
  subject: string;
  issuer: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
} {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const names = san?.names.toJSON() ?? [];
  return {
    subject: cert.subject,
    issuer: cert.issuer,
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

function createPublicKeyDer(keyPem: string): Buffer {
  // createPublicKey accepts a private key and derives its public half.
  return createPublicKey(keyPem).export({ format: 'der', type: 'spki' });
}

function serialNumber(): string {
  const b = randomBytes(16);
  b.writeUInt8(b.readUInt8(0) & 0x7f, 0); // a positive INTEGER
  return b.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0)
    throw new RangeError(`validity must be a positive number of days, got ${days}`);
  const now = Date.now();
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter: new Date(now + days * 86_400_000) };
}
