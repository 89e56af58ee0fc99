import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateWireGuardKeyPair, isWireGuardKey } from '@knet/crypto';
import { RecordingLogger } from '@knet/runtime';
import { loadOrCreateKey } from './key';

describe('loadOrCreateKey (Kilo: /var/lib/kilo/key)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kilo-key-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a key 0600 in a 0700 directory when missing, and keeps it across restarts', async () => {
    const path = join(dir, 'kilo', 'key');
    const logger = new RecordingLogger();
    const first = await loadOrCreateKey(path, logger);
    expect(isWireGuardKey(first.privateKey)).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'kilo')).mode & 0o777).toBe(0o700);
    expect(readFileSync(path, 'utf8')).toBe(first.privateKey);
    const again = await loadOrCreateKey(path, logger);
    expect(again).toEqual(first);
    // The warning says why, and never carries the key.
    expect(logger.lines).toHaveLength(1);
    expect(JSON.stringify(logger.lines)).not.toContain(first.privateKey);
  });

  it('reads a key Kilo wrote (with a trailing newline), and tightens its mode', async () => {
    const path = join(dir, 'key');
    const pair = generateWireGuardKeyPair();
    writeFileSync(path, `${pair.privateKey}\n`, { mode: 0o644 });
    expect(await loadOrCreateKey(path, new RecordingLogger())).toEqual(pair);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('replaces an invalid key file with a new key', async () => {
    const path = join(dir, 'key');
    writeFileSync(path, 'not a key');
    const logger = new RecordingLogger();
    const pair = await loadOrCreateKey(path, logger);
    expect(readFileSync(path, 'utf8')).toBe(pair.privateKey);
    expect(logger.lines[0]?.fields).toMatchObject({ reason: 'not a WireGuard key' });
  });
});
