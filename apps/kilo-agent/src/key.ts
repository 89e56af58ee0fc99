import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  generateWireGuardKeyPair,
  isWireGuardKey,
  wireGuardPublicKey,
  type WireGuardKeyPair,
} from '@knet/crypto';
import type { Logger } from '@knet/runtime';

/**
 * Kilo's key handling (pkg/mesh/mesh.go `New`): the private key lives in one file (default
 * /var/lib/kilo/key, on a hostPath so it survives restarts — external Peers are configured with
 * its public key). A missing or invalid file gets a new key, written 0600 in a 0700 directory;
 * the write is atomic (temp file + rename), so a crash never leaves half a key. The key is
 * never logged.
 */
export async function loadOrCreateKey(path: string, logger: Logger): Promise<WireGuardKeyPair> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let text: string | undefined;
  try {
    text = (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read the WireGuard key ${path}: ${(e as Error).message}`);
    }
  }
  if (text !== undefined && isWireGuardKey(text)) {
    await chmod(path, 0o600);
    return { privateKey: text, publicKey: wireGuardPublicKey(text) };
  }
  logger.warn(
    { path, reason: text === undefined ? 'missing' : 'not a WireGuard key' },
    'kilo-agent: no private key found on disk; generating one now',
  );
  const pair = generateWireGuardKeyPair();
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, pair.privateKey, { mode: 0o600 });
  await rename(tmp, path);
  return pair;
}
