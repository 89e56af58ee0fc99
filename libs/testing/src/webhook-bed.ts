import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appBundle } from './bundle';
import { ControlPlane, ManagedProcess, freePort } from './controlplane';
import { until } from './wait';

export interface WebhookBedOptions {
  /** Release name: the MutatingWebhookConfiguration, ServiceAccount, CA Secret and ConfigMap names derive from it. */
  name: string;
  /** The webhook's (and gateway's) namespace. */
  namespace: string;
  /** Namespaces whose pods it reviews are labelled `key=value` (the chart's `routed-gateway=true`). */
  namespaceLabel: { key: string; value: string };
  /** Extra flags (selection, images, DNS, --sidecarAsInit…). */
  args?: string[];
  failurePolicy?: 'Fail' | 'Ignore';
  timeoutSeconds?: number;
  /** The webhook's resolv.conf (default: the cluster DNS 10.0.0.10 as a pod in `namespace` sees it). */
  resolvConf?: string;
}

/**
 * gateway-webhook registered with a real kube-apiserver by URL on loopback TLS, set up the way the
 * chart sets it up: an empty CA Secret, a ServiceAccount with exactly the chart's RBAC (get/update
 * on that Secret, get/patch on its MutatingWebhookConfiguration), a MutatingWebhookConfiguration
 * with no caBundle (the webhook patches it in at start), and the app bundle run as a process with
 * that ServiceAccount's token. `stop()` kills it; `start()` starts it again (same port and CA).
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
  ) {}

  get mwcName(): string {
    return `${this.opts.namespace}-${this.opts.name}`;
  }

  get caSecret(): string {
    return `${this.opts.name}-webhook-ca`;
  }

  /** The process's log (JSON lines). */
  get logFile(): string {
    return join(this.dir, `webhook-${this.starts}.log`);
  }

  static async start(cp: ControlPlane, opts: WebhookBedOptions): Promise<WebhookBed> {
    const dir = mkdtempSync(join(tmpdir(), 'knet-webhook-'));
    const { name, namespace } = opts;
    const sa = `${name}-webhook`;
    const mwc = `${namespace}-${name}`;
    const [port, metricsPort, bundle] = await Promise.all([
      freePort(),
      freePort(),
      appBundle('gateway-webhook'),
    ]);
    const kubeconfig = await cp.serviceAccountKubeconfig(namespace, sa);
    const secret = `${name}-webhook-ca`;
    await cp.kubectlOk(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'Secret', metadata: { name: secret, namespace }, type: 'Opaque' },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'Role',
            metadata: { name: sa, namespace },
            rules: [
              { apiGroups: [''], resources: ['secrets'], resourceNames: [secret], verbs: ['get', 'update'] },
            ],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'RoleBinding',
            metadata: { name: sa, namespace },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: sa },
            subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRole',
            metadata: { name: `${mwc}-webhook` },
            rules: [
              {
                apiGroups: ['admissionregistration.k8s.io'],
                resources: ['mutatingwebhookconfigurations'],
                resourceNames: [mwc],
                verbs: ['get', 'patch'],
              },
            ],
          },
          {
            apiVersion: 'rbac.authorization.k8s.io/v1',
            kind: 'ClusterRoleBinding',
            metadata: { name: `${mwc}-webhook` },
            roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: `${mwc}-webhook` },
            subjects: [{ kind: 'ServiceAccount', name: sa, namespace }],
          },
          {
            apiVersion: 'admissionregistration.k8s.io/v1',
            kind: 'MutatingWebhookConfiguration',
            metadata: { name: mwc },
            webhooks: [
              {
                name: `${name}.${namespace}.pod-gateway.knet.dev`,
                admissionReviewVersions: ['v1'],
                sideEffects: 'None',
                failurePolicy: opts.failurePolicy ?? 'Fail',
                timeoutSeconds: opts.timeoutSeconds ?? 5,
                reinvocationPolicy: 'Never',
                matchPolicy: 'Equivalent',
                clientConfig: { url: `https://127.0.0.1:${port}/wh/mutating/setgateway` },
                rules: [
                  {
                    operations: ['CREATE'],
                    apiGroups: [''],
                    apiVersions: ['v1'],
                    resources: ['pods'],
                    scope: 'Namespaced',
                  },
                ],
                namespaceSelector: {
                  matchLabels: { [opts.namespaceLabel.key]: opts.namespaceLabel.value },
                  matchExpressions: [
                    {
                      key: 'kubernetes.io/metadata.name',
                      operator: 'NotIn',
                      values: [namespace, 'kube-system'],
                    },
                  ],
                },
                objectSelector: {
                  matchExpressions: [
                    { key: 'pod-gateway.knet.dev/role', operator: 'NotIn', values: ['gateway', 'webhook'] },
                  ],
                },
              },
            ],
          },
        ],
      }),
    });
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(
      resolv,
      opts.resolvConf ??
        `search ${namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.0.0.10\noptions ndots:5\n`,
    );
    const bed = new WebhookBed(cp, opts, dir, port, metricsPort, bundle, kubeconfig);
    await bed.start();
    return bed;
  }

  /** The flags the process runs with. */
  args(): string[] {
    const { name, namespace } = this.opts;
    return [
      `--webhook-listen-address=127.0.0.1:${this.port}`,
      '--metrics-host=127.0.0.1',
      `--metrics-port=${this.metricsPort}`,
      `--kubeconfig=${this.kubeconfig}`,
      `--namespace=${namespace}`,
      `--ca-secret=${this.caSecret}`,
      `--webhook-configuration=${this.mwcName}`,
      '--tls-hosts=127.0.0.1',
      `--resolv-conf=${join(this.dir, 'resolv.conf')}`,
      '--ca-bundle-check-interval=1s',
      `--configmapName=${name}`,
      `--gateway-id=${name}.${namespace}`,
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
    );
    this.proc = proc;
    await until(
      'gateway-webhook ready',
      async () => {
        if (!proc.running) throw new Error(`gateway-webhook exited:\n${proc.tail()}`);
        const r = await fetch(`http://127.0.0.1:${this.metricsPort}/readyz`).catch(() => undefined);
        return r?.status === 200;
      },
      { timeoutMs: 30_000 },
    );
  }

  /** Kills the process (the API server then cannot reach the webhook). */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** Its Prometheus metrics text. */
  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
  }

  /** Stops it and removes what it made in the API server and on disk. */
  async remove(): Promise<void> {
    await this.stop();
    const mwc = this.mwcName;
    await this.cp.kubectl(['delete', 'mutatingwebhookconfiguration', mwc, '--ignore-not-found']);
    await this.cp.kubectl([
      'delete',
      'clusterrole,clusterrolebinding',
      `${mwc}-webhook`,
      '--ignore-not-found',
    ]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
