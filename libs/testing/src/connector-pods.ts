/**
 * A release of the connector chart whose pods are processes: the chart is installed for real
 * (`helm install` into a test-bed API server: ServiceAccount, Role, claims ConfigMap), and each
 * "pod" runs connector-init's bundle with the sidecar's args and env as the chart renders them —
 * authenticated as the chart's ServiceAccount — plus a "connector container": the launcher the
 * sidecar installs, running a fake connector that heartbeats the fake tenant with the pair it got.
 * Only the pod's own values are replaced (its name, the handoff dir, the tenant's URL). Used by
 * connector-init's tests, the connector benchmark and the lab's connector scene.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChartBed, chartContainer, type ChartContainer } from './charts';
import { ManagedProcess, type ControlPlane } from './controlplane';
import { run, type RunResult } from './exec';
import { shippedNodeFlags } from './image';
import type { FakeTwingateTenant } from './twingate-tenant';
import { workspaceRoot } from './workspace';

/**
 * The fake connector process (a plain ES module run by node). A function, not a constant: the test
 * kit is imported by the lab, whose first job is to refuse a non-root user, so importing it must
 * not touch the file system (as uid 65534, access() to a root-only checkout fails).
 */
export const fakeConnectorScript = () =>
  join(workspaceRoot(), 'libs', 'testing', 'assets', 'fake-connector.mjs');

/** The tenant slug the chart is installed with (the pods talk to the fake tenant's URL instead). */
const ACCOUNT = 'lab.twingate.com';

export interface ConnectorPod {
  ordinal: number;
  handoffDir: string;
  sidecar: ManagedProcess;
  connector?: ManagedProcess;
}

export interface ConnectorReleaseOptions {
  cp: ControlPlane;
  tenant: FakeTwingateTenant;
  /** connector-init's bundle (`appBundle('connector-init')`). */
  bundle: string;
  /** The release name; the chart's fullname is set to it. */
  release: string;
  namespace: string;
  /** The remote network's name. */
  network: string;
  replicas: number;
  /** The admin API key the chart's Secret holds (default `test-key`). */
  apiKey?: string;
  /** Where handoff dirs and logs go. */
  dir: string;
  /** More chart values, merged over the release's (`{ init: { reuseMinAge: '0s' } }`). */
  values?: Record<string, unknown>;
  /** How long the ServiceAccount token the pods use is valid (default 1 h; the lab runs longer). */
  tokenSeconds?: number;
}

export class ConnectorRelease {
  readonly pods: ConnectorPod[] = [];
  private seq = 0;

  private constructor(
    readonly o: ConnectorReleaseOptions,
    readonly chart: ChartBed,
    /** Authenticates as the chart's ServiceAccount. */
    readonly kubeconfig: string,
    /** The sidecar as the chart renders it. */
    readonly sidecarSpec: ChartContainer,
  ) {}

  /** `helm install`s the chart (its pre-delete hook off: no node runs Jobs here; `uninstall` runs gc itself). */
  static async install(o: ConnectorReleaseOptions): Promise<ConnectorRelease> {
    const values = merge(
      {
        fullnameOverride: o.release,
        twingate: { apiKey: o.apiKey ?? 'test-key', account: ACCOUNT, networkName: o.network },
        connector: { replicas: o.replicas },
        uninstallHook: { enabled: false },
      },
      o.values ?? {},
    );
    mkdirSync(o.dir, { recursive: true });
    const valuesFile = join(o.dir, `${o.release}-values.json`);
    writeFileSync(valuesFile, JSON.stringify(values), { mode: 0o600 });
    const chart = new ChartBed(o.cp, { chart: 'connector', release: o.release, namespace: o.namespace });
    await o.cp.kubectl(['create', 'namespace', o.namespace]);
    const installed = await o.cp.helm([
      'install',
      o.release,
      chart.chart,
      '-n',
      o.namespace,
      '-f',
      valuesFile,
    ]);
    if (installed.exitCode !== 0) throw new Error(`helm install ${o.release}: ${installed.stderr.trim()}`);
    const kubeconfig = await o.cp.serviceAccountKubeconfig(o.namespace, o.release, o.tokenSeconds);
    const spec = await chartContainer(chart, 'statefulset.yaml', 'connector-init', {
      values,
      fields: { 'metadata.name': `${o.release}-0`, 'metadata.namespace': o.namespace },
      secrets: { [`${o.release}-api-key/TWINGATE_API_KEY`]: o.apiKey ?? 'test-key' },
    });
    return new ConnectorRelease(o, chart, kubeconfig, spec);
  }

  get release(): string {
    return this.o.release;
  }

  /** The env of a connector-init run as this release's pods get it, with the test bed's endpoints. */
  env(ordinal: number, over: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env['PATH'],
      ...this.sidecarSpec.env,
      POD_NAME: `${this.o.release}-${ordinal}`,
      CONNECTOR_HANDOFF_DIR: join(this.o.dir, `${this.o.release}-${ordinal}`),
      CONNECTOR_LAUNCHER_SHELL: '/bin/busybox',
      CONNECTOR_INIT_METRICS_PORT: '0',
      CONNECTOR_INIT_METRICS_HOST: '127.0.0.1',
      TWINGATE_ACCOUNT: '',
      TWINGATE_API_URL: this.o.tenant.url,
      KUBECONFIG: this.kubeconfig,
      ...over,
    };
  }

  /** Starts pod `ordinal`'s sidecar (`connector-init provision` as the chart runs it). */
  startSidecar(ordinal: number, o: { env?: NodeJS.ProcessEnv; extra?: string[] } = {}): ConnectorPod {
    const env = this.env(ordinal, o.env);
    const handoffDir = env['CONNECTOR_HANDOFF_DIR'] as string;
    mkdirSync(handoffDir, { recursive: true });
    const n = ++this.seq;
    const sidecar = ManagedProcess.start(
      `${this.o.release}-${ordinal}-init-${n}`,
      process.execPath,
      [
        ...shippedNodeFlags('connector-init.Dockerfile'),
        this.o.bundle,
        ...this.sidecarSpec.args,
        ...(o.extra ?? []),
      ],
      join(this.o.dir, `${this.o.release}-${ordinal}-init-${n}.log`),
      env,
    );
    const pod = this.pods.find((p) => p.ordinal === ordinal);
    if (pod) {
      pod.sidecar = sidecar;
      pod.handoffDir = handoffDir;
      return pod;
    }
    const made: ConnectorPod = { ordinal, handoffDir, sidecar };
    this.pods.push(made);
    return made;
  }

  /** Starts the pod's connector container: the launcher the sidecar installed, running the fake connector. */
  startConnector(pod: ConnectorPod): ManagedProcess {
    const n = ++this.seq;
    pod.connector = ManagedProcess.start(
      `${this.o.release}-${pod.ordinal}-connector-${n}`,
      join(pod.handoffDir, 'sh'),
      [join(pod.handoffDir, 'launch'), process.execPath, fakeConnectorScript(), this.o.tenant.url],
      join(this.o.dir, `${this.o.release}-${pod.ordinal}-connector-${n}.log`),
      // setpriv (ManagedProcess) needs PATH; the launcher itself uses shell builtins only.
      { PATH: process.env['PATH'] },
    );
    return pod.connector;
  }

  /** Runs `connector-init <command>` to completion with the release's env (gc, status, …). */
  runCommand(
    command: 'provision' | 'gc' | 'status',
    o: { env?: NodeJS.ProcessEnv; extra?: string[] } = {},
  ): Promise<RunResult> {
    return run(
      process.execPath,
      [...shippedNodeFlags('connector-init.Dockerfile'), this.o.bundle, command, ...(o.extra ?? [])],
      {
        env: this.env(0, { POD_NAME: '', ...o.env }),
        timeoutMs: 120_000,
      },
    );
  }

  /** The claims ConfigMap's data, as the admin sees it. */
  async claims(): Promise<Record<string, string>> {
    const out = await this.o.cp.kubectlOk([
      'get',
      'configmap',
      `${this.o.release}-connectors`,
      '-n',
      this.o.namespace,
      '-o',
      'json',
    ]);
    return (JSON.parse(out) as { data?: Record<string, string> }).data ?? {};
  }

  /** The tenant's connectors named like this release's (`<release>-<n>`). */
  connectors() {
    const own = new RegExp(`^${this.o.release.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-(0|[1-9]\\d*)$`);
    return this.o.tenant.connectors().filter((c) => own.test(c.name));
  }

  log(p: ManagedProcess): string {
    try {
      return readFileSync(p.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async stopPods(filter: (p: ConnectorPod) => boolean = () => true): Promise<void> {
    await Promise.all(
      this.pods.filter(filter).flatMap((p) => [p.connector?.stop(1000), p.sidecar.stop(2000)]),
    );
  }

  /** Stops the pods, runs what the pre-delete hook runs (`gc --replicas 0`), then `helm uninstall`. */
  async uninstall(): Promise<RunResult> {
    await this.stopPods();
    const gc = await this.runCommand('gc', { env: { CONNECTOR_REPLICAS: '0' } });
    await this.o.cp.helm(['uninstall', this.o.release, '-n', this.o.namespace]);
    return gc;
  }
}

/** `over` merged into `base` (objects deeply, anything else replaced). */
function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    const isObj = (x: unknown): x is Record<string, unknown> =>
      typeof x === 'object' && x !== null && !Array.isArray(x);
    out[k] = isObj(b) && isObj(v) ? merge(b, v) : v;
  }
  return out;
}
