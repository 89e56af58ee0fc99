import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { build } from 'esbuild';
import { processAlive } from './exec';
import { workspaceRoot } from './workspace';

/**
 * Bundles a TypeScript entry point (a test fixture or an app's main.ts) into one CommonJS file
 * with esbuild, the way apps ship, so tests can run it as a separate real process with `node`.
 * ESM-only dependencies are bundled in; workspace aliases resolve through tsconfig.base.json.
 */
export async function bundleScript(entry: string): Promise<string> {
  if (bundleDirs.length === 0) sweepBundleDirs();
  const dir = mkdtempSync(join(tmpdir(), `${BUNDLE_DIR_PREFIX}${process.pid}-`));
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

/** Bundle dirs are `<tmp>/knet-bundle-<pid of the process that made it>-XXXXXX`. */
const BUNDLE_DIR_PREFIX = 'knet-bundle-';
const bundleDirs: string[] = [];
process.once('exit', () => {
  for (const d of bundleDirs) rmSync(d, { recursive: true, force: true });
});

/**
 * Removes the bundle dirs of processes that are gone: a Jest worker that its parent kills (one that
 * did not exit when asked) never runs its exit handler, and its bundles stayed in /tmp, some
 * hundred a day. Run at a process's first bundle; returns what it removed.
 */
export function sweepBundleDirs(dir = tmpdir()): string[] {
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const pid = new RegExp(`^${BUNDLE_DIR_PREFIX}(\\d+)-[A-Za-z0-9]{6}$`).exec(name)?.[1];
    if (pid === undefined || processAlive(Number(pid))) continue;
    rmSync(join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
