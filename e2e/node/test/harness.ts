/**
 * What the node suites need around a NodeBed: the charts' folders and image tags, the pods of a
 * release, a program run inside a pod, `kubectl port-forward`, and the objects a release left behind.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  chartAppVersion as catalogAppVersion,
  ManagedProcess,
  releasePod as libReleasePod,
  releasePods as libReleasePods,
  until,
  workspaceRoot,
  type ControlPlane,
  type KubectlResult,
  type NodeBed,
} from '@knet/testing';

export { chartDir } from '@knet/testing';

/** The chart's appVersion: the tag its `image.tag` defaults to (and `npm run images` tags). */
export function chartAppVersion(chart: string): string {
  return catalogAppVersion(join(workspaceRoot(), 'charts'), chart);
}

/** `helm …` against the bed's API server (killed after `timeoutMs`); throws with helm's stderr when it fails. */
export async function helmOk(cp: ControlPlane, args: string[], timeoutMs = 60_000): Promise<string> {
  const r: KubectlResult = await cp.helm(args, { timeoutMs });
  if (r.exitCode !== 0)
    throw new Error(`helm ${args.join(' ')} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

/** The fields of a Pod the test reads. */
export interface Pod {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: {
    securityContext?: SecurityContext;
    containers: { name: string; image: string; securityContext?: SecurityContext }[];
    initContainers?: { name: string; image: string; securityContext?: SecurityContext }[];
  };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string }[];
    containerStatuses?: { name: string; ready: boolean; restartCount: number; image: string }[];
  };
}

/** The pods of helm release `release` in `namespace` (the charts' `app.kubernetes.io/instance` label). */
export const releasePods = (cp: ControlPlane, namespace: string, release: string): Promise<Pod[]> =>
  libReleasePods<Pod>(cp, namespace, release);

/** The one pod of a single-replica release. */
export const releasePod = (cp: ControlPlane, namespace: string, release: string): Promise<Pod> =>
  libReleasePod<Pod>(cp, namespace, release);

export function podCondition(pod: Pod, type: string): string | undefined {
  return pod.status.conditions?.find((c) => c.type === type)?.status;
}

/**
 * What the container's processes run as, read inside it: the app (PID 1 of the container: the
 * chart's pod does not share its PID namespace) from /proc/1/status, and a probe started by
 * `kubectl exec` with the image's node (the images are distroless: no shell), which also tries to
 * write to the root file system and to /tmp (the chart's emptyDir).
 */
export interface ContainerIdentity {
  /** /proc/1/cmdline of the container: the app. */
  app: string;
  /** Real, effective, saved and file-system uid of the app (/proc/1/status `Uid:`). */
  appUids: number[];
  appGids: number[];
  /** The app's effective capabilities (hex, /proc/1/status `CapEff:`). */
  appCapEff: string;
  /** /proc/1/status `NoNewPrivs:` and `Seccomp:` (2 = a filter). */
  appNoNewPrivs: string;
  appSeccomp: string;
  /** The exec'd probe's uid and gid (process.getuid()). */
  uid: number;
  gid: number;
  /** Writing /probe: an error code (EROFS) or "ok". */
  rootWrite: string;
  /** Writing /tmp/probe. */
  tmpWrite: string;
}

const IDENTITY_PROBE = `
const fs = require('fs');
const status = fs.readFileSync('/proc/1/status', 'utf8');
const field = (k) => new RegExp('^' + k + ':\\\\s*(.*)$', 'm').exec(status)[1].trim();
const write = (p) => { try { fs.writeFileSync(p, 'x'); fs.unlinkSync(p); return 'ok'; } catch (e) { return e.code; } };
console.log(JSON.stringify({
  app: fs.readFileSync('/proc/1/cmdline', 'utf8').split('\\0').filter(Boolean).join(' '),
  appUids: field('Uid').split(/\\s+/).map(Number),
  appGids: field('Gid').split(/\\s+/).map(Number),
  appCapEff: field('CapEff'),
  appNoNewPrivs: field('NoNewPrivs'),
  appSeccomp: field('Seccomp'),
  uid: process.getuid(),
  gid: process.getgid(),
  rootWrite: write('/probe'),
  tmpWrite: write('/tmp/probe'),
}));
`;

/** Reads {@link ContainerIdentity} in `pod`'s container through `kubectl exec` (the kubelet's streaming). */
export async function containerIdentity(cp: ControlPlane, pod: Pod): Promise<ContainerIdentity> {
  const out = await cp.kubectlOk([
    'exec',
    '-n',
    pod.metadata.namespace,
    pod.metadata.name,
    '--',
    '/nodejs/bin/node',
    '-e',
    IDENTITY_PROBE,
  ]);
  return JSON.parse(out) as ContainerIdentity;
}

/** `kubectl port-forward` to `target` (e.g. `svc/mc-alpha`) on a free port of the test process's loopback. */
export interface PortForward {
  /** The local port on 127.0.0.1. */
  port: number;
  proc: ManagedProcess;
}

/**
 * Starts the real `kubectl port-forward -n namespace target :remotePort` (the API server and the
 * kubelet's streaming: nothing is routed into the node's namespace) and waits for its local port.
 * Stopped again when that fails.
 */
export async function portForward(
  cp: ControlPlane,
  namespace: string,
  target: string,
  remotePort: number,
): Promise<PortForward> {
  const logFile = join(cp.dir, `port-forward-${target.replace(/\W/g, '-')}-${Date.now()}.log`);
  const proc = ManagedProcess.start(
    'kubectl port-forward',
    cp.bin.kubectl,
    [
      `--kubeconfig=${cp.kubeconfigPath}`,
      'port-forward',
      '-n',
      namespace,
      target,
      `:${remotePort}`,
      '--address=127.0.0.1',
    ],
    logFile,
  );
  try {
    const port = await until(
      () => `kubectl port-forward ${target} to listen; its output:\n${proc.tail()}`,
      () => {
        if (!proc.running) throw new Error(`exited: ${proc.tail()}`);
        const m = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(readFileSync(logFile, 'utf8'));
        return m ? Number(m[1]) : undefined;
      },
      20_000,
    );
    return { port, proc };
  } catch (e) {
    await proc.stop();
    throw e;
  }
}

/**
 * Every object, of every kind the API server lists, that carries the label of helm release
 * `release` (`app.kubernetes.io/instance`), in any namespace: kubectl's names, sorted.
 */
export async function releaseObjects(cp: ControlPlane, release: string): Promise<string[]> {
  const kinds = (await cp.kubectlOk(['api-resources', '--verbs=list', '-o', 'name']))
    .split('\n')
    .filter(Boolean);
  const out = await cp.kubectlOk([
    'get',
    kinds.join(','),
    '--all-namespaces',
    '-l',
    `app.kubernetes.io/instance=${release}`,
    '-o',
    'name',
  ]);
  return out.split('\n').filter(Boolean).sort();
}

/**
 * Runs the real kubectl inside the node's network namespace (`ip netns exec`), where the node's own
 * programs run and kube-proxy's rules apply, with `kubeconfig` as it is. Output without its final
 * newline, as ControlPlane.kubectl gives it.
 */
export async function kubectlOnNode(
  bed: NodeBed,
  kubeconfig: string,
  args: string[],
): Promise<{ stdout: string; stderr: string; exitCode: number | null }> {
  const r = await bed.host.exec(bed.cp.bin.kubectl, [`--kubeconfig=${kubeconfig}`, ...args], {
    check: false,
    timeoutMs: 60_000,
  });
  return { stdout: r.stdout.replace(/\n$/, ''), stderr: r.stderr.replace(/\n$/, ''), exitCode: r.exitCode };
}
