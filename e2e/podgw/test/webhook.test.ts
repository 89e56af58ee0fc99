/**
 * The admitted Pod spec is enough to route the pod: gateway-webhook, called by the real
 * kube-apiserver, injects pod-gateway's clients into pods; the test then plays the kubelet and the
 * container runtime for the injected containers of the spec *as the API server stored it* — each
 * image's app bundle (knet/client-init → client-init, knet/client-sidecar → client-sidecar) at the
 * image's path and entrypoint, in the kubelet's order, with the spec's env, volume mounts (the
 * ConfigMap read back from the API server, the service account token, the empty no-token
 * volume), securityContext (capabilities, no new privileges, read-only root) and DNS (the
 * resolv.conf the kubelet writes from dnsConfig) — in a network namespace of PodgwLab with a real
 * gateway, and shows the pod routed through it.
 *
 * Each container runs in a private mount and UTS namespace inside the pod's network namespace: a
 * tmpfs root holding the host's top-level directories read-only (the "image"; /tmp stays empty),
 * the app bundle bind-mounted at /app/main.js, and each volume bind-mounted at its mountPath.
 * Where the path does not exist on the host (/config, /var/run/secrets/…), the directories on the
 * way are rebuilt as tmpfs inside that mount namespace only; nothing is created on the host.
 *
 * What the test adds that is not in the spec, as a kubelet and runtime would: PATH (the image's
 * ENV), the host name and HOSTNAME (the pod's name), KUBERNETES_SERVICE_HOST/PORT (the kubelet sets
 * them in every container; here they point at the API server bridged onto the pod's loopback, as
 * kube-proxy would lead the kubernetes Service to it), and /etc/resolv.conf.
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Volume } from '@kubernetes/client-node';
import {
  ControlPlane,
  PodgwLab,
  WebhookBed,
  appBundle,
  bridgeLoopbackPort,
  type LabProcess,
  type LoopbackBridge,
  type PodgwClient,
  type PodgwGateway,
  until,
} from '@knet/testing';

const { CLUSTER_DNS, INTERNET, VPN_SERVER } = PodgwLab;

jest.setTimeout(300_000);

const NS = 'vpn';
/** Routed by the classic webhook (sidecar as a container) and by the native one (--sidecarAsInit). */
const CLASSIC_NS = 'media';
const NATIVE_NS = 'batch';
const GW_POD_IP = '192.0.2.10';
const GW_VPN_IP = '203.0.113.2';
const OVERLAY_GATEWAY = '172.16.0.1';
/** The webhook's own resolv.conf, as a pod of the gateway's namespace sees the lab's cluster DNS. */
const WEBHOOK_RESOLV = `search ${NS}.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${CLUSTER_DNS}\noptions ndots:5\n`;
const WEBHOOK_ARGS = [
  `--gateway=${PodgwLab.GATEWAY_NAME}`,
  `--DNS=${OVERLAY_GATEWAY}`,
  '--DNSPolicy=None',
  '--setGatewayDefault',
  '--setGatewayLabel=setGateway',
];
/** The images the webhook injects, and the app each one is (its ENTRYPOINT runs /app/main.js). */
const IMAGE_APPS: Record<string, string> = {
  'knet/client-init': 'client-init',
  'knet/client-sidecar': 'client-sidecar',
};
/** docker/net-app.Dockerfile: the image's ENTRYPOINT and PATH. */
const ENTRYPOINT = ['node', '--enable-source-maps', '/app/main.js'];
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

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

let cp: ControlPlane | undefined;
let w: PodgwLab;
let gw: PodgwGateway;
const beds: WebhookBed[] = [];
const bridges: LoopbackBridge[] = [];
let web: V1Pod;
let job: V1Pod;
let settingsSh: string;

beforeAll(async () => {
  // Each kept as soon as it is up, so afterAll stops it even when the other failed to start.
  await Promise.all([
    ControlPlane.start({ controllerManager: true }).then((c) => (cp = c)),
    PodgwLab.create().then((l) => (w = l)),
  ]);
  const k = cp as ControlPlane;
  for (const ns of [NS, CLASSIC_NS, NATIVE_NS]) await k.kubectlOk(['create', 'namespace', ns]);
  await k.kubectlOk(['label', 'namespace', CLASSIC_NS, 'routed-gateway=true']);
  await k.kubectlOk(['label', 'namespace', NATIVE_NS, 'routed-gateway-native=true']);

  // The chart's ConfigMap, in each routed namespace: the lab's settings.sh and nat.conf, rendered
  // as the lab writes them (KEY="value" lines).
  settingsSh = `${Object.entries(PodgwLab.SETTINGS)
    .map(([key, v]) => `${key}="${v}"`)
    .join('\n')}\n`;
  for (const [ns, name] of [
    [CLASSIC_NS, 'pod-gateway'],
    [NATIVE_NS, 'pod-gateway-native'],
  ] as const) {
    await k.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name, namespace: ns },
        data: { 'settings.sh': settingsSh, 'nat.conf': PodgwLab.NAT_CONF },
      }),
    });
  }
  // client-sidecar reads its own pod (classic sidecar): the chart's Role for clientServiceAccounts.
  await k.grant(CLASSIC_NS, 'default', { verbs: ['get'], resources: ['pods'], role: 'pod-gateway-client' });

  beds.push(
    await WebhookBed.start(k, {
      name: 'pod-gateway',
      namespace: NS,
      namespaceLabel: { key: 'routed-gateway', value: 'true' },
      // A classic sidecar (the chart's default is a native one, as the second gateway below).
      values: { webhook: { sidecarAsInit: false } },
      args: WEBHOOK_ARGS,
      resolvConf: WEBHOOK_RESOLV,
    }),
  );
  beds.push(
    await WebhookBed.start(k, {
      name: 'pod-gateway-native',
      namespace: NS,
      namespaceLabel: { key: 'routed-gateway-native', value: 'true' },
      args: [...WEBHOOK_ARGS, '--sidecarAsInit'],
      resolvConf: WEBHOOK_RESOLV,
    }),
  );

  // Created through the API server, then read back as stored.
  web = await admitted(CLASSIC_NS, { name: 'web' });
  job = await admitted(NATIVE_NS, { generateName: 'batch-' }, { restartPolicy: 'Never' });

  // The gateway, as e2e.test.ts starts it.
  gw = await w.addGateway(GW_POD_IP, GW_VPN_IP);
  const resolv = w.resolvConf(gw);
  const init = await w.gatewayInit(gw, resolv);
  if (init.exitCode !== 0) throw new Error(`gateway-init failed: ${init.stdout}${init.stderr}`);
  writeFileSync(resolv, `nameserver ${VPN_SERVER}\n`);
  await w.startGatewaySidecar(gw, resolv);
});

afterAll(async () => {
  const steps = [
    ...bridges.map((b) => () => b.close()),
    () => w?.dispose(),
    ...beds.map((b) => () => b.remove()),
    () => cp?.stop(),
  ];
  const errors: unknown[] = [];
  for (const step of steps) await Promise.resolve(step()).catch((e: unknown) => errors.push(e));
  if (errors.length > 0) throw errors[0];
});

async function admitted(ns: string, metadata: object, spec: object = {}): Promise<V1Pod> {
  const created = JSON.parse(
    await kube().kubectlOk(['create', '-n', ns, '-o', 'json', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata,
        spec: { containers: [{ name: 'app', image: 'app:1' }], ...spec },
      }),
    }),
  ) as V1Pod;
  const name = created.metadata?.name ?? '';
  return JSON.parse(await kube().kubectlOk(['get', 'pod', name, '-n', ns, '-o', 'json'])) as V1Pod;
}

function kube(): ControlPlane {
  if (!cp) throw new Error('no control plane');
  return cp;
}

const isInjected = (c: V1Container) => IMAGE_APPS[repository(c.image ?? '')] !== undefined;

/** `knet/client-init:test` → `knet/client-init` (tag or digest dropped). */
function repository(image: string): string {
  const noDigest = image.split('@')[0] ?? '';
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** The resolv.conf the kubelet writes for dnsPolicy None: dnsConfig's nameservers, searches, options. */
function resolvConfOf(pod: V1Pod): string {
  expect(pod.spec?.dnsPolicy).toBe('None');
  const dns = pod.spec?.dnsConfig ?? {};
  const lines = (dns.nameservers ?? []).map((n) => `nameserver ${n}`);
  if (dns.searches?.length) lines.push(`search ${dns.searches.join(' ')}`);
  const options = (dns.options ?? []).map((o) => (o.value === undefined ? o.name : `${o.name}:${o.value}`));
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

/** The kubelet's volumes: each of the pod's volumes as a directory, from the API server. */
async function materialise(pod: V1Pod, dir: string): Promise<Map<string, string>> {
  const ns = pod.metadata?.namespace ?? '';
  const name = pod.metadata?.name ?? '';
  // kube-root-ca.crt is published by the controller-manager shortly after the namespace exists.
  const configMap = async (cm: string) =>
    (
      await until(
        `ConfigMap ${ns}/${cm}`,
        async () => {
          const r = await kube().kubectl(['get', 'configmap', cm, '-n', ns, '-o', 'json']);
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
          const token = await kube().kubectlOk([
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
            `volume ${v.name}: projected source ${JSON.stringify(s)} not supported by the test`,
          );
        }
      }
    } else {
      throw new Error(`volume ${v.name}: ${JSON.stringify(v)} not supported by the test`);
    }
    out.set(v.name, vdir);
  }
  return out;
}

/** The downward API fields the spec uses. */
function fieldValue(pod: V1Pod, path: string): string {
  if (path === 'metadata.name') return pod.metadata?.name ?? '';
  if (path === 'metadata.namespace') return pod.metadata?.namespace ?? '';
  throw new Error(`fieldRef ${path} not supported by the test`);
}

/** A container's env from the spec: values, and fieldRefs resolved from the stored pod. */
function envOf(pod: V1Pod, env: V1EnvVar[]): string[] {
  return env.map((e) => {
    if (e.value !== undefined) return `${e.name}=${e.value}`;
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (!path) throw new Error(`env ${e.name}: ${JSON.stringify(e.valueFrom)} not supported by the test`);
    return `${e.name}=${fieldValue(pod, path)}`;
  });
}

interface RunningPod {
  pod: V1Pod;
  client: PodgwClient;
  dir: string;
  resolvConf: string;
  /** Exit code and output of each run-to-completion init container. */
  inits: { name: string; exitCode: number | null; output: string }[];
  /** The long-running injected container (native or classic sidecar). */
  sidecars: { name: string; proc: LabProcess }[];
}

/**
 * argv for the pod's network namespace that runs `argv` as a container of `pod`: its mounts, the
 * pod's resolv.conf at /etc/resolv.conf, the pod's name as host name.
 */
function containerArgv(
  run: { dir: string; pod: V1Pod; resolvConf: string },
  label: string,
  mounts: { source: string; target: string; readOnly: boolean }[],
  argv: string[],
): string[] {
  const root = join(run.dir, 'roots', label);
  mkdirSync(root, { recursive: true });
  const all = [...mounts, { source: run.resolvConf, target: '/etc/resolv.conf', readOnly: true }];
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
    run.pod.metadata?.name ?? '',
    String(all.length),
    ...all.flatMap((m) => [m.source, m.target, m.readOnly ? 'ro' : 'rw']),
    ...argv,
  ];
}

/** The kubelet starting the injected containers of `pod`, in order, in a lab client host. */
async function startPod(pod: V1Pod): Promise<RunningPod> {
  const name = pod.metadata?.name ?? '';
  const client = await w.addClient(name);
  const dir = join(w.dir, 'pods', name);
  mkdirSync(dir, { recursive: true });
  const resolvConf = join(dir, 'resolv.conf');
  writeFileSync(resolvConf, resolvConfOf(pod));
  const volumes = await materialise(pod, dir);
  const apiPort = Number(new URL(kube().server).port);
  bridges.push(await bridgeLoopbackPort(client.host, apiPort));
  const kubeletEnv = [
    `PATH=${IMAGE_PATH}`,
    `HOSTNAME=${name}`,
    'KUBERNETES_SERVICE_HOST=127.0.0.1',
    `KUBERNETES_SERVICE_PORT=${apiPort}`,
  ];
  const run: RunningPod = { pod, client, dir, resolvConf, inits: [], sidecars: [] };

  const argvOf = async (c: V1Container): Promise<string[]> => {
    const app = IMAGE_APPS[repository(c.image ?? '')] ?? '';
    const bundle = await appBundle(app);
    const mounts = (c.volumeMounts ?? []).map((m) => {
      const source = volumes.get(m.name);
      if (!source) throw new Error(`${c.name}: volume ${m.name} is not in the pod spec`);
      if (m.subPath) throw new Error(`${c.name}: subPath not supported by the test`);
      return { source, target: m.mountPath, readOnly: m.readOnly ?? false };
    });
    mounts.push({ source: bundle, target: '/app/main.js', readOnly: true });
    const sc = c.securityContext ?? {};
    // The runtime's securityContext: root (runAsUser 0), only the added capabilities (drop ALL),
    // no_new_privs (allowPrivilegeEscalation false); the root is read-only in any case.
    expect(sc.runAsUser).toBe(0);
    expect(sc.capabilities?.drop).toEqual(['ALL']);
    expect(sc.readOnlyRootFilesystem).toBe(true);
    const caps = (sc.capabilities?.add ?? []).map((cap) => `+${cap.toLowerCase()}`);
    const setpriv = [
      'setpriv',
      `--bounding-set=-all${caps.length ? `,${caps.join(',')}` : ''}`,
      '--inh-caps=-all',
      ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
      '--',
    ];
    return containerArgv(run, c.name, mounts, [
      ...setpriv,
      'env',
      '-i',
      ...kubeletEnv,
      ...envOf(pod, c.env ?? []),
      ...(c.command ?? ENTRYPOINT),
      ...(c.args ?? []),
    ]);
  };

  // Init containers in order (a native sidecar is started and the next one follows), then the
  // containers; the user's own containers are not run (the test stands in for the app).
  for (const c of pod.spec?.initContainers ?? []) {
    if (!isInjected(c)) throw new Error(`init container ${c.name} (${c.image}) is not an injected one`);
    if (c.restartPolicy === 'Always') {
      run.sidecars.push({ name: c.name, proc: client.host.spawn('unshare', await argvOf(c)) });
      continue;
    }
    const r = await client.host.exec('unshare', await argvOf(c), { check: false, timeoutMs: 90_000 });
    run.inits.push({ name: c.name, exitCode: r.exitCode, output: `${r.stdout}${r.stderr}` });
    if (r.exitCode !== 0) return run;
  }
  for (const c of pod.spec?.containers ?? []) {
    if (isInjected(c))
      run.sidecars.push({ name: c.name, proc: client.host.spawn('unshare', await argvOf(c)) });
  }
  return run;
}

/** `getent ahostsv4 NAME` in an app container of the pod (its resolv.conf): the addresses. */
async function lookup(run: RunningPod, name: string): Promise<{ addresses: string[]; canonical: string }> {
  const argv = containerArgv(
    run,
    'lookup',
    [],
    ['env', '-i', `PATH=${IMAGE_PATH}`, 'getent', 'ahostsv4', name],
  );
  const r = await run.client.host.exec('unshare', argv, { check: false, timeoutMs: 30_000 });
  const lines = r.stdout.trim().split('\n').filter(Boolean);
  const addresses = [...new Set(lines.map((l) => l.split(/\s+/)[0] ?? ''))];
  const canonical = lines.find((l) => l.split(/\s+/).length > 2)?.split(/\s+/)[2] ?? '';
  return { addresses, canonical };
}

describe('a pod admitted by gateway-webhook is routed by its spec alone', () => {
  it('the stored pods carry client-init first, the sidecar, the ConfigMap and the gateway as DNS', () => {
    expect(readFileSync(join(w.configDir, 'settings.sh'), 'utf8')).toBe(settingsSh);
    for (const pod of [web, job]) {
      const init = pod.spec?.initContainers?.[0];
      expect(init?.name).toBe('gateway-init');
      expect(repository(init?.image ?? '')).toBe('knet/client-init');
      expect(pod.spec?.dnsConfig?.nameservers).toEqual([OVERLAY_GATEWAY]);
      expect(init?.env).toContainEqual({ name: 'K8S_DNS_ips', value: CLUSTER_DNS });
      // The image's entrypoint runs: no command, no args.
      expect(init?.command).toBeUndefined();
      expect(init?.args).toBeUndefined();
      // The apps read /config/settings.sh and /config/nat.conf by default: the mountPath.
      expect(init?.volumeMounts).toContainEqual({
        name: 'gateway-configmap',
        mountPath: '/config',
        readOnly: true,
      });
    }
    expect(web.spec?.containers.map((c) => c.name)).toEqual(['app', 'gateway-sidecar']);
    expect(job.metadata?.name).toMatch(/^batch-[a-z0-9]{5}$/);
    expect(job.spec?.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
      ['gateway-init', undefined],
      ['gateway-sidecar', 'Always'],
    ]);
    expect(job.spec?.containers.map((c) => c.name)).toEqual(['app']);
  });

  describe('web (classic sidecar, nat.conf: static .10 and a port forward)', () => {
    let run: RunningPod;
    beforeAll(async () => {
      run = await startPod(web);
    });

    it('client-init exits 0, routed through the gateway, with the static overlay address', async () => {
      expect(run.inits.map((i) => [i.name, i.exitCode])).toEqual([['gateway-init', 0]]);
      expect(run.inits[0]?.output).toContain('routed through the gateway');
      expect(await w.overlayAddress(run.client)).toBe('172.16.0.10');
    });

    it('client-sidecar reports routed, and read its own pod with the token the spec mounts', async () => {
      const sidecar = run.sidecars.find((s) => s.name === 'gateway-sidecar')?.proc;
      expect(sidecar).toBeDefined();
      await sidecar?.waitForOutput(/routed through the gateway/, 30_000);
      await sidecar?.waitForOutput(/this pod never finishes by itself/, 30_000);
      expect(sidecar?.output()).not.toContain('cannot read this pod');
      expect(sidecar?.running).toBe(true);
    });

    it('the sidecar runs as the spec says: the entrypoint, its capabilities only, the spec env and no more', () => {
      const sidecar = run.sidecars.find((s) => s.name === 'gateway-sidecar')?.proc;
      const spec = web.spec?.containers.find((c) => c.name === 'gateway-sidecar');
      // ip netns exec, unshare, sh, chroot, setpriv and env all exec: the pid is the app's.
      const proc = (file: string) => readFileSync(`/proc/${sidecar?.pid}/${file}`, 'utf8');
      expect(proc('cmdline').split('\0').filter(Boolean)).toEqual(ENTRYPOINT);
      // NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13); allowPrivilegeEscalation false.
      expect(/^CapEff:\s*(\w+)$/m.exec(proc('status'))?.[1]).toBe('0000000000003400');
      expect(/^NoNewPrivs:\s*(\d)$/m.exec(proc('status'))?.[1]).toBe('1');
      const env = proc('environ').split('\0').filter(Boolean);
      expect(env.map((kv) => kv.slice(0, kv.indexOf('='))).sort()).toEqual(
        [
          ...(spec?.env ?? []).map((e) => e.name),
          'PATH',
          'HOSTNAME',
          'KUBERNETES_SERVICE_HOST',
          'KUBERNETES_SERVICE_PORT',
        ].sort(),
      );
      expect(env).toEqual(expect.arrayContaining(['POD_NAME=web', `POD_NAMESPACE=${CLASSIC_NS}`]));
    });

    it('the internet host sees the VPN address, and the forwarded port reaches the pod', async () => {
      expect(await w.whoami(run.client.host, INTERNET)).toBe(GW_VPN_IP);
      expect(await run.client.host.ip('route', 'show', 'default')).toMatch(
        /default via 172\.16\.0\.1 dev vxlan0/,
      );
      await w.serveWhoami(run.client.host, '172.16.0.10', 80);
      expect(await w.whoami(w.vpn, GW_VPN_IP, 8080)).toBe(VPN_SERVER);
    });

    it("DNS with the pod's resolv.conf: the gateway answers outside names (VPN) and cluster names (split)", async () => {
      expect(readFileSync(run.resolvConf, 'utf8')).toBe(
        `nameserver ${OVERLAY_GATEWAY}\nsearch ${CLASSIC_NS}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`,
      );
      // Straight to the admitted nameserver (the gateway's overlay address).
      const [nameserver = ''] = web.spec?.dnsConfig?.nameservers ?? [];
      expect(await w.resolve(run.client.host, nameserver, 'www.outside.example')).toBe(`["${INTERNET}"]`);
      expect(await w.resolve(run.client.host, nameserver, 'web.default.svc.cluster.local')).toBe(
        '["198.51.100.20"]',
      );
      // The libc resolver of an app container: nameserver and search list from dnsConfig.
      expect(await lookup(run, 'web.default')).toEqual({
        addresses: ['198.51.100.20'],
        canonical: 'web.default.svc.cluster.local',
      });
      expect((await lookup(run, 'outside.example')).addresses).toEqual([INTERNET]);
    });
  });

  describe('a generated name (native sidecar, DHCP lease)', () => {
    let run: RunningPod;
    beforeAll(async () => {
      run = await startPod(job);
    });

    it('client-init takes a lease; the native sidecar reports routed without any API access', async () => {
      expect(run.inits.map((i) => [i.name, i.exitCode])).toEqual([['gateway-init', 0]]);
      expect(run.inits[0]?.output).toContain('routed through the gateway');
      expect(await w.overlayAddress(run.client)).toMatch(
        /^172\.16\.0\.(2\d|[3-9]\d|1\d\d|2[0-4]\d|25[0-4])$/,
      );
      const sidecar = run.sidecars.find((s) => s.name === 'gateway-sidecar')?.proc;
      await sidecar?.waitForOutput(/routed through the gateway/, 30_000);
      expect(sidecar?.running).toBe(true);
      expect(sidecar?.output()).not.toMatch(/cannot read this pod|no Kubernetes credentials/);
    });

    it('reaches the internet host through the VPN and resolves through the gateway', async () => {
      expect(await w.whoami(run.client.host, INTERNET)).toBe(GW_VPN_IP);
      expect(await lookup(run, 'web.default')).toEqual({
        addresses: ['198.51.100.20'],
        canonical: 'web.default.svc.cluster.local',
      });
      expect((await lookup(run, 'www.outside.example')).addresses).toEqual([INTERNET]);
      // The static pod's name, from nat.conf, through the gateway's DNS.
      expect((await lookup(run, 'web')).addresses).toEqual(['172.16.0.10']);
    });
  });
});
