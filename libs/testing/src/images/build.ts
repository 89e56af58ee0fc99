/**
 * `ensureImages(names)`: the OCI archives of knet's images, built with buildah (no Docker engine)
 * from docker/*.Dockerfile or found in the cache, `<testbed>/images/<name>-<key>.oci.tar`, keyed by
 * everything that goes in.
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { describeExit, oneLine, run } from '../exec';
import { acquireBuildLock, formatElapsed, goModuleDir, testBedBaseDir } from '../controlplane/go-tools';
import { workspaceRoot } from '../workspace';
import {
  ensureDebianImage,
  ensureDebianRootfs,
  debianKey,
  debianRecipe,
  requireRoot,
  type DebianRecipe,
} from './base';
import { Buildah } from './buildah';
import {
  buildArgsFor,
  busyboxVersion,
  debianUpstreamVersion,
  chartAppVersion,
  checkedBuildArgs,
  contentKey,
  FAKE_CONNECTOR_IMAGE,
  IMAGE_SOURCE,
  imageRef,
  isAppImage,
  NODE_RUNTIME_DOCKERFILE,
  pauseVersion,
  resolveImages,
  treeParts,
  type ImageRecipe,
} from './catalog';

type Log = (line: string) => void;

/** Bumped when the way images are built changes (staging, flags), so every cached image is rebuilt. */
const IMAGES_RECIPE_VERSION = '1';

/** Kubernetes' pause: the module (tools/kubeadm's pin) and how it is compiled (its Makefile's CFLAGS, static). */
const PAUSE_MODULE = { toolDir: 'tools/kubeadm', module: 'k8s.io/kubernetes' };
const PAUSE_CFLAGS = ['-Os', '-Wall', '-Werror', '-static'];

export interface BuiltImage {
  name: string;
  /** `ghcr.io/knet/<name>:<version>`, also the ref inside the archive (`ctr images import` needs it). */
  ref: string;
  /** An `oci-archive` (tar of an OCI layout with gzip layers). */
  archive: string;
  /** The archive's size. */
  sizeBytes: number;
  /** How long the build that made the archive took. */
  buildSeconds: number;
  /** Whether the archive was in the cache. */
  cached: boolean;
}

export interface EnsureImagesOptions {
  /** Cache root instead of `testBedBaseDir()` (the images go to `<baseDir>/images`). */
  baseDir?: string;
  /**
   * Build the apps' bundles first (`nx run-many -t build`, a cache hit when nothing changed);
   * default true. False: use dist/apps/<app>/ as it is (an error when missing).
   */
  buildBundles?: boolean;
}

/** `<testbed>/images`: archives, the Debian base's rootfs, the node package, the buildah storage. */
export function imagesDir(baseDir = testBedBaseDir()): string {
  return join(baseDir, 'images');
}

/**
 * Builds (or finds) the images `names` (and those they need: connector-init needs busybox) and
 * returns them by name. Concurrent callers (jest workers, `npm run images`) wait on one lock and
 * build once; an unknown name is a one-line error before anything runs.
 */
export async function ensureImages<N extends string>(
  names: readonly N[],
  log: Log = () => undefined,
  options: EnsureImagesOptions = {},
): Promise<Record<N, BuiltImage>> {
  const recipes = resolveImages(names);
  const apps = recipes.filter(isAppImage).map((r) => r.name);
  const dir = imagesDir(options.baseDir);
  mkdirSync(dir, { recursive: true });
  if (apps.length > 0 && options.buildBundles !== false) {
    // One nx build at a time: jest workers asking for the same app would otherwise write its
    // dist/apps/<app>/ at once while another reads it for an image key.
    const releaseBundles = await acquireBuildLock(join(dir, '.bundles.lock'), log);
    try {
      await buildBundles(apps, log);
    } finally {
      releaseBundles();
    }
  }
  const inputs = new ImageInputs(log);

  const out: Record<string, BuiltImage> = {};
  const missing: ImageRecipe[] = [];
  for (const r of recipes) {
    const found = findArchive(dir, r.name, await inputs.key(r));
    if (found) out[r.name] = found;
    else missing.push(r);
  }
  if (missing.length === 0) return pick(out, names);

  requireRoot('buildah');
  const release = await acquireBuildLock(join(dir, '.lock'), log);
  const buildah = new Buildah(join(dir, 'storage'));
  const built: string[] = [];
  try {
    for (const r of missing) {
      const key = await inputs.key(r);
      const again = findArchive(dir, r.name, key);
      if (again) {
        out[r.name] = again;
        continue;
      }
      out[r.name] = await buildImage(r, key, { dir, buildah, inputs, log, built: out });
      built.push(out[r.name]?.ref as string);
    }
  } finally {
    await buildah.removeContainers('all');
    for (const ref of built) await buildah.tryRun(['rmi', ref]);
    release();
  }
  return pick(out, names);
}

function pick<N extends string>(all: Record<string, BuiltImage>, names: readonly N[]): Record<N, BuiltImage> {
  return Object.fromEntries(names.map((n) => [n, all[n] as BuiltImage])) as Record<N, BuiltImage>;
}

/** `nx run-many -t build -p <apps>`: the bundle folders dist/apps/<app>/ the images copy. */
export async function buildBundles(apps: readonly string[], log: Log = () => undefined): Promise<void> {
  if (apps.length === 0) return;
  const started = Date.now();
  const projects = apps.map((a) => `@knet/${a}`).join(',');
  log(`building the bundles of ${apps.join(', ')} (nx; a cache hit when nothing changed)`);
  const r = await run('npx', ['nx', 'run-many', '-t', 'build', '-p', projects, '--outputStyle=static'], {
    cwd: workspaceRoot(),
    timeoutMs: 20 * 60_000,
  });
  if (r.exitCode !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`nx build of ${projects} failed (${describeExit(r)}):\n${tail}`);
  }
  log(`bundles ready in ${formatElapsed(started)}`);
}

interface ArchiveMeta {
  ref: string;
  buildSeconds: number;
  builtAt: string;
}

function archivePaths(dir: string, name: string, key: string) {
  return { archive: join(dir, `${name}-${key}.oci.tar`), meta: join(dir, `${name}-${key}.json`) };
}

/** The cached archive of `name` at `key`, if complete (its metadata is written last). */
function findArchive(dir: string, name: string, key: string): BuiltImage | undefined {
  const p = archivePaths(dir, name, key);
  if (!existsSync(p.meta) || !existsSync(p.archive)) return undefined;
  const meta = JSON.parse(readFileSync(p.meta, 'utf8')) as ArchiveMeta;
  return {
    name,
    ref: meta.ref,
    archive: p.archive,
    sizeBytes: statSync(p.archive).size,
    buildSeconds: meta.buildSeconds,
    cached: true,
  };
}

/**
 * What goes into each image, read once per call: the Dockerfiles, the bundle folders, the Debian
 * recipe, pause.c and the compiler; and the content keys made of them.
 */
class ImageInputs {
  readonly root = workspaceRoot();
  readonly dockerDir = join(this.root, 'docker');
  readonly debian: DebianRecipe = debianRecipe(this.dockerDir);
  private readonly keys = new Map<string, Promise<string>>();
  private pauseInfo?: Promise<{ source: string; makefile: string; k8sVersion: string; gcc: string }>;

  constructor(private readonly log: Log) {}

  dockerfile(name: string): string {
    return readFileSync(join(this.dockerDir, name), 'utf8');
  }

  get debianKey(): string {
    return debianKey(this.debian);
  }

  runtimeKey(): string {
    return contentKey([
      IMAGES_RECIPE_VERSION,
      this.dockerfile(NODE_RUNTIME_DOCKERFILE),
      ...treeParts(join(this.dockerDir, 'rootfs')),
      this.debianKey,
    ]);
  }

  version(r: ImageRecipe): string {
    return chartAppVersion(join(this.root, 'charts'), r.chart as string);
  }

  pause() {
    this.pauseInfo ??= (async () => {
      const dir = await goModuleDir(PAUSE_MODULE.toolDir, PAUSE_MODULE.module);
      const gcc = await run('gcc', ['-dumpfullversion']);
      if (gcc.exitCode !== 0)
        throw new Error(`the pause image is compiled with gcc, which is missing: ${describeExit(gcc)}`);
      return {
        source: join(dir, 'build/pause/linux/pause.c'),
        makefile: readFileSync(join(dir, 'build/pause/Makefile'), 'utf8'),
        k8sVersion: dir.split('@').pop() ?? 'unknown',
        gcc: gcc.stdout,
      };
    })();
    return this.pauseInfo;
  }

  key(r: ImageRecipe): Promise<string> {
    let k = this.keys.get(r.name);
    if (!k) {
      k = this.computeKey(r);
      this.keys.set(r.name, k);
    }
    return k;
  }

  private async computeKey(r: ImageRecipe): Promise<string> {
    const common = [IMAGES_RECIPE_VERSION, r.name, IMAGE_SOURCE, this.dockerfile(r.dockerfile)];
    if (isAppImage(r)) {
      const bundle = join(this.root, 'dist/apps', r.name);
      if (!existsSync(join(bundle, 'main.js'))) {
        throw new Error(
          `no bundle ${bundle}/main.js: run npx nx build @knet/${r.name} (npm run images does)`,
        );
      }
      const deps = await Promise.all(
        (r.needs ?? []).map((n) => this.key(resolveImages([n])[0] as ImageRecipe)),
      );
      const base = r.kind === 'node' ? this.runtimeKey() : this.debianKey;
      return contentKey([...common, this.version(r), base, ...deps, ...treeParts(bundle)]);
    }
    if (r.kind === 'fake-connector') {
      // The staged files with their executable bits (the scripts are run by their #! line).
      const files = FAKE_CONNECTOR_IMAGE.files.flatMap((f) => [
        `${f} ${statSync(join(this.root, f)).mode & 0o111 ? 'x' : '-'}`,
        readFileSync(join(this.root, f)),
      ]);
      return contentKey([...common, FAKE_CONNECTOR_IMAGE.version, this.runtimeKey(), ...files]);
    }
    if (r.kind === 'pause') {
      const p = await this.pause();
      return contentKey([
        ...common,
        readFileSync(p.source),
        pauseVersion(p.makefile),
        p.k8sVersion,
        p.gcc,
        ...PAUSE_CFLAGS,
      ]);
    }
    return contentKey([...common, this.debianKey]);
  }
}

interface BuildContext {
  dir: string;
  buildah: Buildah;
  inputs: ImageInputs;
  log: Log;
  /** Images ready so far (a dependency's ref is a build argument). */
  built: Record<string, BuiltImage>;
}

/** Stages the build context, builds with `buildah bud`, pushes the `oci-archive` with its ref. */
async function buildImage(r: ImageRecipe, key: string, b: BuildContext): Promise<BuiltImage> {
  const started = Date.now();
  const { inputs, buildah } = b;
  const ctx = mkdtempSync(join(b.dir, 'context-'));
  try {
    cpSync(join(inputs.dockerDir, r.dockerfile), join(ctx, 'docker', r.dockerfile));
    let version: string;
    let baseImage: string | undefined;
    let busyboxImage: string | undefined;
    if (isAppImage(r)) {
      version = inputs.version(r);
      cpSync(join(inputs.root, 'dist/apps', r.name), join(ctx, 'dist/apps', r.name), { recursive: true });
      baseImage =
        r.kind === 'node'
          ? await ensureNodeRuntime(b)
          : await ensureDebianImage(buildah, b.dir, inputs.debian, b.log);
      for (const dep of r.needs ?? []) {
        const d = b.built[dep] as BuiltImage;
        await loadArchive(buildah, d);
        if (dep === 'busybox') busyboxImage = d.ref;
      }
    } else if (r.kind === 'fake-connector') {
      version = FAKE_CONNECTOR_IMAGE.version;
      // cpSync keeps the mode: the scripts stay executable in the image.
      for (const f of FAKE_CONNECTOR_IMAGE.files) cpSync(join(inputs.root, f), join(ctx, f));
      baseImage = await ensureNodeRuntime(b);
    } else if (r.kind === 'pause') {
      const p = await inputs.pause();
      version = pauseVersion(p.makefile);
      await compilePause(p.source, `v${version}-${p.k8sVersion}`, join(ctx, 'build', 'pause'));
    } else if (r.kind === 'wireguard-go') {
      const rootfs = await ensureDebianRootfs(b.dir, inputs.debian, b.log);
      version = debianUpstreamVersion(
        readFileSync(join(rootfs, 'var/lib/dpkg/status'), 'utf8'),
        'wireguard-go',
      );
      baseImage = await ensureDebianImage(buildah, b.dir, inputs.debian, b.log);
    } else {
      const rootfs = await ensureDebianRootfs(b.dir, inputs.debian, b.log);
      version = await stageBusybox(rootfs, join(ctx, 'build', 'busybox'));
      baseImage = await ensureDebianImage(buildah, b.dir, inputs.debian, b.log);
    }
    const args = buildArgsFor(r, {
      version,
      ...(baseImage ? { baseImage } : {}),
      ...(busyboxImage ? { busyboxImage } : {}),
    });
    const ref = imageRef(r.name, version);
    b.log(`building ${ref} (docker/${r.dockerfile})`);
    await buildah.run(
      [
        'bud',
        '--pull-never',
        '--quiet',
        '--format',
        'oci',
        '-f',
        join(ctx, 'docker', r.dockerfile),
        ...checkedBuildArgs(r.dockerfile, inputs.dockerfile(r.dockerfile), args),
        '-t',
        ref,
        ctx,
      ],
      { timeoutMs: 20 * 60_000 },
    );
    const p = archivePaths(b.dir, r.name, key);
    const tmp = `${p.archive}.tmp`;
    rmSync(tmp, { force: true });
    await buildah.run(['push', '--quiet', ref, `oci-archive:${tmp}:${ref}`]);
    renameSync(tmp, p.archive);
    const buildSeconds = Math.round((Date.now() - started) / 100) / 10;
    const meta: ArchiveMeta = { ref, buildSeconds, builtAt: new Date().toISOString() };
    writeFileSync(p.meta, JSON.stringify(meta, null, 2) + '\n');
    const sizeBytes = statSync(p.archive).size;
    b.log(`built ${ref}: ${(sizeBytes / 2 ** 20).toFixed(1)} MiB in ${buildSeconds} s`);
    return { name: r.name, ref, archive: p.archive, sizeBytes, buildSeconds, cached: false };
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

/** The node-only apps' base (docker/node-runtime.Dockerfile on the Debian base), in the private storage. */
async function ensureNodeRuntime(b: BuildContext): Promise<string> {
  const ref = `localhost/knet/node-runtime:${b.inputs.runtimeKey()}`;
  if (await b.buildah.hasImage(ref)) return ref;
  const debian = await ensureDebianImage(b.buildah, b.dir, b.inputs.debian, b.log);
  const ctx = mkdtempSync(join(b.dir, 'context-'));
  try {
    cpSync(join(b.inputs.dockerDir, NODE_RUNTIME_DOCKERFILE), join(ctx, 'docker', NODE_RUNTIME_DOCKERFILE));
    cpSync(join(b.inputs.dockerDir, 'rootfs'), join(ctx, 'docker', 'rootfs'), { recursive: true });
    const args = { BASE_IMAGE: debian, BASE_SETUP: 'none' };
    await b.buildah.run([
      'bud',
      '--pull-never',
      '--quiet',
      '-f',
      join(ctx, 'docker', NODE_RUNTIME_DOCKERFILE),
      ...checkedBuildArgs(NODE_RUNTIME_DOCKERFILE, b.inputs.dockerfile(NODE_RUNTIME_DOCKERFILE), args),
      '-t',
      ref,
      ctx,
    ]);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  b.log(`node runtime built: ${ref}`);
  return ref;
}

/** A dependency's archive into the storage under its ref (connector-init builds FROM busybox). */
async function loadArchive(buildah: Buildah, image: BuiltImage): Promise<void> {
  if (await buildah.hasImage(image.ref)) return;
  const id = await buildah.run(['pull', '--quiet', `oci-archive:${image.archive}`]);
  await buildah.run(['tag', id.split('\n').pop() as string, image.ref]);
}

/** `gcc -Os -Wall -Werror -static -DVERSION=<version>` of pause.c, stripped, to `out`. */
async function compilePause(source: string, version: string, out: string): Promise<void> {
  mkdirSync(dirname(out), { recursive: true });
  const cc = await run('gcc', [...PAUSE_CFLAGS, `-DVERSION=${version}`, '-o', out, source]);
  if (cc.exitCode !== 0)
    throw new Error(`gcc of ${source} failed (${describeExit(cc)}): ${oneLine(cc.stderr)}`);
  const st = await run('strip', [out]);
  if (st.exitCode !== 0) throw new Error(`strip ${out} failed (${describeExit(st)}): ${oneLine(st.stderr)}`);
}

/**
 * One symlink to /bin/busybox per applet path of `busybox --list-full` (the base's static
 * busybox) under `dir`; returns busybox's version.
 */
async function stageBusybox(rootfs: string, dir: string): Promise<string> {
  const bin = join(rootfs, 'usr/bin/busybox');
  const list = await run(bin, ['--list-full']);
  if (list.exitCode !== 0) throw new Error(`${bin} --list-full failed (${describeExit(list)})`);
  const banner = await run(bin, ['--help']);
  for (const rel of list.stdout.split('\n').map((l) => l.trim())) {
    if (rel === '' || rel === 'bin/busybox') continue;
    if (!/^[\w./[-]+$/.test(rel) || rel.includes('..'))
      throw new Error(`busybox --list-full: unexpected path ${rel}`);
    mkdirSync(join(dir, dirname(rel)), { recursive: true });
    symlinkSync('/bin/busybox', join(dir, rel));
  }
  if (readdirSync(dir).length === 0) throw new Error(`${bin} --list-full listed no applets`);
  return busyboxVersion(`${banner.stdout}\n${banner.stderr}`);
}
