import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSshKeyPair, publicKeyProblem } from './ssh-key';

describe('generateSshKeyPair', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'capi-packet-ssh-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is a key pair OpenSSH's own ssh-keygen reads: the public key it derives from the private one is ours", () => {
    const pair = generateSshKeyPair('capi-packet@test1-ab12c');
    const file = join(dir, 'id_ed25519');
    writeFileSync(file, pair.privateKey, { mode: 0o600 });
    const derived = spawnSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' });
    expect([derived.status, derived.stderr]).toEqual([0, '']);
    expect(derived.stdout.trim()).toBe(pair.publicKey);
    writeFileSync(`${file}.pub`, `${pair.publicKey}\n`);
    const fingerprint = spawnSync('ssh-keygen', ['-l', '-f', `${file}.pub`], { encoding: 'utf8' });
    expect(fingerprint.stdout).toMatch(/^256 SHA256:\S+ capi-packet@test1-ab12c \(ED25519\)\n$/);
  });

  it('makes a new key each time', () => {
    expect(generateSshKeyPair('a').publicKey).not.toBe(generateSshKeyPair('a').publicKey);
  });
});

describe('publicKeyProblem', () => {
  const pair = generateSshKeyPair('me@host');
  it.each<[string, string, unknown]>([
    ['an ed25519 line', pair.publicKey, undefined],
    ['an RSA line with a comment', 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ== bob@laptop', undefined],
    ['an ECDSA line without comment', 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY=', undefined],
    ['a private key', pair.privateKey, 'is a private key: give the public key line (the .pub file)'],
    ['two lines', `${pair.publicKey}\n${pair.publicKey}`, 'must be one public key line'],
    ['a path', '/home/me/.ssh/id_ed25519.pub', expect.stringMatching(/^must be a public key line/)],
  ])('%s', (_what, text, want) => {
    expect(publicKeyProblem(text)).toEqual(want);
  });
});
