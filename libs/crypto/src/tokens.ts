import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export type TokenEncoding = 'hex' | 'base64url';

/**
 * A token from the OS CSPRNG. `bytes` of entropy (default 32 = 256 bits), encoded as hex
 * (default, safe in every header/URL/label) or base64url.
 */
export function randomToken(bytes = 32, encoding: TokenEncoding = 'hex'): string {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 1024) {
    throw new RangeError(`randomToken: bytes must be an integer from 16 to 1024, got ${bytes}`);
  }
  return randomBytes(bytes).toString(encoding);
}

/**
 * Compares two secrets in time independent of where they differ and of their lengths:
 * both sides are hashed to fixed-length digests first, then compared with timingSafeEqual.
 */
export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  // The digest comparison is constant-time; the length check guards against a (2^-256) collision.
  return timingSafeEqual(da, db) && byteLength(a) === byteLength(b);
}

function byteLength(v: string | Uint8Array): number {
  return typeof v === 'string' ? Buffer.byteLength(v) : v.byteLength;
}
