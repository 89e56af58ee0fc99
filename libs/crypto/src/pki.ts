import 'reflect-metadata';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  KeyObject,
  randomBytes,
  sign,
  webcrypto,
} from 'node:crypto';
import { isIP } from 'node:net';
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

/**
 * Issues a leaf certificate signed by `ca`, with a fresh ECDSA P-256 key.
 *
 * The certificate is encoded here in DER (see "Leaf certificate encoding" below) and signed with
 * node's crypto: @peculiar/x509's generator took ~10-14 ms a certificate, this under 1 ms with a P-256
 * CA (P-384 and RSA CAs add their slower signatures, ~2 ms). Its fields and extensions are those
 * the generator wrote (checked byte for byte against it and against openssl in pki.spec.ts).
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  req: CertificateRequest,
): Promise<CertificateAndKey> {
  if (!req.commonName) throw new Error('issueCertificate: commonName must not be empty');
  const issuer = issuerOf(ca);
  const { notBefore, notAfter } = validity(req.validityDays ?? 365);
  const extensions = leafExtensions(issuer, req);
  const { publicKey, privateKey } = generateLeafKey();
  const tbs = der(
    SEQUENCE,
    der(0xa0, V3),
    derInteger(serialNumberBytes()),
    issuer.signatureAlgorithm,
    issuer.name,
    der(SEQUENCE, derTime(notBefore), derTime(notAfter)),
    derName(req.commonName, req.organizations ?? []),
    publicKey,
    der(0xa3, der(SEQUENCE, ...extensions)),
  );
  const signature = await signWith(issuer, tbs);
  const cert = der(SEQUENCE, tbs, issuer.signatureAlgorithm, der(BIT_STRING, ZERO, signature));
  return { certPem: pem(cert, 'CERTIFICATE'), keyPem: privateKey };
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
  return serialNumberBytes().toString('hex');
}

/** 127 random bits: a positive INTEGER of at most 16 octets (RFC 5280 4.1.2.2). */
function serialNumberBytes(): Buffer {
  const b = randomBytes(16);
  b.writeUInt8(b.readUInt8(0) & 0x7f, 0);
  return b;
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  if (!Number.isFinite(days) || days <= 0)
    throw new RangeError(`validity must be a positive number of days, got ${days}`);
  const now = Date.now();
  const notAfter = new Date(now + days * 86_400_000);
  if (!(notAfter.getUTCFullYear() <= 9999))
    throw new RangeError(`validity of ${days} days ends after the year 9999, which X.509 cannot encode`);
  return { notBefore: new Date(now - CLOCK_SKEW_MS), notAfter };
}

// ---- Leaf certificate encoding ------------------------------------------------------------------
//
// issueCertificate writes the TBSCertificate (RFC 5280 4.1) directly in DER:
//   version v3, a 127-bit random serial, the CA's signature algorithm, the CA certificate's subject
//   bytes as issuer, validity (UTCTime until 2049, GeneralizedTime after), subject CN then one RDN
//   per O (PrintableString when the value allows it, else UTF8String, as @peculiar/x509's Name does),
//   the leaf's SubjectPublicKeyInfo (id-ecPublicKey, prime256v1, uncompressed point), and the extensions
//     basicConstraints CA:FALSE (critical), keyUsage digitalSignature+keyEncipherment (critical),
//     extKeyUsage serverAuth and/or clientAuth, authorityKeyIdentifier = the CA's subjectKeyIdentifier
//     (else the SHA-1 of its public key bits), subjectAltName DNS names then IP addresses (only when there are any),
// then signs it with node's crypto.sign (ECDSA signatures come out DER, as X.509 wants them).

/** What issuing needs from a CA, computed once per CA object. */
interface Issuer {
  key: KeyObject;
  /** node's digest name for crypto.sign. */
  hash: string;
  /** The AlgorithmIdentifier DER, both in the TBSCertificate and after it. */
  signatureAlgorithm: Buffer;
  /** The CA certificate's subject Name DER, copied. */
  name: Buffer;
  /** The authorityKeyIdentifier extension DER. */
  authorityKeyIdentifier: Buffer;
}

const issuers = new WeakMap<CertificateAuthority, Issuer>();

function issuerOf(ca: CertificateAuthority): Issuer {
  let issuer = issuers.get(ca);
  if (!issuer) {
    issuer = loadIssuer(ca);
    issuers.set(ca, issuer);
  }
  return issuer;
}

function loadIssuer(ca: CertificateAuthority): Issuer {
  const hash = typeof ca.algorithm.hash === 'string' ? ca.algorithm.hash : undefined;
  const algorithm = SIGNATURE_ALGORITHMS[`${ca.algorithm.name}/${hash}`];
  if (!algorithm)
    throw new Error(
      `issueCertificate: CA signing algorithm ${ca.algorithm.name} with ${hash} is not supported`,
    );
  const certificate = Buffer.from(ca.cert.rawData);
  // Certificate ::= SEQUENCE { tbsCertificate, ... }; TBSCertificate ::= SEQUENCE { [0] version,
  // serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ... }
  const [outer] = derChildren(certificate, { contentStart: 0, end: certificate.length });
  const tbs = derChildren(certificate, derChildren(certificate, outer)[0]);
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs;
  const subject = fields[4];
  const spki = fields[5];
  if (!subject || !spki) throw new Error('issueCertificate: the CA certificate has no subject or public key');
  const subjectPublicKey = derChildren(certificate, spki)[1];
  if (subjectPublicKey?.tag !== BIT_STRING)
    throw new Error('issueCertificate: the CA public key is not a BIT STRING');
  // The CA's own subjectKeyIdentifier (RFC 5280 4.2.1.1: the AKI must match it, and openssl picks
  // the issuer by it); without one, RFC 5280 4.2.1.2 method (1): SHA-1 of the BIT STRING's bits,
  // without its unused-bits octet.
  const ski = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyId = ski
    ? Buffer.from(ski.keyId, 'hex')
    : createHash('sha1')
        .update(certificate.subarray(subjectPublicKey.contentStart + 1, subjectPublicKey.end))
        .digest();
  return {
    key: KeyObject.from(ca.key),
    hash: algorithm.hash,
    signatureAlgorithm: algorithm.der,
    name: Buffer.from(certificate.subarray(subject.start, subject.end)),
    authorityKeyIdentifier: derExtension(
      OID_AUTHORITY_KEY_IDENTIFIER,
      false,
      der(SEQUENCE, der(0x80, keyId)),
    ),
  };
}

function leafExtensions(issuer: Issuer, req: CertificateRequest): Buffer[] {
  const eku =
    req.usage === 'server'
      ? [OID_SERVER_AUTH]
      : req.usage === 'client'
        ? [OID_CLIENT_AUTH]
        : [OID_SERVER_AUTH, OID_CLIENT_AUTH];
  const sans = [
    ...(req.dnsNames ?? []).map((name) => der(0x82, dnsNameBytes(name))),
    ...(req.ipAddresses ?? []).map((ip) => der(0x87, ipAddressBytes(ip))),
  ];
  const extensions = [
    LEAF_BASIC_CONSTRAINTS,
    LEAF_KEY_USAGE,
    derExtension(OID_EXTENDED_KEY_USAGE, false, der(SEQUENCE, ...eku)),
    issuer.authorityKeyIdentifier,
  ];
  if (sans.length > 0) extensions.push(derExtension(OID_SUBJECT_ALT_NAME, false, der(SEQUENCE, ...sans)));
  return extensions;
}

/**
 * A fresh P-256 key: its SubjectPublicKeyInfo DER and its PKCS#8 PEM. Generating takes ~0.2 ms;
 * node's SPKI encoder alone would take as long again, so the SPKI (fixed for P-256: the
 * uncompressed point 04||x||y under id-ecPublicKey/prime256v1) is written from the JWK.
 */
function generateLeafKey(): { publicKey: Buffer; privateKey: string } {
  const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const { x, y } = keys.publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([
    UNCOMPRESSED,
    Buffer.from(x ?? '', 'base64url'),
    Buffer.from(y ?? '', 'base64url'),
  ]);
  if (point.length !== 65) throw new Error('issueCertificate: unexpected P-256 public key size');
  return {
    publicKey: der(SEQUENCE, EC_P256_ALGORITHM, der(BIT_STRING, ZERO, point)),
    privateKey: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

async function signWith(issuer: Issuer, tbs: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    sign(issuer.hash, tbs, issuer.key, (err, signature) => (err ? reject(err) : resolve(signature))),
  );
}

function dnsNameBytes(name: string): Buffer {
  // dNSName is an IA5String: non-ASCII names go in as their punycode (xn--) form.
  if (!/^[\x20-\x7e]+$/.test(name))
    throw new Error(
      `issueCertificate: DNS name ${JSON.stringify(name)} is not printable ASCII; use its punycode form`,
    );
  return Buffer.from(name, 'ascii');
}

function ipAddressBytes(ip: string): Buffer {
  const version = isIP(ip);
  if (version === 4) return Buffer.from(ip.split('.').map(Number));
  if (version !== 6 || ip.includes('%'))
    throw new Error(`issueCertificate: ${JSON.stringify(ip)} is not an IPv4 or IPv6 address (without zone)`);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (v4) {
    const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
    text = `${text.slice(0, -v4.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const all = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  return bytes;
}

function derName(commonName: string, organizations: string[]): Buffer {
  const rdn = (oid: Buffer, value: string): Buffer =>
    der(SET, der(SEQUENCE, oid, der(PRINTABLE.test(value) ? 0x13 : 0x0c, Buffer.from(value, 'utf8'))));
  return der(
    SEQUENCE,
    rdn(OID_COMMON_NAME, commonName),
    ...organizations.map((o) => rdn(OID_ORGANIZATION, o)),
  );
}

function derTime(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = date.getUTCFullYear();
  return year >= 1950 && year < 2050
    ? der(0x17, Buffer.from(digits.slice(2), 'ascii'))
    : der(0x18, Buffer.from(digits, 'ascii'));
}

/** A non-negative INTEGER from big-endian magnitude bytes, minimally encoded. */
function derInteger(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const value = magnitude.subarray(i);
  return der(INTEGER, (value[0] ?? 0) > 0x7f ? Buffer.concat([ZERO, value]) : value);
}

function derExtension(oid: Buffer, critical: boolean, value: Buffer): Buffer {
  return der(SEQUENCE, oid, ...(critical ? [TRUE] : []), der(OCTET_STRING, value));
}

function derOid(oid: string): Buffer {
  const [first = 0, second = 0, ...rest] = oid.split('.').map(Number);
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const septets = [arc & 0x7f];
    for (let v = arc >>> 7; v > 0; v >>>= 7) septets.unshift((v & 0x7f) | 0x80);
    bytes.push(...septets);
  }
  return der(0x06, Buffer.from(bytes));
}

/** One DER TLV: `tag`, definite length, then the parts concatenated. */
function der(tag: number, ...parts: Buffer[]): Buffer {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const head =
    length < 0x80
      ? Buffer.from([tag, length])
      : length < 0x100
        ? Buffer.from([tag, 0x81, length])
        : length < 0x10000
          ? Buffer.from([tag, 0x82, length >> 8, length & 0xff])
          : Buffer.from([tag, 0x83, length >> 16, (length >> 8) & 0xff, length & 0xff]);
  return Buffer.concat([head, ...parts], head.length + length);
}

interface DerElement {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** The elements inside a constructed DER element (enough for a certificate: one-octet tags). */
function derChildren(buf: Buffer, parent: { contentStart: number; end: number } | undefined): DerElement[] {
  if (!parent) throw new Error('issueCertificate: the CA certificate is not DER');
  const children: DerElement[] = [];
  for (let at = parent.contentStart; at < parent.end;) {
    const tag = buf[at] ?? 0;
    let length = buf[at + 1] ?? 0;
    let contentStart = at + 2;
    if (length & 0x80) {
      const octets = length & 0x7f;
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + (buf[contentStart + i] ?? 0);
      contentStart += octets;
    }
    const end = contentStart + length;
    if (end > parent.end) throw new Error('issueCertificate: the CA certificate is not DER (truncated)');
    children.push({ tag, start: at, contentStart, end });
    at = end;
  }
  return children;
}

function pem(derBytes: Buffer, label: string): string {
  const lines = derBytes.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----`;
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const ZERO = Buffer.from([0]);
const TRUE = Buffer.from([0x01, 0x01, 0xff]);
const V3 = Buffer.from([INTEGER, 0x01, 0x02]);
/** The characters of an ASN.1 PrintableString (X.680 41.4). */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

const OID_COMMON_NAME = derOid('2.5.4.3');
const OID_ORGANIZATION = derOid('2.5.4.10');
const OID_BASIC_CONSTRAINTS = derOid('2.5.29.19');
const OID_KEY_USAGE = derOid('2.5.29.15');
const OID_EXTENDED_KEY_USAGE = derOid('2.5.29.37');
const OID_AUTHORITY_KEY_IDENTIFIER = derOid('2.5.29.35');
const OID_SUBJECT_ALT_NAME = derOid('2.5.29.17');
const OID_SERVER_AUTH = derOid('1.3.6.1.5.5.7.3.1');
const OID_CLIENT_AUTH = derOid('1.3.6.1.5.5.7.3.2');

/** basicConstraints, critical: SEQUENCE {} (cA FALSE is the default, so absent). */
const LEAF_BASIC_CONSTRAINTS = derExtension(OID_BASIC_CONSTRAINTS, true, der(SEQUENCE));
/** keyUsage, critical: digitalSignature (bit 0) and keyEncipherment (bit 2); 5 unused bits. */
const LEAF_KEY_USAGE = derExtension(OID_KEY_USAGE, true, der(BIT_STRING, Buffer.from([0x05, 0xa0])));

const UNCOMPRESSED = Buffer.from([0x04]);
/** id-ecPublicKey with the named curve prime256v1 (RFC 5480). */
const EC_P256_ALGORITHM = der(SEQUENCE, derOid('1.2.840.10045.2.1'), derOid('1.2.840.10045.3.1.7'));

const ecdsa = (oid: string): Buffer => der(SEQUENCE, derOid(oid));
const rsa = (oid: string): Buffer => der(SEQUENCE, derOid(oid), Buffer.from([0x05, 0x00]));
/** AlgorithmIdentifiers by WebCrypto name and hash (RFC 5758 3.2: ECDSA without parameters; RFC 4055: RSA with NULL). */
const SIGNATURE_ALGORITHMS: Record<string, { hash: string; der: Buffer } | undefined> = {
  'ECDSA/SHA-256': { hash: 'sha256', der: ecdsa('1.2.840.10045.4.3.2') },
  'ECDSA/SHA-384': { hash: 'sha384', der: ecdsa('1.2.840.10045.4.3.3') },
  'ECDSA/SHA-512': { hash: 'sha512', der: ecdsa('1.2.840.10045.4.3.4') },
  'RSASSA-PKCS1-v1_5/SHA-256': { hash: 'sha256', der: rsa('1.2.840.113549.1.1.11') },
  'RSASSA-PKCS1-v1_5/SHA-384': { hash: 'sha384', der: rsa('1.2.840.113549.1.1.12') },
  'RSASSA-PKCS1-v1_5/SHA-512': { hash: 'sha512', der: rsa('1.2.840.113549.1.1.13') },
};
