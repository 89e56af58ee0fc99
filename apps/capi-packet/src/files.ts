/**
 * The files `capi-packet generate` reads and writes: the bundle's components, the SSH key pair it
 * makes or reuses, and the refusal to overwrite anything without `-f`. Everything is checked before
 * the first file is written, and a file's mode is set even when it existed (writeFile's mode only
 * applies to new files).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '@knet/runtime';
import { PRIVATE, PUBLIC, type OutputFile } from './generate';
import { generateSshKeyPair, publicKeyProblem } from './ssh-key';

export const KEY_FILE = 'id_ed25519';

/** Where the build puts the clusterctl bundle: next to the bundled main.js (nx build's assets). */
export const SHIPPED_COMPONENTS = join(__dirname, 'clusterctl', 'infrastructure-components.yaml');

/** infrastructure-components.yaml from `path`, else the one shipped with the CLI. */
export function readComponents(path: string | undefined): string {
  const file = path ?? SHIPPED_COMPONENTS;
  if (!existsSync(file)) {
    throw new UsageError(
      `no ${file}: give --components <file> (charts/capi-packet-manager/clusterctl/infrastructure-components.yaml in the knet repository)`,
    );
  }
  return readFileSync(file, 'utf8');
}

export interface SshKeyChoice {
  publicKey: string;
  /** The key pair to write, when a new one was made. */
  files: OutputFile[];
  /** Where the key came from, for the summary. */
  source: 'given' | 'reused' | 'generated';
}

/**
 * The devices' SSH key: `given` (SSH_KEY), else the pair already in `dir` (as the seed reused
 * out/packet/id_rsa), else a new ed25519 pair for `dir`.
 */
export function chooseSshKey(dir: string, given: string | undefined, comment: string): SshKeyChoice {
  if (given) return { publicKey: given, files: [], source: 'given' };
  const priv = join(dir, KEY_FILE);
  const pub = `${priv}.pub`;
  if (existsSync(priv) || existsSync(pub)) {
    if (!existsSync(priv) || !existsSync(pub)) {
      throw new UsageError(
        `${existsSync(priv) ? priv : pub} exists without ${existsSync(priv) ? pub : priv}: remove it or give SSH_KEY`,
      );
    }
    const publicKey = readFileSync(pub, 'utf8').trim();
    const problem = publicKeyProblem(publicKey);
    if (problem) throw new UsageError(`${pub} ${problem}`);
    return { publicKey, files: [], source: 'reused' };
  }
  const pair = generateSshKeyPair(comment);
  return {
    publicKey: pair.publicKey,
    files: [
      { name: KEY_FILE, content: pair.privateKey, mode: PRIVATE, what: 'SSH private key of the devices' },
      { name: `${KEY_FILE}.pub`, content: `${pair.publicKey}\n`, mode: PUBLIC, what: 'its public key' },
    ],
    source: 'generated',
  };
}

/**
 * Writes `files` into `dir` (created if missing). Without `force`, refuses when any of them exists,
 * before writing anything. Returns the paths written.
 */
export function writeFiles(dir: string, files: readonly OutputFile[], force: boolean): string[] {
  const paths = files.map((f) => join(dir, f.name));
  const existing = paths.filter((p) => existsSync(p));
  if (existing.length > 0 && !force) {
    const more = existing.length > 1 ? ` (and ${existing.length - 1} more)` : '';
    throw new UsageError(`${existing[0]} exists${more}: give -f to overwrite`);
  }
  mkdirSync(dir, { recursive: true });
  for (const f of files) {
    const path = join(dir, f.name);
    writeFileSync(path, f.content, { mode: f.mode });
    chmodSync(path, f.mode);
  }
  return paths;
}

/** What `generate` prints: one line per file, never a secret. */
export function summary(dir: string, files: readonly OutputFile[], key: SshKeyChoice): string[] {
  const lines = files.map(
    (f) => `wrote ${join(dir, f.name)} (${(f.mode & 0o777).toString(8).padStart(4, '0')}): ${f.what}`,
  );
  if (key.source === 'reused') lines.push(`using the SSH key pair already in ${join(dir, KEY_FILE)}`);
  return lines;
}
