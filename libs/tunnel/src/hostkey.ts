import { createHash } from 'node:crypto';
import { utils } from 'ssh2';

export interface HostKey {
  /** OpenSSH private key (PEM-like "OPENSSH PRIVATE KEY"), for ssh2's `hostKeys`. */
  privateKey: string;
  /** `ssh-ed25519 AAAA…` */
  publicKey: string;
  /** `SHA256:<base64>` as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/** A new ed25519 SSH host key. */
export function generateHostKey(comment = 'knet-tower-proxy'): HostKey {
  const { private: privateKey, public: publicKey } = utils.generateKeyPairSync('ed25519', { comment });
  return { privateKey, publicKey, fingerprint: fingerprintOfPublicKey(publicKey) };
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
