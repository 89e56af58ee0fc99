import 'reflect-metadata';
import { createPublicKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { execa } from 'execa';
import {
  type CertificateAndKey,
  type CertificateAuthority,
  type CertificateRequest,
  createCertificateAuthority,
  issueCertificate,
  loadCertificateAuthority,
} from './index';

// issueCertificate writes the certificate's DER itself. These tests hold it to what it replaced:
// the @peculiar/x509 generator (kept below as `peculiarIssueCertificate`, as it was in pki.ts),
// field by field and byte by byte, and to what openssl and node's TLS accept.

let dir: string;
const cas: Record<string, CertificateAuthority> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'knet-pki-'));
  cas['peculiar P-256'] = await createCertificateAuthority('knet test CA');
  cas['openssl P-256'] = await opensslCa(
    'p256',
    ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
    'ec',
  );
  cas['openssl P-384'] = await opensslCa(
    'p384',
    ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
    'pkcs8',
  );
  cas['openssl RSA-2048'] = await opensslCa('rsa', ['-newkey', 'rsa:2048'], 'rsa');
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const requests: Record<string, CertificateRequest> = {
  'server with DNS, IPv4 and IPv6 SANs': {
    commonName: 'mc-alpha',
    dnsNames: ['alpha.tower.example', 'localhost', '*.alpha.example'],
    ipAddresses: ['127.0.0.1', '192.0.2.10', '::1', '2001:db8::42'],
    usage: 'server',
    validityDays: 30,
  },
  'client with CN and O': {
    commonName: 'knet-tower:alpha',
    organizations: ['knet-tower', 'system:masters', 'team_ops'],
    usage: 'client',
  },
  'server and client': {
    commonName: 'both',
    dnsNames: ['both.example'],
    ipAddresses: ['198.51.100.7'],
    usage: 'server-and-client',
    validityDays: 0.5,
  },
};

const CA_NAMES = ['peculiar P-256', 'openssl P-256', 'openssl P-384', 'openssl RSA-2048'];
const cases = CA_NAMES.flatMap((ca) => Object.keys(requests).map((req) => [ca, req] as const));

describe('issueCertificate against the @peculiar/x509 generator it replaced', () => {
  it.each(cases)('%s CA, %s: same fields, same extension bytes, issuer copied', async (caName, reqName) => {
    const ca = cas[caName]!;
    const req = requests[reqName]!;
    const before = Date.now();
    const old = await peculiarIssueCertificate(ca, req);
    const issued = await issueCertificate(ca, req);
    const after = Date.now();

    // DER, field by field (openssl asn1parse as the parser).
    const oldTbs = await tbsFields(old.certPem);
    const newTbs = await tbsFields(issued.certPem);
    const caTbs = await tbsFields(ca.certPem);
    expect(newTbs.version).toEqual(oldTbs.version);
    expect(newTbs.signature).toEqual(oldTbs.signature);
    expect(newTbs.issuer).toEqual(caTbs.subject);
    expect(newTbs.issuer).toEqual(oldTbs.issuer);
    expect(newTbs.subject).toEqual(oldTbs.subject);
    expect(newTbs.extensions).toEqual(oldTbs.extensions);
    expect(newTbs.subjectPublicKeyInfo).toEqual(
      createPublicKey(issued.keyPem).export({ type: 'spki', format: 'der' }),
    );
    // serial: INTEGER, 02 len, positive, at most 16 octets of value plus a sign octet
    expect(newTbs.serialNumber[0]).toBe(0x02);
    expect(newTbs.serialNumber.length).toBeLessThanOrEqual(2 + 17);
    expect(newTbs.serialNumber[2]! & 0x80).toBe(0);

    // As node parses them.
    const caCert = new X509Certificate(ca.certPem);
    const [o, n] = [old, issued].map((c) => new X509Certificate(c.certPem));
    for (const field of ['subject', 'issuer', 'subjectAltName', 'keyUsage', 'ca'] as const)
      expect([field, n![field]]).toEqual([field, o![field]]);
    expect(n!.checkIssued(caCert)).toBe(true);
    expect(n!.verify(caCert.publicKey)).toBe(true);
    const seconds = (c: X509Certificate): number => (Date.parse(c.validTo) - Date.parse(c.validFrom)) / 1000;
    expect(seconds(n!)).toBe(seconds(o!));
    expect(seconds(n!)).toBe(Math.floor((req.validityDays ?? 365) * 86_400 + 300));
    expect(Date.parse(n!.validFrom)).toBeGreaterThanOrEqual(before - 300_000 - 1000);
    expect(Date.parse(n!.validFrom)).toBeLessThanOrEqual(after - 300_000);

    // As openssl prints them, apart from what differs per certificate.
    const [oldText, newText] = await Promise.all([old, issued].map((c) => opensslText(c.certPem)));
    expect(newText).toBe(oldText);
    expect(newText).toContain('X509v3 Basic Constraints: critical\n                CA:FALSE');
    expect(newText).toContain(
      'X509v3 Key Usage: critical\n                Digital Signature, Key Encipherment',
    );
    expect(newText).toContain('X509v3 Authority Key Identifier');

    // PEM: the same layout and labels.
    expect(issued.certPem).toMatch(PEM_CERTIFICATE);
    expect(old.certPem).toMatch(PEM_CERTIFICATE);
    expect(issued.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[^]*\n-----END PRIVATE KEY-----\n$/);
    expect(old.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[^]*\n-----END PRIVATE KEY-----\n$/);
  });

  it.each(Object.keys(requests))(
    '%s: openssl verify accepts it for its purpose under every CA',
    async (reqName) => {
      const req = requests[reqName]!;
      const purposes =
        req.usage === 'server'
          ? ['sslserver']
          : req.usage === 'client'
            ? ['sslclient']
            : ['sslserver', 'sslclient'];
      for (const [caName, ca] of Object.entries(cas)) {
        const leaf = await issueCertificate(ca, req);
        for (const purpose of purposes) {
          const r = await opensslVerify(ca.certPem, leaf.certPem, purpose);
          expect([caName, purpose, r.exitCode, r.stdout.trim()]).toEqual([
            caName,
            purpose,
            0,
            expect.stringMatching(/: OK$/),
          ]);
        }
      }
    },
  );

  it('a certificate of CA A does not verify against CA B, even with the same subject name', async () => {
    const a = await opensslCa(
      'twin-a',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      'pkcs8',
      'twin',
    );
    const b = await opensslCa(
      'twin-b',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      'pkcs8',
      'twin',
    );
    expect(new X509Certificate(a.certPem).subject).toBe(new X509Certificate(b.certPem).subject);
    const leaf = await issueCertificate(a, requests['server and client']!);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.verify(new X509Certificate(a.certPem).publicKey)).toBe(true);
    expect(cert.verify(new X509Certificate(b.certPem).publicKey)).toBe(false);
    expect((await opensslVerify(a.certPem, leaf.certPem)).exitCode).toBe(0);
    const wrong = await opensslVerify(b.certPem, leaf.certPem);
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr + wrong.stdout).toMatch(/error/);
  });

  it("the authority key identifier is the CA's own subject key identifier, also one not derived from its key", async () => {
    const ca = await opensslCa(
      'own-ski',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      'pkcs8',
      'own ski',
      '00112233445566778899aabbccddeeff',
    );
    const leaf = await issueCertificate(ca, requests['server and client']!);
    const text = (await execa('openssl', ['x509', '-noout', '-text'], { input: leaf.certPem })).stdout;
    expect(text).toMatch(
      /Authority Key Identifier:\s*(keyid:)?00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF/,
    );
    // openssl picks the issuer by it: with the key's SHA-1 instead, the chain would not verify.
    expect((await opensslVerify(ca.certPem, leaf.certPem)).exitCode).toBe(0);
  });

  it('a CA certificate with a multi-attribute subject is the issuer byte for byte', async () => {
    const ca = cas['openssl RSA-2048']!;
    const leaf = await issueCertificate(ca, { commonName: 'x', usage: 'client' });
    expect(new X509Certificate(leaf.certPem).issuer).toBe('C=DE\nO=knet test\nCN=knet rsa CA');
    expect((await tbsFields(leaf.certPem)).issuer).toEqual((await tbsFields(ca.certPem)).subject);
  });
});

describe('issueCertificate names', () => {
  it('encodes every IPv6 form as node reads it back, IPv4-mapped ones included', async () => {
    const ips = [
      '::',
      '::1',
      '2001:db8::',
      '2001:db8:0:1:2:3:4:5',
      'fe80::1:2',
      '::ffff:192.0.2.1',
      '64:ff9b::198.51.100.9',
    ];
    const leaf = await issueCertificate(cas['peculiar P-256']!, {
      commonName: 'v6',
      ipAddresses: ips,
      usage: 'server',
    });
    const cert = new X509Certificate(leaf.certPem);
    for (const ip of ips) expect(cert.checkIP(ip)).toBe(ip);
    expect(cert.checkIP('2001:db8::1')).toBeUndefined();
    expect(await opensslText(leaf.certPem)).toContain('IP Address:0:0:0:0:0:FFFF:C000:201');
  });

  it.each([['1.2.3'], ['01.2.3.4'], ['1.2.3.256'], ['fe80::1%eth0'], ['localhost'], ['']])(
    'refuses the IP address %p',
    async (ip) => {
      await expect(
        issueCertificate(cas['peculiar P-256']!, { commonName: 'x', ipAddresses: [ip], usage: 'server' }),
      ).rejects.toThrow(/is not an IPv4 or IPv6 address/);
    },
  );

  it.each([['bücher.example'], [''], ['tab\there']])('refuses the DNS name %p', async (name) => {
    await expect(
      issueCertificate(cas['peculiar P-256']!, { commonName: 'x', dnsNames: [name], usage: 'server' }),
    ).rejects.toThrow(/not printable ASCII/);
  });

  it('takes subject values literally, PrintableString when they allow it and UTF8String otherwise', async () => {
    const leaf = await issueCertificate(cas['peculiar P-256']!, {
      commonName: 'a "quoted" \\ #name',
      organizations: ['Grüße', 'plain-org'],
      usage: 'client',
    });
    expect(new X509Certificate(leaf.certPem).toLegacyObject().subject).toEqual({
      CN: 'a "quoted" \\ #name',
      O: ['Grüße', 'plain-org'],
    });
    const dump = (await execa('openssl', ['asn1parse', '-inform', 'DER'], { input: der(leaf.certPem) }))
      .stdout;
    expect(dump).toMatch(/UTF8STRING\s+:a "quoted"/);
    expect(dump).toMatch(/PRINTABLESTRING\s+:plain-org/);
  });

  it('refuses an empty common name and a validity X.509 cannot hold', async () => {
    const ca = cas['peculiar P-256']!;
    await expect(issueCertificate(ca, { commonName: '', usage: 'server' })).rejects.toThrow(/commonName/);
    await expect(issueCertificate(ca, { commonName: 'x', usage: 'server', validityDays: 0 })).rejects.toThrow(
      RangeError,
    );
    await expect(
      issueCertificate(ca, { commonName: 'x', usage: 'server', validityDays: 10_000_000 }),
    ).rejects.toThrow(/year 9999/);
  });

  it('writes GeneralizedTime from 2050 on, UTCTime before, both to the second', async () => {
    const leaf = await issueCertificate(cas['peculiar P-256']!, {
      commonName: 'long',
      usage: 'server',
      validityDays: 40_000,
    });
    const dump = (await execa('openssl', ['asn1parse', '-inform', 'DER'], { input: der(leaf.certPem) }))
      .stdout;
    expect(dump).toMatch(/UTCTIME\s+:\d{12}Z/);
    expect(dump).toMatch(/GENERALIZEDTIME\s+:\d{14}Z/);
    const cert = new X509Certificate(leaf.certPem);
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe((40_000 * 86_400 + 300) * 1000);
  });

  it('gives every certificate its own key and serial number', async () => {
    const ca = cas['openssl P-384']!;
    const [a, b] = await Promise.all(
      [1, 2].map(() => issueCertificate(ca, { commonName: 'same', usage: 'server' })),
    );
    expect(a!.keyPem).not.toBe(b!.keyPem);
    expect(new X509Certificate(a!.certPem).serialNumber).not.toBe(
      new X509Certificate(b!.certPem).serialNumber,
    );
  });
});

describe('issued certificates in a real TLS handshake', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server = undefined;
  });

  it.each(CA_NAMES)('%s CA: mutual TLS with an issued server and client certificate', async (caName) => {
    const ca = cas[caName]!;
    const serving = await issueCertificate(ca, {
      commonName: 'tower',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
      usage: 'server',
    });
    const client = await issueCertificate(ca, {
      commonName: 'knet-tower:alpha',
      organizations: ['knet-tower'],
      usage: 'client',
    });
    const seen = await handshake(ca, serving, ca, client);
    expect(seen).toEqual({
      clientAuthorized: true,
      serverAuthorized: true,
      peer: 'knet-tower:alpha',
      reply: 'ok',
    });
  });

  it('a server trusting one CA refuses a client certificate of another', async () => {
    const ca = cas['openssl P-256']!;
    const serving = await issueCertificate(ca, {
      commonName: 'tower',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const stranger = await issueCertificate(cas['openssl RSA-2048']!, {
      commonName: 'knet-tower:alpha',
      usage: 'client',
    });
    const seen = await handshake(ca, serving, ca, stranger);
    expect(seen.serverAuthorized).toBe(false);
    expect(seen.reply).not.toBe('ok');
  });

  /** Serves `serving` trusting `clientCa` (client certificates required), connects with `client` to 127.0.0.1. */
  async function handshake(
    serverCa: CertificateAuthority,
    serving: CertificateAndKey,
    clientCa: CertificateAuthority,
    client: CertificateAndKey,
  ): Promise<{ clientAuthorized: boolean; serverAuthorized: boolean; peer?: string; reply: string }> {
    let serverAuthorized = false;
    let peer: string | undefined;
    const s = createServer(
      {
        cert: serving.certPem,
        key: serving.keyPem,
        ca: [clientCa.certPem],
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket: TLSSocket) => {
        serverAuthorized = socket.authorized;
        const cn = socket.getPeerCertificate().subject?.CN;
        peer = Array.isArray(cn) ? cn.join(',') : cn;
        socket.end('ok');
      },
    );
    server = s;
    s.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    const port = (s.address() as { port: number }).port;
    return new Promise((resolve) => {
      let reply = '';
      let clientAuthorized = false;
      const socket = connect({
        host: '127.0.0.1',
        port,
        ca: [serverCa.certPem],
        cert: client.certPem,
        key: client.keyPem,
      });
      socket.on('secureConnect', () => (clientAuthorized = socket.authorized));
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      socket.on('error', (e) => (reply = `error: ${e.message}`));
      socket.on('close', () =>
        resolve({ clientAuthorized, serverAuthorized, ...(peer ? { peer } : {}), reply }),
      );
    });
  }
});

// ---- helpers ------------------------------------------------------------------------------------

const PEM_CERTIFICATE =
  /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----$/;

/** A CA made by openssl (DN C=DE, O=knet test, CN=knet <name> CA), its key written as `keyForm`. */
async function opensslCa(
  name: string,
  keyArgs: string[],
  keyForm: 'pkcs8' | 'ec' | 'rsa',
  cn = `knet ${name} CA`,
  /** The CA's subjectKeyIdentifier: openssl's SHA-1 of the key (`hash`), or these hex bytes. */
  ski = 'hash',
): Promise<CertificateAuthority> {
  const config = join(dir, `${name}.cnf`);
  await writeFile(
    config,
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = v3_ca',
      'prompt = no',
      '[dn]',
      'C = DE',
      'O = knet test',
      `CN = ${cn}`,
      '[v3_ca]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      `subjectKeyIdentifier = ${ski}`,
      'authorityKeyIdentifier = keyid:always',
    ].join('\n'),
  );
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await execa('openssl', [
    'req',
    '-x509',
    '-config',
    config,
    ...keyArgs,
    '-nodes',
    '-days',
    '30',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  if (keyForm !== 'pkcs8')
    await execa('openssl', [
      keyForm,
      '-in',
      key,
      '-out',
      key,
      ...(keyForm === 'rsa' ? ['-traditional'] : []),
    ]);
  const keyPem = await readFile(key, 'utf8');
  expect(keyPem).toMatch(
    keyForm === 'ec' ? /EC PRIVATE KEY/ : keyForm === 'rsa' ? /RSA PRIVATE KEY/ : /BEGIN PRIVATE KEY/,
  );
  return loadCertificateAuthority(await readFile(cert, 'utf8'), keyPem);
}

function der(certPem: string): Buffer {
  return new X509Certificate(certPem).raw;
}

/** The TBSCertificate's fields, each as its DER bytes (tag and length included), as openssl asn1parse splits them. */
async function tbsFields(
  certPem: string,
): Promise<
  Record<
    | 'version'
    | 'serialNumber'
    | 'signature'
    | 'issuer'
    | 'validity'
    | 'subject'
    | 'subjectPublicKeyInfo'
    | 'extensions',
    Buffer
  >
> {
  const bytes = der(certPem);
  const { stdout } = await execa('openssl', ['asn1parse', '-inform', 'DER'], { input: bytes });
  const elements = stdout.split('\n').flatMap((line) => {
    const m = /^\s*(\d+):d=(\d+)\s+hl=\s*(\d+)\s+l=\s*(\d+)/.exec(line);
    return m
      ? [{ offset: Number(m[1]), depth: Number(m[2]), header: Number(m[3]), length: Number(m[4]) }]
      : [];
  });
  const tbsEnd = elements.findIndex((e, i) => i > 1 && e.depth === 1);
  const fields = elements
    .slice(2, tbsEnd)
    .filter((e) => e.depth === 2)
    .map((e) => bytes.subarray(e.offset, e.offset + e.header + e.length));
  expect(fields).toHaveLength(8);
  const [version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, extensions] =
    fields as Buffer[];
  return {
    version: version!,
    serialNumber: serialNumber!,
    signature: signature!,
    issuer: issuer!,
    validity: validity!,
    subject: subject!,
    subjectPublicKeyInfo: subjectPublicKeyInfo!,
    extensions: extensions!,
  };
}

/** openssl's text form without serial, validity, public key and signature: what two issuances share. */
async function opensslText(certPem: string): Promise<string> {
  const { stdout } = await execa(
    'openssl',
    ['x509', '-noout', '-text', '-certopt', 'no_serial,no_validity,no_pubkey,no_sigdump'],
    { input: certPem },
  );
  return stdout;
}

async function opensslVerify(
  caPem: string,
  leafPem: string,
  purpose?: string,
): Promise<{ exitCode?: number; stdout: string; stderr: string }> {
  const name = randomBytes(6).toString('hex');
  const caFile = join(dir, `verify-ca-${name}.pem`);
  const leafFile = join(dir, `verify-leaf-${name}.pem`);
  await writeFile(caFile, caPem);
  await writeFile(leafFile, leafPem);
  const r = await execa(
    'openssl',
    ['verify', '-CAfile', caFile, ...(purpose ? ['-purpose', purpose] : []), leafFile],
    { reject: false },
  );
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** issueCertificate as it was before it wrote DER itself (@peculiar/x509's generator), for comparison. */
async function peculiarIssueCertificate(
  ca: CertificateAuthority,
  req: CertificateRequest,
): Promise<CertificateAndKey> {
  const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const notBefore = new Date(now - 5 * 60 * 1000);
  const notAfter = new Date(now + (req.validityDays ?? 365) * 86_400_000);
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
  const serial = randomBytes(16);
  serial.writeUInt8(serial.readUInt8(0) & 0x7f, 0);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString('hex'),
    subject: new x509.Name([{ CN: [req.commonName] }, ...(req.organizations ?? []).map((o) => ({ O: [o] }))]),
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    signingAlgorithm: ca.algorithm,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
}
