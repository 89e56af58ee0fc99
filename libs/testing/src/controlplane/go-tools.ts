import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { sleep } from '@knet/runtime';
import { describeExit, run } from '../exec';
import { workspaceRoot } from '../workspace';

type Log = (line: string) => void;

/** Bumped when the way a tool is built changes, so every cached tool is rebuilt. */
const GO_TOOL_RECIPE_VERSION = '1';

/** A Go module in this repository whose commands the test bed builds (tools/capi, tools/metal-sdk…). */
export interface GoToolRecipe<K extends string = string> {
  /** Names the cache folder (`<name>-<hash>`) and the progress lines. */
  name: string;
  /** The module's folder, relative to the workspace root (or absolute). */
  moduleDir: string;
  /** Output file name → the package to build (`sigs.k8s.io/cluster-api`, or `.` for the module's own main). */
  binaries: Record<K, string>;
  /** `-ldflags` for every binary (default `-s -w`). */
  ldflags?: string;
  /** What the first build costs, for the opening progress line (e.g. `~5 min on 2 cores`). */
  firstBuild?: string;
}

/** The built commands of one recipe: `bin[outName]` is the absolute path of each. */
export interface GoTool<K extends string = string> {
  dir: string;
  bin: Record<K, string>;
}

export interface GoToolOptions {
  /** Progress line interval while `go build` runs (default 20 s). */
  progressEveryMs?: number;
  /** Cache root instead of `$KNET_TESTBED_DIR` / `<workspace>/.cache/testbed` (for tests). */
  baseDir?: string;
}

/** The test bed's cache root: `$KNET_TESTBED_DIR`, else `<workspace>/.cache/testbed` (git-ignored). */
export function testBedBaseDir(): string {
  return process.env['KNET_TESTBED_DIR'] ?? join(workspaceRoot(), '.cache', 'testbed');
}

/**
 * Where a recipe's commands live: `<base>/<name>-<hash>`, the hash covering the module's go.mod,
 * go.sum and own .go files and the recipe (binaries, ldflags), so a pin or source change rebuilds
 * this tool and nothing else.
 */
export function goToolDir(recipe: GoToolRecipe, options: Pick<GoToolOptions, 'baseDir'> = {}): string {
  const moduleDir = resolve(workspaceRoot(), recipe.moduleDir);
  const h = createHash('sha256');
  h.update(GO_TOOL_RECIPE_VERSION);
  h.update(JSON.stringify({ binaries: recipe.binaries, ldflags: recipe.ldflags ?? null }));
  for (const f of moduleSources(moduleDir)) {
    h.update(relative(moduleDir, f)).update(readFileSync(f));
  }
  return join(options.baseDir ?? testBedBaseDir(), `${recipe.name}-${h.digest('hex').slice(0, 16)}`);
}

/** go.mod, go.sum and every .go file under `moduleDir` (not in bin/ or hidden folders), sorted. */
function moduleSources(moduleDir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, top: boolean) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (!e.name.startsWith('.') && !(top && e.name === 'bin')) walk(p, false);
      } else if (e.name.endsWith('.go') || (top && (e.name === 'go.mod' || e.name === 'go.sum'))) {
        out.push(p);
      }
    }
  };
  if (!existsSync(join(moduleDir, 'go.mod'))) {
    throw new Error(`no go.mod in ${moduleDir}: a Go tool's moduleDir must be a Go module`);
  }
  walk(moduleDir, true);
  return out.sort();
}

function toolPaths<K extends string>(recipe: GoToolRecipe<K>, dir: string): GoTool<K> {
  const bin = {} as Record<K, string>;
  for (const name of Object.keys(recipe.binaries) as K[]) bin[name] = join(dir, name);
  return { dir, bin };
}

/** The recipe's commands if they are all built, without building anything. */
export function findGoTool<K extends string>(
  recipe: GoToolRecipe<K>,
  options: Pick<GoToolOptions, 'baseDir'> = {},
): GoTool<K> | undefined {
  const dir = goToolDir(recipe, options);
  return existsSync(join(dir, '.complete')) ? toolPaths(recipe, dir) : undefined;
}

/**
 * Returns the recipe's commands, building whichever is missing with `go build -trimpath` in the
 * module (`GOTOOLCHAIN=local`, `GOFLAGS=-mod=readonly`: the committed go.sum is the pin).
 * Concurrent callers (other jest workers, `npm run testbed -- build`) wait on a lock and build once.
 * No time limit; `log` gets the same progress lines as the Kubernetes build.
 */
export async function ensureGoTool<K extends string>(
  recipe: GoToolRecipe<K>,
  log: Log = () => undefined,
  options: GoToolOptions = {},
): Promise<GoTool<K>> {
  const found = findGoTool(recipe, options);
  if (found) return found;
  const dir = goToolDir(recipe, options);
  mkdirSync(dir, { recursive: true });
  const release = await acquireBuildLock(join(dir, '.lock'), log);
  try {
    const again = findGoTool(recipe, options);
    if (again) return again;
    const tool = toolPaths(recipe, dir);
    const moduleDir = resolve(workspaceRoot(), recipe.moduleDir);
    const names = (Object.keys(recipe.binaries) as K[]).filter((n) => !builtFile(tool.bin[n]));
    if (names.length > 0) {
      await requireGo(recipe.name);
      log(
        `building ${names.join(', ')} from ${recipe.moduleDir}` +
          (recipe.firstBuild ? `; the first build takes ${recipe.firstBuild}` : ''),
      );
    }
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
    const everyMs = options.progressEveryMs ?? 20_000;
    const started = Date.now();
    for (const [i, name] of names.entries()) {
      const tmp = join(dir, `${name}.tmp`);
      await goBuild(
        moduleDir,
        ['-trimpath', '-ldflags', recipe.ldflags ?? '-s -w', '-o', tmp, recipe.binaries[name]],
        env,
        { label: `${name} (${i + 1}/${names.length})`, log, everyMs },
      );
      renameSync(tmp, tool.bin[name]);
    }
    if (names.length > 0) log(`built ${names.join(', ')} in ${formatElapsed(started)}`);
    writeFileSync(join(dir, '.complete'), new Date().toISOString() + '\n');
    return tool;
  } finally {
    release();
  }
}

/**
 * A Go module's folder in the module cache, as `go mod download -json <module>` finds it from
 * `toolDir` (a module under tools/ that requires it; downloaded if missing). Its CRDs, kustomize
 * trees and specs are read from there, never copied into the repository.
 */
export async function goModuleDir(toolDir: string, module: string): Promise<string> {
  const r = await run('go', ['mod', 'download', '-json', module], {
    cwd: join(workspaceRoot(), toolDir),
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' },
    timeoutMs: 600_000,
  });
  const dir = r.exitCode === 0 ? (JSON.parse(r.stdout) as { Dir?: string }).Dir : undefined;
  if (!dir) {
    throw new Error(
      `cannot locate ${module} in the Go module cache (go mod download in ${toolDir}: ${describeExit(r)}): ` +
        `${r.stderr.trim() || r.stdout.trim()}; check the Go proxy settings`,
    );
  }
  return dir;
}

/** True when `f` is a non-empty file (a half-written build output is empty or absent). */
export function builtFile(f: string): boolean {
  try {
    return statSync(f).size > 0;
  } catch {
    return false;
  }
}

/** Throws one line when `go` is not on PATH; `what` names what needed it (`Kubernetes`). */
export async function requireGo(what: string): Promise<void> {
  const r = await run('go', ['version']).catch(() => undefined);
  if (!r || r.exitCode !== 0) {
    throw new Error(
      `the test bed builds ${what} from source and needs the Go toolchain (go >= 1.24) on PATH`,
    );
  }
}

/** `1m05s`, `42s`: how long since `since`. */
export function formatElapsed(since: number, now = Date.now()): string {
  const s = Math.floor((now - since) / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/**
 * Counts what a `go build -v` prints: `go: downloading M V` lines (modules fetched) and the other
 * lines (with -v, one per package compiled).
 */
export class GoBuildProgress {
  downloaded = 0;
  compiled = 0;
  last = '';
  private partial = '';

  feed(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const raw of lines) {
      const line = raw.trim();
      if (line.startsWith('go: downloading ')) this.downloaded++;
      else if (isPackagePath(line)) {
        this.compiled++;
        this.last = line;
      }
    }
  }

  describe(): string {
    const parts = [];
    if (this.downloaded > 0) parts.push(`${this.downloaded} modules downloaded`);
    parts.push(`${this.compiled} packages compiled`);
    return parts.join(', ') + (this.last ? ` (last: ${this.last})` : '');
  }
}

/** `go build -v ARGS` in `cwd` with no time limit, logging progress every `everyMs`. */
export async function goBuild(
  cwd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  progress: { label: string; log: Log; everyMs: number },
): Promise<void> {
  const started = Date.now();
  const counts = new GoBuildProgress();
  progress.log(`building ${progress.label}`);
  const ticker = setInterval(
    () => progress.log(`building ${progress.label}: ${formatElapsed(started)}, ${counts.describe()}`),
    progress.everyMs,
  );
  try {
    const r = await run('go', ['build', '-v', ...args], {
      cwd,
      env,
      timeoutMs: Infinity,
      onOutput: (chunk) => counts.feed(chunk),
    });
    if (r.exitCode !== 0) {
      const tail = `${r.stdout}\n${r.stderr}`
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.startsWith('go: downloading ') && !isPackagePath(l))
        .slice(-20)
        .join('\n');
      throw new Error(
        `go build in ${cwd} failed (${describeExit(r)}) after ${formatElapsed(started)}:\n${tail || '(go printed no error)'}`,
      );
    }
    progress.log(`built ${progress.label} in ${formatElapsed(started)}`);
  } finally {
    clearInterval(ticker);
  }
}

function isPackagePath(line: string): boolean {
  return /^[\w.-]+(\/[\w.~+-]+)*$/.test(line.trim());
}

/**
 * A directory lock (mkdir is atomic) naming its holder's pid; the holder touches it every 30 s.
 * A lock whose holder is gone (dead pid on this host) or that was not touched for 5 min is stale.
 */
export async function acquireBuildLock(path: string, log: Log = () => undefined): Promise<() => void> {
  const owner = join(path, 'owner');
  for (let waited = 0; ; waited++) {
    try {
      mkdirSync(path);
      writeFileSync(owner, `${process.pid} ${hostname()}\n`);
      const heartbeat = setInterval(() => {
        const now = new Date();
        try {
          utimesSync(path, now, now);
        } catch {
          /* removed by someone who took it as stale: nothing to do */
        }
      }, 30_000);
      heartbeat.unref();
      return () => {
        clearInterval(heartbeat);
        rmSync(path, { recursive: true, force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const why = staleLock(path, owner);
      if (why) {
        log(`removing a stale lock of an earlier build (${why}): ${path}`);
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (waited % 15 === 0) log(`waiting for another build of the test bed to finish (lock: ${path})`);
      await sleep(2000);
    }
  }
}

/** Why the lock at `path` is stale, or undefined while its holder is alive. */
function staleLock(path: string, owner: string): string | undefined {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return undefined; // just released; the next mkdir takes it
  const age = Date.now() - st.mtimeMs;
  if (age > 5 * 60_000) return `not touched for ${formatElapsed(st.mtimeMs)}`;
  let text = '';
  try {
    text = readFileSync(owner, 'utf8');
  } catch {
    // The holder creates the directory, then writes the owner: give it a moment.
    return age > 10_000 ? 'no owner recorded' : undefined;
  }
  const [pid, host] = text.trim().split(' ');
  if (host !== hostname() || !pid) return undefined;
  try {
    process.kill(Number(pid), 0);
    return undefined;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH' ? `its process ${pid} is gone` : undefined;
  }
}
