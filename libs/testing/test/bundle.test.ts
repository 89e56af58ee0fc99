import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHIPPED_BUNDLE_OPTIONS, bundleScript, workspaceRoot } from '../src';

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
