/**
 * `checkImage(image)`: runs an image's checks (checks-plan.ts) under runc, each in a fresh
 * container of the archive's root filesystem with its own namespaces (network included, so
 * nothing touches the machine's), a read-only root, the image's user and the capabilities the
 * charts grant. Everything it creates — runc containers, the buildah container and its mount, the
 * temp dir — is removed again, also when a check or the set-up fails.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeExit, oneLine, run } from '../exec';
import { acquireBuildLock } from '../controlplane/go-tools';
import { until } from '../wait';
import { workspaceRoot } from '../workspace';
import { requireRoot } from './base';
import type { BuiltImage, EnsureImagesOptions } from './build';
import { imagesDir } from './build';
import { Buildah } from './buildah';
import { IMAGES, isAppImage, type ImageRecipe } from './catalog';
import {
  checkArgv,
  checkCapabilities,
  checkExtras,
  checkSpec,
  imageChecks,
  imageUser,
  type ImageCheck,
  type ImageConfig,
  type RuncSpec,
} from './checks-plan';

type Log = (line: string) => void;

export interface CheckResult {
  image: string;
  check: string;
  argv: string[];
  ok: boolean;
  /** Why it failed, one line; empty when ok. */
  problem: string;
  exitCode: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

const CHECK_TIMEOUT_MS = 60_000;

/** Runs every check of `image`; a failed check is a result with `ok: false`, not a throw. */
export async function checkImage(
  image: BuiltImage,
  log: Log = () => undefined,
  options: Pick<EnsureImagesOptions, 'baseDir'> = {},
): Promise<CheckResult[]> {
  requireRoot('runc');
  const recipe = IMAGES[image.name] as ImageRecipe;
  const dir = imagesDir(options.baseDir);
  const release = await acquireBuildLock(join(dir, '.lock'), log);
  const buildah = new Buildah(join(dir, 'storage'));
  const tmp = mkdtempSync(join(tmpdir(), 'knet-image-check-'));
  const runcRoot = join(tmp, 'runc');
  const ids: string[] = [];
  let container: string | undefined;
  let mounted = false;
  try {
    container = await buildah.run(['from', '--quiet', `oci-archive:${image.archive}`]);
    container = container.split('\n').pop() as string;
    const config = containerConfig(await buildah.run(['inspect', '--type', 'container', container]));
    const rootfs = await buildah.run(['mount', container]);
    mounted = true;
    const bundle = join(tmp, 'bundle');
    mkdirSync(bundle, { recursive: true });
    mkdirSync(runcRoot, { recursive: true });
    const spec = await runc(['spec', '--bundle', bundle]);
    if (spec.exitCode !== 0) throw new Error(`runc spec failed: ${oneLine(spec.stderr)}`);
    const defaults = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as RuncSpec;
    const user = imageUser(
      config.user,
      readIfThere(join(rootfs, 'etc/passwd')),
      readIfThere(join(rootfs, 'etc/group')),
    );
    const results: CheckResult[] = [];
    for (const [i, check] of imageChecks(recipe, addonsOf(recipe)).entries()) {
      const id = `knet-check-${image.name}-${process.pid}-${i}`;
      ids.push(id);
      const argv = checkArgv(check, config);
      const s = checkSpec(defaults, {
        rootfs,
        argv,
        config,
        user,
        capabilities: checkCapabilities(recipe),
        ...checkExtras(recipe),
        ...(check.env ? { env: check.env } : {}),
        hostname: image.name,
      });
      writeFileSync(join(bundle, 'config.json'), JSON.stringify(s, null, 2));
      const started = Date.now();
      const r =
        check.mode === 'signal'
          ? await runUntilSignalled(runcRoot, bundle, id)
          : await runc(['--root', runcRoot, 'run', '--bundle', bundle, id], CHECK_TIMEOUT_MS);
      await runc(['--root', runcRoot, 'delete', '--force', id]);
      const result: CheckResult = {
        image: image.name,
        check: check.name,
        argv,
        exitCode: r.exitCode,
        stdout: r.stdout,
        stderr: r.stderr,
        seconds: (Date.now() - started) / 1000,
        ok: false,
        problem: '',
      };
      result.problem = judge(check, r);
      result.ok = result.problem === '';
      log(`${image.ref}: ${check.name} ${result.ok ? 'ok' : `FAILED: ${result.problem}`}`);
      results.push(result);
    }
    return results;
  } finally {
    for (const id of ids) await runc(['--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
    if (container) {
      if (mounted) await buildah.tryRun(['umount', container]);
      await buildah.removeContainers([container]);
      await buildah.tryRun(['rmi', image.ref]);
    }
    rmSync(tmp, { recursive: true, force: true });
    release();
  }
}

/** Why a check's outcome is not the expected one, or '' when it is. */
export function judge(
  check: ImageCheck,
  r: { exitCode: number | null; stdout: string; stderr: string; timedOut?: boolean },
): string {
  const tail = (s: string) => oneLine(s.split('\n').slice(-5).join(' ')).slice(0, 400);
  if (r.timedOut) return `still running after ${CHECK_TIMEOUT_MS / 1000} s (time limit)`;
  const exit = check.exit ?? 0;
  if (r.exitCode !== exit)
    return `exit ${r.exitCode ?? 'by signal'}, expected ${exit}; stderr: ${tail(r.stderr)}`;
  if (check.stdout && !check.stdout.test(r.stdout))
    return `stdout does not match ${check.stdout}: ${tail(r.stdout)}`;
  if (check.stderr && !check.stderr.test(r.stderr))
    return `stderr does not match ${check.stderr}: ${tail(r.stderr)}`;
  return '';
}

/** The image config of `buildah inspect --type container` (its OCIv1 config). */
export function containerConfig(inspectJson: string): ImageConfig {
  const doc = JSON.parse(inspectJson) as {
    OCIv1?: {
      config?: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; User?: string; WorkingDir?: string };
    };
  };
  const c = doc.OCIv1?.config ?? {};
  return {
    entrypoint: c.Entrypoint ?? [],
    cmd: c.Cmd ?? [],
    env: c.Env ?? [],
    user: c.User ?? '',
    workingDir: c.WorkingDir ?? '',
  };
}

/** The native add-ons (*.node) of an app's bundle folder, which its image must load. */
function addonsOf(recipe: ImageRecipe): string[] {
  if (!isAppImage(recipe)) return [];
  const d = join(workspaceRoot(), 'dist/apps', recipe.name);
  return existsSync(d) ? readdirSync(d).filter((f) => f.endsWith('.node')) : [];
}

function readIfThere(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

interface RunOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut?: boolean;
}

async function runc(args: string[], timeoutMs = 30_000): Promise<RunOutcome> {
  try {
    return await run('runc', args, { timeoutMs });
  } catch (e) {
    // run() throws only for a missing binary or the time limit; the latter is a failed check.
    if (!existsSync('/usr/sbin/runc') && !existsSync('/usr/bin/runc')) throw e;
    return { exitCode: null, stdout: '', stderr: e instanceof Error ? e.message : String(e), timedOut: true };
  }
}

/**
 * `runc run` of a container that runs until told (pause): waits until runc reports it running,
 * sends SIGTERM through `runc kill`, and returns how it ended (SIGKILL after 10 s if it did not).
 */
async function runUntilSignalled(runcRoot: string, bundle: string, id: string): Promise<RunOutcome> {
  const child = spawn('runc', ['--root', runcRoot, 'run', '--bundle', bundle, id], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let ended: number | null | undefined;
  void exited.then((c) => (ended = c));
  try {
    await until(
      () => `runc to report ${id} running (stderr: ${oneLine(stderr)})`,
      async () => {
        if (ended !== undefined) throw new Error(`it exited (${ended})`);
        const s = await run('runc', ['--root', runcRoot, 'state', id]);
        return s.exitCode === 0 && (JSON.parse(s.stdout) as { status?: string }).status === 'running';
      },
      { timeoutMs: 15_000, intervalMs: 100 },
    );
    const k = await run('runc', ['--root', runcRoot, 'kill', id, 'TERM']);
    if (k.exitCode !== 0)
      throw new Error(`runc kill ${id} TERM failed (${describeExit(k)}): ${oneLine(k.stderr)}`);
    const timer = setTimeout(() => void run('runc', ['--root', runcRoot, 'kill', id, 'KILL']), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return { exitCode: code, stdout, stderr };
  } catch (e) {
    await run('runc', ['--root', runcRoot, 'kill', id, 'KILL']).catch(() => undefined);
    await exited;
    return { exitCode: null, stdout, stderr: `${stderr}\n${e instanceof Error ? e.message : String(e)}` };
  }
}
