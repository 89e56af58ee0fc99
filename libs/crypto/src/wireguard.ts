import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';

/** A WireGuard key pair: 32-byte raw Curve25519 keys in standard base64, as `wg genkey | wg pubkey`. */
export interface WireGuardKeyPair {
  privateKey: string;
  publicKey: string;
}

// DER prefix of a PKCS#8 X25519 private key; the raw 32-byte scalar follows it.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** Generates a key pair with Node's X25519 implementation (RFC 7748 clamping, same as `wg genkey`). */
export function generateWireGuardKeyPair(): WireGuardKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d;
  const x = publicKey.export({ format: 'jwk' }).x;
  if (!d || !x) throw new Error('generateWireGuardKeyPair: X25519 JWK export returned no key material');
  return { privateKey: b64urlToB64(d), publicKey: b64urlToB64(x) };
}

/** The public key of a base64 WireGuard private key, as `wg pubkey` prints it. */
export function wireGuardPublicKey(privateKey: string): string {
  const raw = decodeWireGuardKey(privateKey, 'private key');
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519_PREFIX, raw]),
    format: 'der',
    type: 'pkcs8',
  });
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (!x) throw new Error('wireGuardPublicKey: X25519 JWK export returned no key material');
  return b64urlToB64(x);
}

/** A random 32-byte preshared key, as `wg genpsk`. */
export function generateWireGuardPresharedKey(): string {
  return randomBytes(32).toString('base64');
}

/** True when `key` is standard base64 of exactly 32 bytes (44 characters ending in '='). */
export function isWireGuardKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(key);
}

/** Decodes a WireGuard key, throwing an error that names `what` when it is not a valid key. */
export function decodeWireGuardKey(key: string, what = 'key'): Buffer {
  if (!isWireGuardKey(key)) {
    throw new Error(
      `invalid WireGuard ${what}: expected 44 characters of base64 (32 bytes), as from 'wg genkey'`,
    );
  }
  return Buffer.from(key, 'base64');
}

function b64urlToB64(s: string): string {
  return Buffer.from(s, 'base64url').toString('base64');
}
