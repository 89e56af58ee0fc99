import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SHIPPED_BUNDLE_OPTIONS,
  appBundle,
  bundleOnce,
  bundleScript,
  sweepBundleDirs,
  workspaceRoot,
} from '../src';

describe('bundles as apps ship', () => {
  it('are ASCII (V8 would keep a two-byte copy of the source) and still print non-ASCII text', async () => {
    const out = await bundleScript(join(__dirname, 'fixtures/non-ascii.ts'));
    const bytes = readFileSync(out);
    const nonAscii = bytes.findIndex((b) => b > 0x7f);
    expect(nonAscii).toBe(-1);
    const run = spawnSync(process.execPath, [out], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toBe('grüße — “hi”\n');
  });

  it('use the options of nx.json’s build target, so tests and benches run what an image runs', () => {
    const nx = JSON.parse(readFileSync(join(workspaceRoot(), 'nx.json'), 'utf8')) as {
      targetDefaults: Record<string, { options?: { esbuildOptions?: Record<string, unknown> } }>;
    };
    const builds = Object.entries(nx.targetDefaults).filter(([, t]) => t.options?.esbuildOptions);
    expect(builds.length).toBeGreaterThan(0);
    for (const [, t] of builds) expect(t.options?.esbuildOptions).toMatchObject(SHIPPED_BUNDLE_OPTIONS);
  });
});

describe('bundleOnce and appBundle: one bundle per entry and process', () => {
  it('bundleOnce builds an entry once, whatever path leads to it', async () => {
    const fixture = join(__dirname, 'fixtures/non-ascii.ts');
    const first = bundleOnce(fixture);
    expect(bundleOnce(join(__dirname, 'fixtures/../fixtures/non-ascii.ts'))).toBe(first);
    const out = await first;
    expect(await bundleOnce(fixture)).toBe(out);
    expect(await bundleScript(fixture)).not.toBe(out); // bundleScript builds afresh every time
    expect(spawnSync(process.execPath, [out], { encoding: 'utf8' }).stdout).toBe('grüße — “hi”\n');
  });

  it('forgets a failed build, so the next call tries again', async () => {
    const missing = join(__dirname, 'fixtures/not-there.ts');
    const first = bundleOnce(missing);
    await expect(first).rejects.toThrow(/Could not resolve/);
    const second = bundleOnce(missing);
    expect(second).not.toBe(first);
    await expect(second).rejects.toThrow(/Could not resolve/);
  });

  it('appBundle bundles apps/<name>/src/main.ts once and the bundle runs', async () => {
    const bundle = await appBundle('client-init');
    expect(await appBundle('client-init')).toBe(bundle);
    const run = spawnSync(process.execPath, [bundle, '--version'], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('appBundle names a missing app in one line', async () => {
    await expect(appBundle('no-such-app')).rejects.toThrow(
      `appBundle: no app "no-such-app" (${join(workspaceRoot(), 'apps/no-such-app/src/main.ts')} does not exist)`,
    );
    await expect(appBundle('../libs/runtime')).rejects.toThrow(/^appBundle: no app "\.\.\/libs\/runtime"/);
  });
});

describe('bundle dirs', () => {
  it("are named for their process, and a dead process's are swept, a live one's kept", async () => {
    const out = await bundleScript(join(__dirname, 'fixtures/non-ascii.ts'));
    expect(out).toContain(`/knet-bundle-${process.pid}-`);
    const dir = mkdtempSync(join(tmpdir(), 'knet-sweep-test-'));
    try {
      // A pid that was alive and is gone: a child that has exited.
      const deadPid = spawnSync('true').pid;
      expect(deadPid).toBeGreaterThan(0);
      for (const name of [
        `knet-bundle-${deadPid}-abc123`,
        `knet-bundle-${process.pid}-def456`,
        'knet-bundle-old789',
      ])
        mkdirSync(join(dir, name));
      expect(sweepBundleDirs(dir)).toEqual([`knet-bundle-${deadPid}-abc123`]);
      expect(existsSync(join(dir, `knet-bundle-${process.pid}-def456`))).toBe(true);
      expect(existsSync(join(dir, 'knet-bundle-old789'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
