/**
 * The kubelet and the container runtime, played for the injected containers of a Pod spec *as the
 * API server stored it* (after gateway-webhook admitted it): each image's app bundle
 * (ghcr.io/knet/client-init → client-init, ghcr.io/knet/client-sidecar → client-sidecar) at the image's path and
 * entrypoint, in the kubelet's order, with the spec's env, volume mounts (the ConfigMap read back
 * from the API server, the service account token, the empty no-token volume), securityContext
 * (capabilities, no new privileges, read-only root) and DNS (the resolv.conf the kubelet writes
 * from dnsConfig) — in a client host of a PodgwLab with a real gateway. Used by e2e/podgw's webhook
 * test and the lab's pod-gateway scene.
 *
 * Each container runs in a private mount and UTS namespace inside the pod's network namespace: a
 * tmpfs root holding the host's top-level directories read-only (the "image"; /tmp stays empty),
 * the app bundle bind-mounted at /app/main.js, and each volume bind-mounted at its mountPath.
 * Where the path does not exist on the host (/config, /var/run/secrets/…), the directories on the
 * way are rebuilt as tmpfs inside that mount namespace only; nothing is created on the host.
 *
 * What the runner adds that is not in the spec, as a kubelet and runtime would: PATH (the image's
 * ENV), the host name and HOSTNAME (the pod's name), KUBERNETES_SERVICE_HOST/PORT (the kubelet sets
 * them in every container; here they point at the API server bridged onto the pod's loopback, as
 * kube-proxy would lead the kubernetes Service to it), and /etc/resolv.conf.
 *
 * What it refuses, with one line: a container that is not an injected one (the user's own
 * containers are not run: the caller stands in for the app), a securityContext other than the one
 * the webhook writes (runAsUser 0, drop ALL, readOnlyRootFilesystem), volumes, fields and
 * dnsPolicy it does not emulate.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Volume } from '@kubernetes/client-node';
import { appBundle } from './bundle';
import type { ControlPlane } from './controlplane';
import { OVERLAY_GATEWAY, bridgeLoopbackPort, type LabProcess, type LoopbackBridge } from './netns';
import { PodgwLab, type PodgwClient } from './podgw-lab';
import { until } from './wait';

/** The images the webhook injects, and the app each one is (its ENTRYPOINT runs /app/main.js). */
export const INJECTED_IMAGE_APPS: Readonly<Record<string, string>> = {
  'ghcr.io/knet/client-init': 'client-init',
  'ghcr.io/knet/client-sidecar': 'client-sidecar',
};
/** docker/net-app.Dockerfile: the image's ENTRYPOINT and PATH. */
export const IMAGE_ENTRYPOINT: readonly string[] = ['node', '--enable-source-maps', '/app/main.js'];
export const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * gateway-webhook's flags for the lab's world (after the chart's): the lab's gateway name, its
 * overlay address (OVERLAY_GATEWAY) as the pods' only nameserver, every pod of a selected namespace routed.
 */
export const LAB_WEBHOOK_ARGS: readonly string[] = [
  `--gateway=${PodgwLab.GATEWAY_NAME}`,
  `--DNS=${OVERLAY_GATEWAY}`,
  '--DNSPolicy=None',
  '--setGatewayDefault',
  '--setGatewayLabel=setGateway',
];

/** The webhook's own resolv.conf, as a pod of namespace `ns` sees the lab's cluster DNS. */
export function labWebhookResolvConf(ns: string): string {
  return `search ${ns}.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${PodgwLab.CLUSTER_DNS}\noptions ndots:5\n`;
}

/** settings.sh as the chart's ConfigMap holds it (KEY="value" lines), for PodgwLab's settings. */
export function settingsSh(settings: Partial<Record<string, string>> = PodgwLab.SETTINGS): string {
  return `${Object.entries(settings)
    .map(([key, v]) => `${key}="${v}"`)
    .join('\n')}\n`;
}

/** The chart's ConfigMap `name` in routed namespace `ns`: the lab's settings.sh and nat.conf. */
export async function applyLabConfigMap(cp: ControlPlane, ns: string, name: string): Promise<void> {
  await cp.kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: ns },
      data: { 'settings.sh': settingsSh(), 'nat.conf': PodgwLab.NAT_CONF },
    }),
  });
}

/**
 * Creates a Pod through the API server (one container `app`, image `app:1`, plus `spec`), so the
 * admission webhooks see it, and reads it back as stored.
 */
export async function createPod(
  cp: ControlPlane,
  ns: string,
  metadata: { name?: string; generateName?: string; labels?: Record<string, string> },
  spec: object = {},
): Promise<V1Pod> {
  const created = JSON.parse(
    await cp.kubectlOk(['create', '-n', ns, '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata,
        spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
      }),
    }),
  ) as V1Pod;
  const name = created.metadata?.name ?? '';
  return JSON.parse(await cp.kubectlOk(['get', 'pod', name, '-n', ns, '-o', 'json'])) as V1Pod;
}

/**
 * The runtime's part, run by `unshare --mount --uts` inside the pod's network namespace:
 * `sh -c RUN sh ROOT HOSTNAME N (SOURCE TARGET ro|rw)×N ARGV…`. Builds the container's root on a
 * tmpfs at ROOT (the host's top-level entries bound read-only, /tmp empty), mounts each SOURCE at
 * TARGET (directories missing on the host are made inside tmpfs copies of their parents, in this
 * mount namespace only), makes the root read-only, sets the host name and execs ARGV chrooted.
 */
const RUN = `
set -eu
root=$1 name=$2 n=$3
shift 3
mount -t tmpfs -o mode=0755 pod-root "$root"
ours=' / '
mirror() {
  for e in "$1"/* "$1"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    t="$2/\${e##*/}"
    if [ "$e" = /tmp ]; then mkdir "$t"
    elif [ -L "$e" ]; then ln -s "$(readlink "$e")" "$t"
    elif [ -d "$e" ]; then mkdir "$t"; mount --rbind "$e" "$t"; mount -o remount,bind,ro "$t"
    else : >"$t"; mount --bind "$e" "$t"; mount -o remount,bind,ro "$t"; fi
  done
}
mirror "" "$root"
while [ "$n" -gt 0 ]; do
  src=$1 dst=$(realpath -m "$2") mode=$3
  shift 3; n=$((n - 1))
  if [ ! -e "$dst" ]; then
    a=$dst; while [ ! -e "$a" ]; do a=\${a%/*}; a=\${a:-/}; done
    l=''
    for c in $(echo "\${a#/}" | tr / ' '); do
      l="$l/$c"
      case $ours in *" $l "*) continue ;; esac
      umount -R "$root$l"; mount -t tmpfs -o mode=0755 pod-dir "$root$l"; mirror "$l" "$root$l"; ours="$ours$l "
    done
    if [ -d "$src" ]; then mkdir -p "$root$dst"; else mkdir -p "\${root}\${dst%/*}"; : >"$root$dst"; fi
  fi
  mount --bind "$src" "$root$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$dst"; fi
done
mount -o remount,ro "$root"
hostname "$name"
exec chroot "$root" "$@"`;

/** `ghcr.io/knet/client-init:test` → `ghcr.io/knet/client-init` (tag or digest dropped). */
export function repository(image: string): string {
  const noDigest = image.split('@')[0] ?? '';
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** The resolv.conf the kubelet writes for dnsPolicy None: dnsConfig's nameservers, searches, options. */
export function resolvConfOf(pod: V1Pod): string {
  const policy = pod.spec?.dnsPolicy;
  if (policy !== 'None') {
    throw new Error(
      `pod ${podName(pod)}: dnsPolicy is ${policy ?? 'unset'}; the pod runner writes resolv.conf for None only`,
    );
  }
  const dns = pod.spec?.dnsConfig ?? {};
  const lines = (dns.nameservers ?? []).map((n) => `nameserver ${n}`);
  if (dns.searches?.length) lines.push(`search ${dns.searches.join(' ')}`);
  const options = (dns.options ?? []).map((o) => (o.value === undefined ? o.name : `${o.name}:${o.value}`));
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

const podName = (pod: V1Pod) => `${pod.metadata?.namespace ?? ''}/${pod.metadata?.name ?? ''}`;

/** The kubelet's volumes: each of the pod's volumes as a directory, from the API server. */
async function materialise(cp: ControlPlane, pod: V1Pod, dir: string): Promise<Map<string, string>> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  // kube-root-ca.crt is published by the controller-manager shortly after the namespace exists.
  const configMap = async (cm: string) =>
    (
      await until(
        `ConfigMap ${ns}/${cm}`,
        async () => {
          const r = await cp.kubectl(['get', 'configmap', cm, '-n', ns, '-o', 'json']);
          return r.exitCode === 0 ? (JSON.parse(r.stdout) as { data?: Record<string, string> }) : undefined;
        },
        30_000,
      )
    ).data ?? {};
  const write = (file: string, content: string, mode: number) => {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, content);
    chmodSync(file, mode);
  };
  const out = new Map<string, string>();
  for (const v of pod.spec?.volumes ?? ([] as V1Volume[])) {
    const vdir = join(dir, 'volumes', v.name);
    mkdirSync(vdir, { recursive: true });
    if (v.emptyDir) {
      // nothing in it
    } else if (v.configMap) {
      const data = await configMap(v.configMap.name ?? '');
      const items = v.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }));
      for (const it of items)
        write(join(vdir, it.path), data[it.key] ?? '', v.configMap.defaultMode ?? 0o644);
    } else if (v.projected) {
      const mode = v.projected.defaultMode ?? 0o644;
      for (const s of v.projected.sources ?? []) {
        if (s.serviceAccountToken) {
          const t = s.serviceAccountToken;
          const token = await cp.kubectlOk([
            'create',
            'token',
            pod.spec?.serviceAccountName ?? 'default',
            '-n',
            ns,
            `--duration=${t.expirationSeconds ?? 3600}s`,
            ...(t.audience ? [`--audience=${t.audience}`] : []),
            '--bound-object-kind=Pod',
            `--bound-object-name=${name}`,
            `--bound-object-uid=${pod.metadata?.uid ?? ''}`,
          ]);
          write(join(vdir, t.path), token.trim(), mode);
        } else if (s.configMap) {
          const data = await configMap(s.configMap.name ?? '');
          for (const it of s.configMap.items ?? []) write(join(vdir, it.path), data[it.key] ?? '', mode);
        } else if (s.downwardAPI) {
          for (const it of s.downwardAPI.items ?? []) {
            write(join(vdir, it.path), fieldValue(pod, it.fieldRef?.fieldPath ?? ''), mode);
          }
        } else {
          throw new Error(
            `volume ${v.name}: projected source ${JSON.stringify(s)} not supported by the pod runner`,
          );
        }
      }
    } else {
      throw new Error(`volume ${v.name}: ${JSON.stringify(v)} not supported by the pod runner`);
    }
    out.set(v.name, vdir);
  }
  return out;
}

/** The downward API fields the spec uses. */
function fieldValue(pod: V1Pod, path: string): string {
  if (path === 'metadata.name') return pod.metadata?.name ?? '';
  if (path === 'metadata.namespace') return pod.metadata?.namespace ?? '';
  throw new Error(`fieldRef ${path} not supported by the pod runner`);
}

/** A container's env from the spec: values, and fieldRefs resolved from the stored pod. */
function envOf(pod: V1Pod, env: V1EnvVar[]): string[] {
  return env.map((e) => {
    if (e.value !== undefined) return `${e.name}=${e.value}`;
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (!path)
      throw new Error(`env ${e.name}: ${JSON.stringify(e.valueFrom)} not supported by the pod runner`);
    return `${e.name}=${fieldValue(pod, path)}`;
  });
}

/**
 * The runtime's securityContext, as setpriv arguments: root (runAsUser 0), only the added
 * capabilities (drop ALL), no_new_privs (allowPrivilegeEscalation false); the root is read-only in
 * any case, so the spec must say so. Anything else is refused with one line.
 */
function setprivOf(c: V1Container): string[] {
  const sc = c.securityContext ?? {};
  const refuse = (what: string, is: unknown, want: string) =>
    new Error(
      `container ${c.name}: securityContext.${what} is ${JSON.stringify(is)}, the pod runner needs ${want}`,
    );
  if (sc.runAsUser !== 0) throw refuse('runAsUser', sc.runAsUser, '0');
  if (JSON.stringify(sc.capabilities?.drop) !== '["ALL"]')
    throw refuse('capabilities.drop', sc.capabilities?.drop, '["ALL"]');
  if (sc.readOnlyRootFilesystem !== true)
    throw refuse('readOnlyRootFilesystem', sc.readOnlyRootFilesystem, 'true');
  const caps = (sc.capabilities?.add ?? []).map((cap) => `+${cap.toLowerCase()}`);
  return [
    'setpriv',
    `--bounding-set=-all${caps.length ? `,${caps.join(',')}` : ''}`,
    '--inh-caps=-all',
    ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
    '--',
  ];
}

export interface RunPodOptions {
  /** Image repository (no tag) → app bundle name; default {@link INJECTED_IMAGE_APPS}. */
  imageApps?: Readonly<Record<string, string>>;
  /** Time limit of each run-to-completion init container (default 90 s). */
  initTimeoutMs?: number;
}

export interface InitResult {
  name: string;
  exitCode: number | null;
  output: string;
}

/** A pod run by {@link runAdmittedPod}. */
export class RunningPod {
  /** Exit code and output of each run-to-completion init container, in order. */
  readonly inits: InitResult[] = [];
  /** The long-running injected containers (native or classic sidecars). */
  readonly sidecars: { name: string; proc: LabProcess }[] = [];
  private stopped = false;

  /** @internal use {@link runAdmittedPod} */
  constructor(
    readonly pod: V1Pod,
    /** The pod's network namespace in the lab. */
    readonly client: PodgwClient,
    /** The pod's folder (volumes, container roots, resolv.conf); removed by stop(). */
    readonly dir: string,
    /** The resolv.conf the kubelet wrote from dnsConfig. */
    readonly resolvConf: string,
    private readonly bridge: LoopbackBridge,
  ) {}

  get name(): string {
    return this.pod.metadata?.name ?? '';
  }

  /** The running sidecar `name`, or undefined. */
  sidecar(name: string): LabProcess | undefined {
    return this.sidecars.find((s) => s.name === name)?.proc;
  }

  /**
   * argv for the pod's network namespace that runs `argv` as a container of the pod: its mounts,
   * the pod's resolv.conf at /etc/resolv.conf, the pod's name as host name.
   */
  containerArgv(
    label: string,
    mounts: { source: string; target: string; readOnly: boolean }[],
    argv: string[],
  ): string[] {
    const root = join(this.dir, 'roots', label);
    mkdirSync(root, { recursive: true });
    const all = [...mounts, { source: this.resolvConf, target: '/etc/resolv.conf', readOnly: true }];
    return [
      '--mount',
      '--uts',
      '--propagation',
      'private',
      'sh',
      '-c',
      RUN,
      'sh',
      root,
      this.name,
      String(all.length),
      ...all.flatMap((m) => [m.source, m.target, m.readOnly ? 'ro' : 'rw']),
      ...argv,
    ];
  }

  /** `getent ahostsv4 NAME` in an app container of the pod (its resolv.conf): the addresses. */
  async lookup(name: string): Promise<{ addresses: string[]; canonical: string }> {
    const argv = this.containerArgv(
      'lookup',
      [],
      ['env', '-i', `PATH=${IMAGE_PATH}`, 'getent', 'ahostsv4', name],
    );
    const r = await this.client.host.exec('unshare', argv, { check: false, timeoutMs: 30_000 });
    const lines = r.stdout.trim().split('\n').filter(Boolean);
    const addresses = [...new Set(lines.map((l) => l.split(/\s+/)[0] ?? ''))];
    const canonical = lines.find((l) => l.split(/\s+/).length > 2)?.split(/\s+/)[2] ?? '';
    return { addresses, canonical };
  }

  /**
   * Kills the pod's containers and closes its loopback bridge to the API server; removes its
   * folder. The network namespace stays until the lab is disposed. Runs once.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    try {
      await Promise.all(this.sidecars.map((s) => s.proc.kill()));
      await this.bridge.close();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * The kubelet starting the injected containers of `pod` (as stored by `cp`'s API server), in
 * order, in a new client host of `lab`: init containers one after the other (a native sidecar,
 * restartPolicy Always, is started and the next one follows), then the injected containers among
 * the pod's containers (classic sidecars); the user's own containers are not run. Resolves when
 * the init containers are done — or at the first that exits non-zero (see `inits`), as a kubelet
 * would stop there. On an error the pod is stopped before the error is thrown.
 */
export async function runAdmittedPod(
  cp: ControlPlane,
  lab: PodgwLab,
  pod: V1Pod,
  opts: RunPodOptions = {},
): Promise<RunningPod> {
  const imageApps = opts.imageApps ?? INJECTED_IMAGE_APPS;
  const appOf = (c: V1Container) => imageApps[repository(c.image ?? '')];
  const name = pod.metadata?.name ?? '';
  const resolv = resolvConfOf(pod);
  const client = await lab.addClient(name);
  const dir = join(lab.dir, 'pods', name);
  mkdirSync(dir, { recursive: true });
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, resolv);
  const apiPort = Number(new URL(cp.server).port);
  const run = new RunningPod(pod, client, dir, resolvConf, await bridgeLoopbackPort(client.host, apiPort));
  try {
    const volumes = await materialise(cp, pod, dir);
    const kubeletEnv = [
      `PATH=${IMAGE_PATH}`,
      `HOSTNAME=${name}`,
      'KUBERNETES_SERVICE_HOST=127.0.0.1',
      `KUBERNETES_SERVICE_PORT=${apiPort}`,
    ];
    const argvOf = async (c: V1Container, app: string): Promise<string[]> => {
      const bundle = await appBundle(app);
      const mounts = (c.volumeMounts ?? []).map((m) => {
        const source = volumes.get(m.name);
        if (!source) throw new Error(`container ${c.name}: volume ${m.name} is not in the pod spec`);
        if (m.subPath) throw new Error(`container ${c.name}: subPath not supported by the pod runner`);
        return { source, target: m.mountPath, readOnly: m.readOnly ?? false };
      });
      mounts.push({ source: bundle, target: '/app/main.js', readOnly: true });
      return run.containerArgv(c.name, mounts, [
        ...setprivOf(c),
        'env',
        '-i',
        ...kubeletEnv,
        ...envOf(pod, c.env ?? []),
        ...(c.command ?? IMAGE_ENTRYPOINT),
        ...(c.args ?? []),
      ]);
    };
    const start = async (c: V1Container, app: string) => {
      run.sidecars.push({ name: c.name, proc: client.host.spawn('unshare', await argvOf(c, app)) });
    };

    for (const c of pod.spec?.initContainers ?? []) {
      const app = appOf(c);
      if (!app)
        throw new Error(`pod ${podName(pod)}: init container ${c.name} (${c.image}) is not an injected one`);
      if (c.restartPolicy === 'Always') {
        await start(c, app);
        continue;
      }
      const r = await client.host.exec('unshare', await argvOf(c, app), {
        check: false,
        timeoutMs: opts.initTimeoutMs ?? 90_000,
      });
      run.inits.push({ name: c.name, exitCode: r.exitCode, output: `${r.stdout}${r.stderr}` });
      if (r.exitCode !== 0) return run;
    }
    for (const c of pod.spec?.containers ?? []) {
      const app = appOf(c);
      if (app) await start(c, app);
    }
    return run;
  } catch (e) {
    await run.stop();
    throw e;
  }
}
