// The fresh-machine set-up (scripts/setup.sh): what `npm ci` needs from the lockfile, and the
// guard that stops set-up when package.json and package-lock.json disagree.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { workspaceRoot } from '../src';
import { inEachProject, scratchWorkspace } from './scratch-workspace';

jest.setTimeout(120_000);

const root = workspaceRoot();
interface LockEntry {
  optionalDependencies?: Record<string, string>;
  hasInstallScript?: boolean;
  link?: boolean;
}
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  dependencies: Record<string, string>;
  allowScripts?: Record<string, boolean>;
};

/** Where npm would find `name` for the package at `from` (nested first, then up to the root). */
function resolves(from: string, name: string): boolean {
  for (let at = from; ;) {
    if (lock.packages[`${at ? `${at}/` : ''}node_modules/${name}`]) return true;
    if (!at) return false;
    const i = at.lastIndexOf('/node_modules/');
    at = i < 0 ? '' : at.slice(0, i);
  }
}

describe('package-lock.json', () => {
  it('lists every optional dependency of every locked package, for every platform', () => {
    const missing: string[] = [];
    let optional = 0;
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        optional++;
        if (!resolves(path, name)) missing.push(`${path || '(root)'} -> ${name}`);
      }
    }
    expect(missing).toEqual([]);
    expect(optional).toBeGreaterThan(50); // esbuild, swc, nx… each have a binary per platform
    expect(lock.packages['node_modules/@swc/core-darwin-arm64']).toBeDefined();
  });

  it('every locked package with an install script has a recorded decision in allowScripts', () => {
    const undecided = Object.entries(lock.packages)
      .filter(([, e]) => e.hasInstallScript && !e.link)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length))
      .filter((name) => !(name in (pkg.allowScripts ?? {})));
    expect(undecided).toEqual([]);
  });
});

describe('native add-ons', () => {
  // What each approved install script builds (a new approval needs its check here). ssh2's
  // binding carries its AES-GCM and ChaCha20-Poly1305 ciphers (the tunnel's throughput);
  // cpu-features, its optional CPU probe, is not built and stays out of the bundles.
  const built: Record<string, string> = {
    ssh2: 'lib/protocol/crypto/build/Release/sshcrypto.node',
  };

  it('set-up approves exactly the install scripts whose output is checked here', () => {
    const approved = Object.entries(pkg.allowScripts ?? {})
      .filter(([, allowed]) => allowed)
      .map(([name]) => name)
      .sort();
    expect(approved).toEqual(Object.keys(built).sort());
  });

  it.each(Object.entries(built))('%s: its native binding was built by set-up', (name, file) => {
    const path = join(root, 'node_modules', name, file);
    const missing = existsSync(path)
      ? []
      : [
          `${path} is missing: node-gyp could not build it (it needs python3, make, g++ and node's headers; see scripts/npm-ci.sh); run 'npm run setup' and read npm's output`,
        ];
    expect(missing).toEqual([]);
  });
});

describe('scripts/npm-ci.sh (set-up’s npm install)', () => {
  // A copy of the workspace's manifests only: npm ci checks them before it installs anything.
  const scratch = scratchWorkspace('setup', {
    copy: [
      'package.json',
      'package-lock.json',
      'scripts/npm-ci.sh',
      ...['apps', 'libs'].flatMap((group) => inEachProject(group, 'package.json')),
    ],
  });

  it('stops with npm’s reason and what to run when package.json and the lockfile disagree', () => {
    const changed = { ...pkg, dependencies: { ...pkg.dependencies, ws: '8.18.0' } };
    writeFileSync(join(scratch.dir, 'package.json'), JSON.stringify(changed, null, 2));
    const r = spawnSync('bash', [join(scratch.dir, 'scripts/npm-ci.sh')], {
      encoding: 'utf8',
      env: { ...process.env, npm_config_cache: join(scratch.dir, 'npm-cache') },
    });
    expect(r.status).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toContain(
      `setup:   Invalid: lock file's ws@${pkg.dependencies['ws']} does not satisfy ws@8.18.0`,
    );
    expect(lines.at(-1)).toBe(
      "setup: package-lock.json does not match package.json (see above); run 'npm install' to update the lockfile, then commit package-lock.json",
    );
    expect(r.stderr).not.toMatch(/Usage:/); // npm's usage text is not repeated
    expect(readdirSync(scratch.dir)).not.toContain('node_modules'); // nothing was installed
  });
});
