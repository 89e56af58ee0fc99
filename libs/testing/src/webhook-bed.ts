import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appBundle } from './bundle';
import { ChartBed, chartContainer, replaceFlags, type ChartContainer } from './charts';
import { ControlPlane, ManagedProcess, freePort } from './controlplane';
import { until } from './wait';

export interface WebhookBedOptions {
  /** Release (and fullname) of charts/pod-gateway: the webhook's object names derive from it. */
  name: string;
  /** The release namespace: the webhook's (and gateway's) namespace. */
  namespace: string;
  /** Values of charts/pod-gateway (`webhook.*`, `DNS`, `DNSPolicy`, images…), as users write them. */
  values?: Record<string, unknown>;
  /**
   * Namespaces whose pods it reviews are labelled `key=true` (the chart's
   * `webhook.namespaceSelector.label`; default `routed-gateway`).
   */
  namespaceLabel?: { key: string; value: 'true' };
  /** Flags added after the chart's (a later flag wins). */
  args?: string[];
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
  /** The webhook's resolv.conf (default: the cluster DNS 10.0.0.10 as a pod in `namespace` sees it). */
  resolvConf?: string;
}

/** The chart's webhook templates: installed as they are, except where the webhook is reached. */
const TEMPLATES = ['webhook-rbac.yaml', 'webhook-secret.yaml', 'webhook-configuration.yaml'];

/**
 * gateway-webhook registered with a real kube-apiserver the way charts/pod-gateway registers it:
 * the chart's own ServiceAccount, RBAC, empty CA Secret and MutatingWebhookConfiguration (rendered
 * with `values`, applied as they are), except that the configuration calls the webhook by URL on
 * loopback instead of through its Service (no node here). The app bundle runs as a process with the
 * chart Deployment's args (the listen and metrics addresses, TLS host and kubeconfig replaced for
 * loopback) and that ServiceAccount's token, so the chart's RBAC is what it has. `stop()` kills it;
 * `start()` starts it again (same port and CA).
 */
export class WebhookBed {
  private proc: ManagedProcess | undefined;
  private starts = 0;

  private constructor(
    readonly cp: ControlPlane,
    readonly opts: WebhookBedOptions,
    readonly dir: string,
    readonly port: number,
    readonly metricsPort: number,
    private readonly bundle: string,
    private readonly kubeconfig: string,
    /** The chart Deployment's args and env for the webhook container. */
    private readonly container: ChartContainer,
    private readonly installed: string,
  ) {}

  /** The chart's MutatingWebhookConfiguration name (`<namespace>-<fullname>`). */
  get mwcName(): string {
    return `${this.opts.namespace}-${this.opts.name}`;
  }

  /** The chart's CA Secret name. */
  get caSecret(): string {
    return `${this.opts.name}-webhook-ca`;
  }

  /** The process's log (JSON lines). */
  get logFile(): string {
    return join(this.dir, `webhook-${this.starts}.log`);
  }

  static async start(cp: ControlPlane, opts: WebhookBedOptions): Promise<WebhookBed> {
    const dir = mkdtempSync(join(tmpdir(), 'knet-webhook-'));
    // Until it is returned, nobody else can remove what it made: undone here when a step fails.
    let installed: string | undefined;
    try {
      return await WebhookBed.setUp(cp, opts, dir, (yaml) => (installed = yaml));
    } catch (e) {
      if (installed !== undefined) {
        await cp.kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: installed });
      }
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  }

  private static async setUp(
    cp: ControlPlane,
    opts: WebhookBedOptions,
    dir: string,
    applied: (yaml: string) => void,
  ): Promise<WebhookBed> {
    const { name, namespace } = opts;
    const [port, metricsPort, bundle] = await Promise.all([
      freePort(),
      freePort(),
      appBundle('gateway-webhook'),
    ]);
    const chart = new ChartBed(cp, { chart: 'pod-gateway', release: name, namespace });
    const values = {
      ...opts.values,
      fullnameOverride: name,
      webhook: {
        ...(opts.values?.['webhook'] as object | undefined),
        ...(opts.namespaceLabel
          ? { namespaceSelector: { type: 'label', label: opts.namespaceLabel.key, custom: {} } }
          : {}),
        ...(opts.failurePolicy ? { failurePolicy: opts.failurePolicy } : {}),
        ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}),
      },
    };
    const only = (files: string[]) => files.flatMap((f) => ['--show-only', `templates/${f}`]);
    const installed = await chart.render(only(TEMPLATES), { values });
    const container = await chartContainer(chart, 'webhook-deployment.yaml', 'webhook', {
      values,
      fields: { 'metadata.namespace': namespace },
    });
    applied(installed);
    await chart.apply(installed);
    await cp.kubectlOk([
      'patch',
      'mutatingwebhookconfiguration',
      `${namespace}-${name}`,
      '--type=json',
      '-p',
      JSON.stringify([
        {
          op: 'replace',
          path: '/webhooks/0/clientConfig',
          value: { url: `https://127.0.0.1:${port}/wh/mutating/setgateway` },
        },
      ]),
    ]);
    const kubeconfig = await cp.serviceAccountKubeconfig(namespace, `${name}-webhook`);
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(
      resolv,
      opts.resolvConf ??
        `search ${namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n`,
    );
    const bed = new WebhookBed(cp, opts, dir, port, metricsPort, bundle, kubeconfig, container, installed);
    try {
      await bed.start();
    } catch (e) {
      await bed.stop();
      throw e;
    }
    return bed;
  }

  /** The flags the process runs with: the chart's, with loopback addresses, then `args`. */
  args(): string[] {
    return [
      ...replaceFlags(this.container.args, {
        '--webhook-listen-address': `127.0.0.1:${this.port}`,
        '--metrics-host': '127.0.0.1',
        '--metrics-port': this.metricsPort,
        '--tls-hosts': '127.0.0.1',
        '--kubeconfig': this.kubeconfig,
        '--resolv-conf': join(this.dir, 'resolv.conf'),
        '--ca-bundle-check-interval': '1s',
      }),
      ...(this.opts.args ?? []),
    ];
  }

  /** Starts the process and waits until it is ready (certificate served, caBundle set). */
  async start(): Promise<void> {
    if (this.proc?.running) throw new Error('WebhookBed: already running');
    this.starts++;
    const proc = ManagedProcess.start(
      'gateway-webhook',
      process.execPath,
      [this.bundle, ...this.args()],
      this.logFile,
      // The chart's env (POD_NAMESPACE from the downward API), as the kubelet sets it.
      { ...process.env, ...this.container.env },
    );
    this.proc = proc;
    // An exit ends the wait at once (a refused flag), with the webhook's own last lines.
    let ready = false;
    const exited = proc.wait().then((code) => {
      if (!ready)
        throw new Error(`gateway-webhook exited (code ${code}) before it was ready:\n${proc.tail()}`);
    });
    await Promise.race([
      until(
        'gateway-webhook ready',
        async () => {
          const r = await fetch(`http://127.0.0.1:${this.metricsPort}/readyz`).catch(() => undefined);
          return r?.status === 200;
        },
        { timeoutMs: 30_000 },
      ),
      exited,
    ]).finally(() => (ready = true));
  }

  /** Kills the process (the API server then cannot reach the webhook). */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Its Prometheus metrics text. */
  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
  }

  /** Stops it and removes what the chart's templates made (the namespaced ones go with the namespace). */
  async remove(): Promise<void> {
    await this.stop();
    await this.cp.kubectl(['delete', '--ignore-not-found', '-f', '-'], { input: this.installed });
    rmSync(this.dir, { recursive: true, force: true });
  }
}
