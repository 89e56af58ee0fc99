import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { utils } from 'ssh2';

export interface HostKey {
  /** OpenSSH private key (PEM-like "OPENSSH PRIVATE KEY"), for ssh2's `hostKeys`. */
  privateKey: string;
  /** `ssh-ed25519 AAAA…` */
  publicKey: string;
  /** `SHA256:<base64>` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/**
 * A new ed25519 SSH host key in OpenSSH's unencrypted `openssh-key-v1` format.
 *
 * Node's crypto makes the key; the encoding is ours because ssh2's `generateKeyPairSync('ed25519')`
 * strips leading zero bytes from the public key, so about one key in 256 comes out malformed and
 * ssh2 itself then refuses it (mscdex/ssh2#1390, #1513).
 */
export function generateHostKey(comment = 'knet-tower-proxy'): HostKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // Raw 32-byte halves: the last 32 bytes of the SPKI and PKCS#8 DER encodings.
  const pub = publicKey.export({ type: 'spki', format: 'der' }).subarray(-32);
  const seed = privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(-32);
  return encodeOpenSshEd25519(seed, pub, comment);
}

/** Encodes an ed25519 key pair (32-byte seed and public key) as OpenSSH writes it with no passphrase. */
export function encodeOpenSshEd25519(seed: Buffer, pub: Buffer, comment: string): HostKey {
  if (seed.length !== 32 || pub.length !== 32)
    throw new Error('ed25519 seed and public key must be 32 bytes');
  const str = (b: Buffer | string) => {
    const buf = typeof b === 'string' ? Buffer.from(b) : b;
    const len = Buffer.alloc(4);
    len.writeUInt32BE(buf.length);
    return Buffer.concat([len, buf]);
  };
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const blob = Buffer.concat([str('ssh-ed25519'), str(pub)]);
  const check = randomBytes(4).readUInt32BE();
  let priv = Buffer.concat([
    u32(check),
    u32(check),
    str('ssh-ed25519'),
    str(pub),
    str(Buffer.concat([seed, pub])),
    str(comment),
  ]);
  // Pad to the cipher block size ("none": 8) with 1, 2, 3, …
  const pad = (8 - (priv.length % 8)) % 8;
  priv = Buffer.concat([priv, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    str('none'),
    str('none'),
    str(''),
    u32(1),
    str(blob),
    str(priv),
  ]);
  const lines = body.toString('base64').match(/.{1,70}/g) ?? [];
  const privateKey = `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`;
  const publicKey = `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
  return { privateKey, publicKey, fingerprint: fingerprintOfBlob(blob) };
}

/** Loads a private host key and derives its public half and fingerprint; throws one line if invalid. */
export function loadHostKey(privateKey: string): HostKey {
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`SSH host key is not valid: ${parsed.message}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || !key.isPrivateKey()) throw new Error('SSH host key is not a private key');
  const blob = key.getPublicSSH();
  return {
    privateKey,
    publicKey: `${key.type} ${blob.toString('base64')}`,
    fingerprint: fingerprintOfBlob(blob),
  };
}

/** `SHA256:<unpadded base64 of sha256(key blob)>`, OpenSSH's format. */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

export function fingerprintOfPublicKey(publicKeyLine: string): string {
  const b64 = publicKeyLine.trim().split(/\s+/)[1];
  if (!b64) throw new Error('public key must look like "ssh-ed25519 AAAA…"');
  return fingerprintOfBlob(Buffer.from(b64, 'base64'));
}

/**
 * Normalizes a user-given fingerprint: accepts `SHA256:xxx`, bare base64 with or without padding.
 * Throws one line when it is not a SHA-256 fingerprint.
 */
export function normalizeFingerprint(input: string): string {
  const bare = input
    .trim()
    .replace(/^SHA256:/i, '')
    .replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]{43}$/.test(bare)) {
    throw new Error(
      `fingerprint must be a SHA-256 fingerprint like SHA256:${'x'.repeat(43)} (as the proxy logs it), got "${input}"`,
    );
  }
  return `SHA256:${bare}`;
}
