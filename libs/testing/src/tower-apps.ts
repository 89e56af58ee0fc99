/**
 * tower-proxy and tower-agent as processes: the app bundles run with the node flags of their
 * images, either with a test's own flags (e2e/tower) or as their charts deploy them (the lab).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appBundle } from './bundle';
import { ChartBed, chartContainer, replaceFlags } from './charts';
import { ManagedProcess, freePort, type ControlPlane } from './controlplane';
import { shippedNodeFlags } from './image';
import { TOWER_NAMESPACE } from './tower-host';
import { until } from './wait';

export interface RunningProxy {
  proc: ManagedProcess;
  /** The agent port (also /healthz, /readyz, /version), on 127.0.0.1. */
  port: number;
  /** `http://127.0.0.1:<port>`: what agents dial. */
  url: string;
  /** Its SSH host key's fingerprint, as /version reports it. */
  fingerprint: string;
  /** What it runs after the image's node flags: node flags of the test, the bundle, its flags. */
  args: string[];
}

/** A random per-cluster listener range of `size` ports (their ks-apiserver ports 10000 higher), so runs do not collide. */
export function towerPortRange(size = 50): string {
  const base = 10_000 + Math.floor(Math.random() * 190) * 50;
  return `${base}-${base + size}`;
}

/**
 * Starts tower-proxy (`args`: node flags, the bundle, its flags; the image's node flags go first)
 * and waits until /version answers and, unless `waitReady` is false, /readyz is ok. The process is
 * stopped again when that fails.
 */
export async function launchTowerProxy(
  args: string[],
  port: number,
  logFile: string,
  opts: { waitReady?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningProxy> {
  const proc = ManagedProcess.start(
    'tower-proxy',
    process.execPath,
    [...shippedNodeFlags('tower-proxy.Dockerfile'), ...args],
    logFile,
    opts.env,
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    const fingerprint = await until(
      () => `tower-proxy to become ready; its log:\n${proc.tail(30)}`,
      async () => {
        const r = await fetch(`${url}/version`).catch(() => undefined);
        if (!r?.ok) return undefined;
        if (opts.waitReady === false) return ((await r.json()) as { fingerprint: string }).fingerprint;
        const ready = await fetch(`${url}/readyz`)
          .then((x) => x.ok)
          .catch(() => false);
        return ready ? ((await r.json()) as { fingerprint: string }).fingerprint : undefined;
      },
      30_000,
    );
    return { proc, port, url, fingerprint, args };
  } catch (e) {
    // Never returned, so no caller could stop it.
    await proc.stop();
    throw e;
  }
}

/**
 * Starts tower-agent (`args`: the bundle and its flags, after the image's node flags) with the
 * Cluster's token in TOWER_TOKEN, as the chart gives it, and without the caller's KUBECONFIG.
 */
export function launchTowerAgent(
  name: string,
  args: string[],
  token: string,
  logFile: string,
  env: NodeJS.ProcessEnv = {},
): ManagedProcess {
  const full: NodeJS.ProcessEnv = { ...process.env, ...env, TOWER_TOKEN: token };
  delete full['KUBECONFIG'];
  return ManagedProcess.start(
    name,
    process.execPath,
    [...shippedNodeFlags('tower-agent.Dockerfile'), ...args],
    logFile,
    full,
  );
}

/**
 * A pod's service-account directory (`token`, `ca.crt`, as the kubelet mounts it) for ServiceAccount
 * `namespace/name`, which must exist, in the control plane's temp dir (removed with it). The token
 * is a bound one from the TokenRequest API, valid `durationSeconds`.
 */
export async function serviceAccountDir(
  cp: ControlPlane,
  namespace: string,
  name: string,
  durationSeconds = 3600,
): Promise<string> {
  const dir = join(cp.dir, `serviceaccount-${namespace}-${name}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'ca.crt'), cp.caPem);
  await writeServiceAccountToken(cp, dir, namespace, name, durationSeconds);
  return dir;
}

/** Writes a new token of ServiceAccount `namespace/name` to `dir/token` (a kubelet's rotation); returns it. */
export async function writeServiceAccountToken(
  cp: ControlPlane,
  dir: string,
  namespace: string,
  name: string,
  durationSeconds = 3600,
): Promise<string> {
  const token = (
    await cp.kubectlOk(['create', 'token', name, '-n', namespace, `--duration=${durationSeconds}s`])
  ).trim();
  writeFileSync(join(dir, 'token'), token);
  return token;
}

export interface ChartAppOptions {
  /** The process's log file. */
  logFile: string;
  /** Lifetime of the ServiceAccount token it runs with (default one hour; a lab runs longer). */
  tokenSeconds?: number;
}

/**
 * tower-proxy as charts/tower-proxy deploys it with its default values, on loopback: the chart's
 * ServiceAccount and RBAC applied to `host` (a tower host: prepareTowerHost), the bundle run with
 * the Deployment's args and env except what a pod gets from its node — the listen addresses
 * (127.0.0.1), the ports (free ones, a random listener range), the address published in the
 * Clusters (127.0.0.1 instead of the Service mc-<cluster>'s ClusterIP, which nothing routes here) —
 * and with that ServiceAccount's token, so the chart's RBAC is all it has.
 */
export async function startChartTowerProxy(host: ControlPlane, opts: ChartAppOptions): Promise<RunningProxy> {
  const chart = new ChartBed(host, {
    chart: 'tower-proxy',
    release: 'tower-proxy',
    namespace: TOWER_NAMESPACE,
  });
  const [bundle, port, metricsPort] = await Promise.all([appBundle('tower-proxy'), freePort(), freePort()]);
  await chart.apply(await chart.render(showOnly(['serviceaccount.yaml', 'rbac.yaml'])));
  const c = await chartContainer(chart, 'deployment.yaml', 'tower-proxy', {
    fields: { 'metadata.namespace': TOWER_NAMESPACE, 'metadata.name': 'tower-proxy-0' },
  });
  const kubeconfig = await host.serviceAccountKubeconfig(TOWER_NAMESPACE, 'tower-proxy', opts.tokenSeconds);
  const args = replaceFlags(c.args, {
    '--host': '127.0.0.1',
    '--port': port,
    // /metrics is served on --host.
    '--metrics-port': metricsPort,
    '--listen-address': '127.0.0.1',
    '--port-range': towerPortRange(),
    '--publish-service-address': '127.0.0.1',
    '--kubeconfig': kubeconfig,
  });
  return launchTowerProxy([bundle, ...args], port, opts.logFile, { env: { ...process.env, ...c.env } });
}

export interface RunningAgent {
  proc: ManagedProcess;
  /** `http://127.0.0.1:<metrics port>`: /healthz, /readyz (ready while connected), /metrics. */
  metricsUrl: string;
}

/**
 * tower-agent of Cluster `cluster` as charts/tower-agent deploys it with its default values (and the
 * required ones: the cluster, `proxy`'s address and fingerprint, the Cluster's `token`) in `member`:
 * the chart's ServiceAccount and RBAC applied there (the ClusterRole `view`: what the host may do
 * through the tunnel), the bundle run with the Deployment's args and env except what a pod gets
 * from its node — the metrics address (127.0.0.1, a free port), the service-account directory and
 * the kube-apiserver's address (`member`'s) — and the ks-apiserver target, off ("none": its default
 * is a Service name, which only a cluster's DNS resolves).
 */
export async function startChartTowerAgent(
  member: ControlPlane,
  cluster: { name: string; token: string; proxy: RunningProxy },
  opts: ChartAppOptions,
): Promise<RunningAgent> {
  const chart = new ChartBed(member, {
    chart: 'tower-agent',
    release: 'tower-agent',
    namespace: TOWER_NAMESPACE,
  });
  const values = {
    name: cluster.name,
    proxyServer: cluster.proxy.url,
    fingerprint: cluster.proxy.fingerprint,
    token: cluster.token,
  };
  const [bundle, metricsPort] = await Promise.all([appBundle('tower-agent'), freePort()]);
  await member.kubectl(['create', 'namespace', TOWER_NAMESPACE]);
  await chart.apply(await chart.render(showOnly(['serviceaccount.yaml', 'rbac.yaml']), { values }));
  const c = await chartContainer(chart, 'deployment.yaml', 'tower-agent', {
    values,
    fields: { 'metadata.name': 'tower-agent-0' },
    secrets: { 'tower-agent-token/token': cluster.token },
  });
  const saDir = await serviceAccountDir(member, TOWER_NAMESPACE, 'tower-agent', opts.tokenSeconds);
  const args = replaceFlags(c.args, {
    '--metrics-host': '127.0.0.1',
    '--metrics-port': metricsPort,
    '--kubesphere-service': 'none',
    '--service-account-dir': saDir,
    '--kubernetes-service': `127.0.0.1:${new URL(member.server).port}`,
  });
  const { TOWER_TOKEN: token = cluster.token, ...env } = c.env;
  const proc = launchTowerAgent('tower-agent', [bundle, ...args], token, opts.logFile, env);
  return { proc, metricsUrl: `http://127.0.0.1:${metricsPort}` };
}

const showOnly = (templates: readonly string[]) =>
  templates.flatMap((t) => ['--show-only', `templates/${t}`]);
