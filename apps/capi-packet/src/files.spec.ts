import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, errorMessage } from '@knet/runtime';
import { chooseSshKey, readComponents, summary, writeFiles } from './files';
import { PRIVATE, PUBLIC, type OutputFile } from './generate';
import { generateSshKeyPair } from './ssh-key';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'capi-packet-files-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const mode = (path: string) => statSync(path).mode & 0o777;
const FILES: OutputFile[] = [
  { name: 'components.yaml', content: 'token\n', mode: PRIVATE, what: 'with the token' },
  { name: 'cluster.yaml', content: 'cluster\n', mode: PUBLIC, what: 'Cluster' },
];

/** The message of the UsageError `fn` throws. */
function refusal(fn: () => unknown): string {
  expect(fn).toThrow(UsageError);
  return errorMessage(captured(fn));
}
const captured = (fn: () => unknown): unknown => {
  try {
    return fn();
  } catch (e) {
    return e;
  }
};

describe('writeFiles', () => {
  it('creates the directory and writes each file with its mode', () => {
    const out = join(dir, 'out', 'packet');
    expect(writeFiles(out, FILES, false)).toEqual([join(out, 'components.yaml'), join(out, 'cluster.yaml')]);
    expect([mode(join(out, 'components.yaml')), mode(join(out, 'cluster.yaml'))]).toEqual([PRIVATE, PUBLIC]);
    expect(readFileSync(join(out, 'cluster.yaml'), 'utf8')).toBe('cluster\n');
  });

  it('without force refuses when any file exists, before writing any', () => {
    writeFileSync(join(dir, 'cluster.yaml'), 'mine\n');
    expect(refusal(() => writeFiles(dir, FILES, false))).toBe(
      `${join(dir, 'cluster.yaml')} exists: give -f to overwrite`,
    );
    expect(() => statSync(join(dir, 'components.yaml'))).toThrow();
    expect(readFileSync(join(dir, 'cluster.yaml'), 'utf8')).toBe('mine\n');
  });

  it('with force overwrites, and a file that existed world-readable becomes 0600 when it holds the token', () => {
    writeFileSync(join(dir, 'components.yaml'), 'old\n', { mode: 0o644 });
    writeFiles(dir, FILES, true);
    expect([readFileSync(join(dir, 'components.yaml'), 'utf8'), mode(join(dir, 'components.yaml'))]).toEqual([
      'token\n',
      PRIVATE,
    ]);
  });
});

describe('chooseSshKey', () => {
  it('SSH_KEY given: used as it is, nothing to write', () => {
    expect(chooseSshKey(dir, 'ssh-ed25519 AAAA me', 'c')).toEqual({
      publicKey: 'ssh-ed25519 AAAA me',
      files: [],
      source: 'given',
    });
  });

  it('none: a new pair, the private key 0600', () => {
    const key = chooseSshKey(dir, undefined, 'capi-packet@c1');
    expect(key.source).toBe('generated');
    expect(key.publicKey).toMatch(/^ssh-ed25519 \S+ capi-packet@c1$/);
    expect(key.files.map((f) => [f.name, f.mode])).toEqual([
      ['id_ed25519', PRIVATE],
      ['id_ed25519.pub', PUBLIC],
    ]);
    expect(key.files[1]!.content).toBe(`${key.publicKey}\n`);
  });

  it('a pair already in the directory is used again (as the seed reused out/packet/id_rsa)', () => {
    const pair = generateSshKeyPair('old@c1');
    writeFileSync(join(dir, 'id_ed25519'), pair.privateKey, { mode: 0o600 });
    writeFileSync(join(dir, 'id_ed25519.pub'), `${pair.publicKey}\n`);
    expect(chooseSshKey(dir, undefined, 'new@c1')).toEqual({
      publicKey: pair.publicKey,
      files: [],
      source: 'reused',
    });
  });

  it('half a pair is refused', () => {
    writeFileSync(join(dir, 'id_ed25519'), 'x', { mode: 0o600 });
    expect(refusal(() => chooseSshKey(dir, undefined, 'c'))).toBe(
      `${join(dir, 'id_ed25519')} exists without ${join(dir, 'id_ed25519.pub')}: remove it or give SSH_KEY`,
    );
  });
});

describe('readComponents', () => {
  it('reads the given file', () => {
    writeFileSync(join(dir, 'c.yaml'), 'kind: Namespace\n');
    expect(readComponents(join(dir, 'c.yaml'))).toBe('kind: Namespace\n');
  });

  it('without one, the shipped file; missing (run from the sources) it says what to give', () => {
    expect(refusal(() => readComponents(undefined))).toMatch(
      /^no \S+\/clusterctl\/infrastructure-components\.yaml: give --components <file> \(charts\/capi-packet-manager\/clusterctl\/infrastructure-components\.yaml in the knet repository\)$/,
    );
  });
});

describe('summary', () => {
  it('one line per file with its mode, and where a reused key is', () => {
    expect(summary('out', FILES, { publicKey: 'k', files: [], source: 'reused' })).toEqual([
      'wrote out/components.yaml (0600): with the token',
      'wrote out/cluster.yaml (0644): Cluster',
      'using the SSH key pair already in out/id_ed25519',
    ]);
  });
});
