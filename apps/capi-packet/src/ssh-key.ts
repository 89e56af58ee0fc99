/**
 * An ed25519 SSH key pair in OpenSSH's own formats, made with node:crypto: the private key as
 * `ssh-keygen -t ed25519 -N ''` writes it (openssh-key-v1, unencrypted) and the public key as an
 * authorized_keys line. The seed's generate-yaml.sh ran `ssh-keygen -t rsa` into out/packet/id_rsa
 * when SSH_KEY was unset; this needs no ssh-keygen on the machine.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';

export interface SshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` …, for a file of mode 0600. */
  privateKey: string;
  /** `ssh-ed25519 AAAA… <comment>` */
  publicKey: string;
}

const KEY_TYPE = 'ssh-ed25519';

/** SSH's wire `string`: a uint32 length, then the bytes. */
function sshString(data: Buffer | string): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data) : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A new ed25519 key pair; `comment` ends the public key line and is stored in the private key. */
export function generateSshKeyPair(comment: string): SshKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d ?? '', 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const publicBlob = Buffer.concat([sshString(KEY_TYPE), sshString(pub)]);
  const check = randomBytes(4).readUInt32BE();
  let secret = Buffer.concat([
    uint32(check),
    uint32(check),
    sshString(KEY_TYPE),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  // Padded with 1, 2, 3… to the cipher's block size (8 for "none").
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const blob = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    sshString('none'),
    sshString('none'),
    sshString(''),
    uint32(1),
    sshString(publicBlob),
    sshString(secret),
  ]);
  const lines = blob.toString('base64').match(/.{1,70}/g) ?? [];
  return {
    privateKey: [
      '-----BEGIN OPENSSH PRIVATE KEY-----',
      ...lines,
      '-----END OPENSSH PRIVATE KEY-----',
      '',
    ].join('\n'),
    publicKey: `${KEY_TYPE} ${publicBlob.toString('base64')} ${comment}`,
  };
}

/** Key types Equinix Metal accepts in a device's ssh_keys, as authorized_keys lines start. */
const PUBLIC_KEY =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

/**
 * Why `text` is not one public key line (undefined when it is). The messages never repeat the
 * text: a private key given by mistake must not end up in a terminal or a log.
 */
export function publicKeyProblem(text: string): string | undefined {
  if (text.includes('PRIVATE KEY')) return 'is a private key: give the public key line (the .pub file)';
  if (text.trim().includes('\n')) return 'must be one public key line';
  if (!PUBLIC_KEY.test(text.trim())) {
    return 'must be a public key line such as "ssh-ed25519 AAAA… user@host", e.g. SSH_KEY="$(cat ~/.ssh/id_ed25519.pub)"';
  }
  return undefined;
}
