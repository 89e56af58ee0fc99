import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
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
    ...SHIPPED_BUNDLE_OPTIONS,
    logLevel: 'error',
    tsconfig: join(workspaceRoot(), 'tsconfig.base.json'),
    // Native add-ons (ssh2's crypto binding, cpu-features) are copied next to the bundle.
    loader: { '.node': 'copy' },
  });
  return outfile;
}

/**
 * What nx.json's build target gives esbuild besides the basics, shared by every bundle tests and
 * benches run. Without comments and indentation the bundle is ASCII (esbuild escapes non-ASCII in
 * code; comments keep theirs): V8 keeps a script's source in the heap, and one “ or — makes it a
 * two-byte string, which cost the tower agent ~10 MiB of RSS (70 instead of 81 MiB, with the
 * whitespace gone as well). Function names stay readable; positions need the source map.
 * `cpu-features` (ssh2's optional CPU probe, a native add-on whose install script set-up does not
 * run) stays out of the bundle; ssh2 requires it in a try and does without it.
 */
export const SHIPPED_BUNDLE_OPTIONS = {
  minifyWhitespace: true,
  legalComments: 'none',
  external: ['cpu-features'] as string[],
} as const;

const bundles = new Map<string, Promise<string>>();

/**
 * `bundleScript(entry)` once per process: every caller (test files of one Jest worker, a bench's
 * steps) gets the same bundle. For fixtures and bench entries: `bundleOnce(join(__dirname,
 * 'fixtures/dhcp-node.ts'))`. A failed build is not remembered, so the next call tries again.
 */
export function bundleOnce(entry: string): Promise<string> {
  const path = resolve(entry);
  let bundle = bundles.get(path);
  if (!bundle) {
    bundle = bundleScript(path);
    bundles.set(path, bundle);
    bundle.catch(() => bundles.delete(path));
  }
  return bundle;
}

/**
 * An app's `apps/<name>/src/main.ts` bundled as it ships, once per process (see `bundleOnce`):
 * `spawn('node', [await appBundle('tower-agent'), ...flags])`.
 */
export function appBundle(name: string): Promise<string> {
  const entry = join(workspaceRoot(), 'apps', name, 'src', 'main.ts');
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || !existsSync(entry)) {
    return Promise.reject(new Error(`appBundle: no app ${JSON.stringify(name)} (${entry} does not exist)`));
  }
  return bundleOnce(entry);
}

const bundleDirs: string[] = [];
process.once('exit', () => {
  for (const d of bundleDirs) rmSync(d, { recursive: true, force: true });
});
