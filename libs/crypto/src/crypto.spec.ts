import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import {
  certificateFingerprintSha256,
  constantTimeEqual,
  createCertificateAuthority,
  decodeWireGuardKey,
  describeCertificate,
  generateWireGuardKeyPair,
  generateWireGuardPresharedKey,
  isSignedBy,
  isWireGuardKey,
  issueCertificate,
  loadCertificateAuthority,
  randomToken,
  renderKubeconfig,
  wireGuardPublicKey,
} from './index';

describe('tokens', () => {
  it('are random, of the requested size and encoding', () => {
    const a = randomToken();
    const b = randomToken();
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
    expect(randomToken(16, 'base64url')).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(() => randomToken(8)).toThrow(/16 to 1024/);
  });

  it.each([
    ['secret', 'secret', true],
    ['secret', 'secreT', false],
    ['secret', 'secret2', false],
    ['', '', true],
    ['', 'x', false],
  ])('constantTimeEqual(%p, %p) = %p', (a, b, want) => {
    expect(constantTimeEqual(a, b)).toBe(want);
    expect(constantTimeEqual(Buffer.from(a), b)).toBe(want);
  });
});

describe('WireGuard keys', () => {
  it('generates keys that wg(8) accepts and derives the same public key as wg pubkey', () => {
    const kp = generateWireGuardKeyPair();
    expect(isWireGuardKey(kp.privateKey)).toBe(true);
    expect(isWireGuardKey(kp.publicKey)).toBe(true);
    expect(wireGuardPublicKey(kp.privateKey)).toBe(kp.publicKey);
    const fromWg = execFileSync('wg', ['pubkey'], { input: kp.privateKey + '\n' })
      .toString()
      .trim();
    expect(fromWg).toBe(kp.publicKey);
  });

  it('derives the public key of a key made by wg genkey', () => {
    const priv = execFileSync('wg', ['genkey']).toString().trim();
    const pub = execFileSync('wg', ['pubkey'], { input: priv + '\n' })
      .toString()
      .trim();
    expect(wireGuardPublicKey(priv)).toBe(pub);
  });

  it('validates key syntax', () => {
    expect(isWireGuardKey(generateWireGuardPresharedKey())).toBe(true);
    expect(isWireGuardKey('abc')).toBe(false);
    // 32 bytes need 43 significant chars; the last must leave the low 2 bits zero.
    expect(isWireGuardKey('A'.repeat(43) + 'B=')).toBe(false);
    expect(() => decodeWireGuardKey('nope', 'peer public key')).toThrow(/invalid WireGuard peer public key/);
  });
});

describe('PKI', () => {
  it('issues server and client certificates that chain to the CA, as Node X509 verifies them', async () => {
    const ca = await createCertificateAuthority('knet test CA');
    const server = await issueCertificate(ca, {
      commonName: 'proxy',
      dnsNames: ['proxy.example.svc', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
      usage: 'server',
    });
    const client = await issueCertificate(ca, {
      commonName: 'admin',
      organizations: ['system:masters', 'ops'],
      usage: 'client',
    });
    expect(await isSignedBy(server.certPem, ca.certPem)).toBe(true);
    expect(await isSignedBy(client.certPem, ca.certPem)).toBe(true);

    const other = await createCertificateAuthority('other CA');
    expect(await isSignedBy(client.certPem, other.certPem)).toBe(false);

    const s = new X509Certificate(server.certPem);
    expect(s.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(s.checkHost('proxy.example.svc')).toBe('proxy.example.svc');
    expect(s.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(createPublicKey(server.keyPem).equals(s.publicKey)).toBe(true);

    const d = describeCertificate(client.certPem);
    expect(d.subject).toBe('CN=admin, O=system:masters, O=ops');
    expect(d.issuer).toBe('CN=knet test CA');
    expect(certificateFingerprintSha256(ca.certPem)).toBe(new X509Certificate(ca.certPem).fingerprint256);
  });

  it('round-trips a CA through PEM and rejects mismatched or non-CA material', async () => {
    const ca = await createCertificateAuthority('round trip');
    const loaded = await loadCertificateAuthority(ca.certPem, ca.keyPem);
    const leaf = await issueCertificate(loaded, { commonName: 'x', usage: 'server-and-client' });
    expect(await isSignedBy(leaf.certPem, ca.certPem)).toBe(true);

    const other = await createCertificateAuthority('other');
    await expect(loadCertificateAuthority(ca.certPem, other.keyPem)).rejects.toThrow(/does not match/);
    await expect(loadCertificateAuthority(leaf.certPem, leaf.keyPem)).rejects.toThrow(/is not a CA/);
    await expect(loadCertificateAuthority('garbage', ca.keyPem)).rejects.toThrow(
      /not a valid PEM certificate/,
    );
    await expect(loadCertificateAuthority(ca.certPem, 'garbage')).rejects.toThrow(
      /not a valid PEM private key/,
    );
  });
});

describe('renderKubeconfig', () => {
  it('renders a kubeconfig with embedded credentials', () => {
    const out = renderKubeconfig({
      name: 'member-1',
      server: 'https://127.0.0.1:6443',
      caPem: 'CA',
      credentials: { token: 'tok"en' },
      namespace: 'default',
    });
    expect(out).toMatchSnapshot();
  });

  it('refuses an https server without a CA and a non-URL server', () => {
    expect(() => renderKubeconfig({ name: 'a', server: 'https://x', credentials: { token: 't' } })).toThrow(
      /needs caPem/,
    );
    expect(() => renderKubeconfig({ name: 'a', server: 'x:1', credentials: { token: 't' } })).toThrow(
      /http\(s\) URL/,
    );
  });
});
