import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { build } from 'esbuild';
import { workspaceRoot } from './workspace';

/**
 * Bundles a TypeScript entry point (a test fixture or an app's main.ts) into one CommonJS file
 * with esbuild, the way apps ship, so tests can run it as a separate real process with `node`.
 * ESM-only dependencies are bundled in; workspace aliases resolve through tsconfig.base.json.
 */
export async function bundleScript(entry: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'knet-bundle-'));
  // Removed when this process exits (the bundle's processes are gone by then).
  bundleDirs.push(dir);
  const outfile = join(dir, basename(entry).replace(/\.[cm]?ts$/, '.cjs'));
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    // A separate map (used only with --enable-source-maps): an inline one costs ~50 MiB per process.
    sourcemap: 'external',
    logLevel: 'error',
    tsconfig: join(workspaceRoot(), 'tsconfig.base.json'),
    // Native add-ons (ssh2's crypto binding, cpu-features) are copied next to the bundle.
    loader: { '.node': 'copy' },
  });
  return outfile;
}

const bundleDirs: string[] = [];
process.once('exit', () => {
  for (const d of bundleDirs) rmSync(d, { recursive: true, force: true });
});
