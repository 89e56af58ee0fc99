import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import {
  type ControlPlane,
  ensureGoTool,
  freePort,
  goModuleDir,
  type GoTool,
  type GoToolOptions,
  type GoToolRecipe,
  kubeLdflags,
  ManagedProcess,
} from './controlplane';
import { type KubeObject, replaceFlags } from './charts';
import { describeExit, run } from './exec';
import { until } from './wait';

/** The Cluster API release the test bed runs (must match tools/capi/go.mod). */
export const CLUSTER_API_VERSION = 'v1.11.3';

/** The three managers of the Cluster API module, by the name their binary gets. */
export type CapiManagerBinary =
  'capi-manager' | 'kubeadm-bootstrap-manager' | 'kubeadm-control-plane-manager';

/** A provider of the Cluster API module: core, the kubeadm bootstrap provider (CABPK), KCP. */
export type CapiProvider = 'core' | 'kubeadm-bootstrap' | 'kubeadm-control-plane';

type Log = (line: string) => void;

/** How Cluster API's own Makefile stamps the version (hack/version.sh), without commit and date. */
function capiLdflags(): string {
  const [major, minor] = CLUSTER_API_VERSION.replace(/^v/, '').split('.');
  const vars = { gitVersion: CLUSTER_API_VERSION, gitMajor: major, gitMinor: minor, gitTreeState: 'clean' };
  return [
    '-s',
    '-w',
    ...Object.entries(vars).map(([k, v]) => `-X sigs.k8s.io/cluster-api/version.${k}=${v}`),
  ].join(' ');
}

const CAPI_TOOL: GoToolRecipe<CapiManagerBinary> = {
  name: 'capi',
  moduleDir: 'tools/capi',
  binaries: {
    'capi-manager': 'sigs.k8s.io/cluster-api',
    'kubeadm-bootstrap-manager': 'sigs.k8s.io/cluster-api/bootstrap/kubeadm',
    'kubeadm-control-plane-manager': 'sigs.k8s.io/cluster-api/controlplane/kubeadm',
  },
  ldflags: capiLdflags(),
  firstBuild: '~4 min on 2 cores for the three managers (measured with the kube binaries already built)',
};

const KUBEADM_TOOL: GoToolRecipe<'kubeadm'> = {
  name: 'kubeadm',
  moduleDir: 'tools/kubeadm',
  binaries: { kubeadm: 'k8s.io/kubernetes/cmd/kubeadm' },
  // Stamped like the test bed's kube binaries, so `kubeadm version` and its version checks are right.
  ldflags: kubeLdflags(),
  firstBuild: '~1 min on 2 cores once the kube binaries are built (it shares their packages)',
};

/** Builds (or finds) Cluster API's three managers from tools/capi; cached like the kube binaries. */
export function ensureCapiManagers(log?: Log, options?: GoToolOptions): Promise<GoTool<CapiManagerBinary>> {
  return ensureGoTool(CAPI_TOOL, log, options);
}

/** Builds (or finds) `kubeadm` from tools/kubeadm (the test bed's Kubernetes release) and returns its path. */
export async function ensureKubeadm(log?: Log, options?: GoToolOptions): Promise<string> {
  return (await ensureGoTool(KUBEADM_TOOL, log, options)).bin.kubeadm;
}

/**
 * The Cluster API module's folder in the Go module cache (downloaded if missing): the CRDs,
 * kustomize bases and contract docs are read from there, never copied into the repository.
 */
export function capiModuleDir(): Promise<string> {
  return goModuleDir(CAPI_TOOL.moduleDir, 'sigs.k8s.io/cluster-api');
}

interface ProviderSpec {
  provider: CapiProvider;
  binary: CapiManagerBinary;
  /** The provider's kustomize tree in the module; `<configDir>/default` is what clusterctl installs. */
  configDir: string;
}

const PROVIDERS: readonly ProviderSpec[] = [
  { provider: 'core', binary: 'capi-manager', configDir: 'config' },
  {
    provider: 'kubeadm-bootstrap',
    binary: 'kubeadm-bootstrap-manager',
    configDir: 'bootstrap/kubeadm/config',
  },
  {
    provider: 'kubeadm-control-plane',
    binary: 'kubeadm-control-plane-manager',
    configDir: 'controlplane/kubeadm/config',
  },
];

interface ServiceRef {
  service?: { path?: string };
  url?: string;
  caBundle?: string;
}

interface WebhookConfiguration extends KubeObject {
  webhooks?: { name: string; clientConfig: ServiceRef }[];
}

interface CustomResourceDefinition extends KubeObject {
  spec: { conversion?: { strategy: string; webhook?: { clientConfig: ServiceRef } } };
}

interface Deployment extends KubeObject {
  spec: { template: { spec: { containers: { name: string; args?: string[] }[] } } };
}

/** The contract label keys: `cluster.x-k8s.io/v1beta1`, `cluster.x-k8s.io/v1beta2`… */
const CONTRACT_LABEL = /^cluster\.x-k8s\.io\/v\d+((alpha|beta)\d+)?$/;

/** cert-manager's CA injection, replaced here by a caBundle from the test's own CA. */
const CA_INJECTION = 'cert-manager.io/inject-ca-from';

/** A running manager of the Cluster API module. */
export interface CapiManager {
  provider: CapiProvider;
  process: ManagedProcess;
  /** Its webhook server (conversion, defaulting, validation); TLS with the CapiCore's CA. */
  webhookPort: number;
  /** `/healthz` and `/readyz` on 127.0.0.1. */
  healthPort: number;
  /** `/metrics` over plain HTTP on 127.0.0.1 (`--insecure-diagnostics`). */
  metricsPort: number;
}

export interface CapiCoreOptions {
  /** Also run the kubeadm bootstrap provider (CABPK) with its CRDs and webhooks. */
  bootstrap?: boolean;
  /** Also run the kubeadm control-plane provider (KCP) with its CRDs and webhooks. */
  controlPlane?: boolean;
  /** Feature gates over the defaults of the providers' own manifests (`{ ClusterTopology: true }`). */
  featureGates?: Record<string, boolean>;
  /** Extra flags for every manager (a later flag wins), e.g. `['--v=4']`. */
  managerFlags?: string[];
  /** Build progress (the first build of the managers takes minutes). */
  log?: Log;
  /** How long to wait for the managers' /readyz after the build (default 120 s). */
  startTimeoutMs?: number;
  /** Keep the temp dir (logs, certificates) after stop, to debug a failure. */
  keepDir?: boolean;
}

/**
 * The real Cluster API (v1.11) against a test bed ControlPlane: the CRDs and webhook
 * configurations that `clusterctl init` would install, rendered with the real kustomize (`kubectl
 * kustomize <module>/config/default` for core, and the kubeadm providers' own trees) from the Go
 * module cache, and the managers built from tools/capi running as processes.
 *
 * What differs from a cluster install, and why: the webhooks and CRD conversion call
 * `https://127.0.0.1:<port>` with a caBundle from a CA issued here instead of a Service with
 * cert-manager's injected CA (no Pods or Services run here); the managers use the admin kubeconfig
 * (their RBAC is not what is under test), leader election is off, and health and metrics listen
 * on free loopback ports. controller-runtime has no flag for the webhook server's address, so it
 * listens on all interfaces of this host; only the API server on loopback calls it.
 */
export class CapiCore {
  private constructor(
    readonly cp: ControlPlane,
    readonly dir: string,
    /** The kubeconfig the managers use (the ControlPlane's admin). */
    readonly kubeconfigPath: string,
    /** The CA that signed the webhook servers' certificate (the caBundle of every webhook). */
    readonly caPem: string,
    readonly managers: readonly CapiManager[],
    /** Every installed CRD by name, with its labels as the provider's kustomization sets them. */
    readonly crdLabels: Readonly<Record<string, Record<string, string>>>,
    private readonly keepDir: boolean,
  ) {}

  static async start(cp: ControlPlane, opts: CapiCoreOptions = {}): Promise<CapiCore> {
    const tool = await ensureCapiManagers(opts.log);
    const moduleDir = await capiModuleDir();
    const specs = PROVIDERS.filter(
      (p) =>
        p.provider === 'core' ||
        (p.provider === 'kubeadm-bootstrap' && opts.bootstrap) ||
        (p.provider === 'kubeadm-control-plane' && opts.controlPlane),
    );
    const dir = mkdtempSync(join(tmpdir(), 'knet-capi-'));
    const managers: CapiManager[] = [];
    const stopAll = async () => {
      for (const m of managers.reverse()) await m.process.stop();
      if (!opts.keepDir) rmSync(dir, { recursive: true, force: true });
    };
    try {
      const ca = await createCertificateAuthority('knet-capi-webhook-ca');
      const serving = await issueCertificate(ca, {
        commonName: 'capi-webhook',
        dnsNames: ['localhost'],
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
      });
      const certDir = join(dir, 'certs');
      mkdirSync(certDir);
      writeFileSync(join(certDir, 'tls.crt'), serving.certPem);
      writeFileSync(join(certDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
      const caBundle = Buffer.from(ca.certPem).toString('base64');

      const crds: CustomResourceDefinition[] = [];
      const webhookConfigs: WebhookConfiguration[] = [];
      const commands: { spec: ProviderSpec; ports: [number, number, number]; args: string[] }[] = [];
      for (const spec of specs) {
        const objects = await renderProvider(cp, join(moduleDir, spec.configDir, 'default'));
        const ports: [number, number, number] = [await freePort(), await freePort(), await freePort()];
        const at = (service: ServiceRef): ServiceRef => ({
          url: `https://127.0.0.1:${ports[0]}${service.service?.path ?? '/'}`,
          caBundle,
        });
        for (const o of objects) {
          if (o.kind === 'CustomResourceDefinition') {
            const crd = withoutCaInjection(o) as CustomResourceDefinition;
            const hook = crd.spec.conversion?.webhook;
            if (hook) hook.clientConfig = at(hook.clientConfig);
            crds.push(crd);
          } else if (
            o.kind === 'MutatingWebhookConfiguration' ||
            o.kind === 'ValidatingWebhookConfiguration'
          ) {
            const wc = withoutCaInjection(o) as WebhookConfiguration;
            for (const w of wc.webhooks ?? []) w.clientConfig = at(w.clientConfig);
            webhookConfigs.push(wc);
          }
        }
        commands.push({ spec, ports, args: managerArgs(spec, objects, opts.featureGates ?? {}) });
      }

      await cp.apply(crds, SERVER_SIDE);
      await cp.kubectlOk([
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        ...crds.map((c) => `crd/${c.metadata.name}`),
      ]);

      for (const { spec, ports, args } of commands) {
        const [webhookPort, healthPort, metricsPort] = ports;
        const flags = [
          ...replaceFlags(args, {
            '--leader-elect': 'false',
            '--diagnostics-address': `127.0.0.1:${metricsPort}`,
            '--insecure-diagnostics': 'true',
          }),
          `--kubeconfig=${cp.kubeconfigPath}`,
          `--webhook-port=${webhookPort}`,
          `--webhook-cert-dir=${certDir}`,
          `--health-addr=127.0.0.1:${healthPort}`,
          ...(opts.managerFlags ?? []),
        ];
        const proc = ManagedProcess.start(
          spec.binary,
          tool.bin[spec.binary],
          flags,
          join(dir, `${spec.binary}.log`),
        );
        managers.push({ provider: spec.provider, process: proc, webhookPort, healthPort, metricsPort });
      }
      await Promise.all(managers.map((m) => waitReady(m, opts.startTimeoutMs ?? 120_000)));
      // Registered once the servers answer, so the API server never calls a webhook not yet there.
      await cp.apply(webhookConfigs, SERVER_SIDE);
      const crdLabels = Object.fromEntries(crds.map((c) => [c.metadata.name, { ...c.metadata.labels }]));
      return new CapiCore(cp, dir, cp.kubeconfigPath, ca.certPem, managers, crdLabels, opts.keepDir ?? false);
    } catch (e) {
      await stopAll();
      throw e;
    }
  }

  /**
   * The contract labels (`cluster.x-k8s.io/<contract>: <versions>`) of the installed CRDs that carry
   * any: CAPI core reads them on an infrastructure, bootstrap or control-plane CRD to pick the API
   * version and the contract it speaks (`v1beta2` preferred, `v1beta1` still accepted in v1.11).
   */
  contractLabels(): Record<string, Record<string, string>> {
    const out: Record<string, Record<string, string>> = {};
    for (const [crd, labels] of Object.entries(this.crdLabels)) {
      const contract = Object.entries(labels).filter(([k]) => CONTRACT_LABEL.test(k));
      if (contract.length > 0) out[crd] = Object.fromEntries(contract);
    }
    return out;
  }

  /** The manager of `provider`, if it runs. */
  manager(provider: CapiProvider): CapiManager | undefined {
    return this.managers.find((m) => m.provider === provider);
  }

  /** The last `lines` lines of every manager's log, headed by its name (to explain a failure). */
  logs(lines = 30): string {
    return this.managers
      .map((m) => `--- ${m.process.name} (${m.process.logFile})\n${m.process.tail(lines)}`)
      .join('\n');
  }

  /** Stops the managers (the CRDs and webhook configurations stay in the API server). Safe to call twice. */
  async stop(): Promise<void> {
    for (const m of [...this.managers].reverse()) await m.process.stop();
    if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * What clusterctl would install for a provider: `kubectl kustomize <kustomizeDir>` (its
 * `config/default`; the real kustomize built into kubectl, reading the module cache), turned into
 * JSON by `kubectl patch --local` (offline: the cert-manager kinds in the output need no API server).
 */
export async function renderProvider(cp: ControlPlane, kustomizeDir: string): Promise<KubeObject[]> {
  const yaml = await run(cp.bin.kubectl, ['kustomize', kustomizeDir]);
  if (yaml.exitCode !== 0) {
    throw new Error(
      `kubectl kustomize ${kustomizeDir} failed (${describeExit(yaml)}): ${yaml.stderr.trim()}`,
    );
  }
  const json = await run(
    cp.bin.kubectl,
    ['patch', '--local', '--type=merge', '-p', '{}', '-o', 'json', '-f', '-'],
    { input: yaml.stdout, env: { ...process.env, KUBECONFIG: '/dev/null' } },
  );
  if (json.exitCode !== 0) {
    throw new Error(
      `converting ${kustomizeDir} to JSON failed (${describeExit(json)}): ${json.stderr.trim()}`,
    );
  }
  return parseJsonStream(json.stdout) as KubeObject[];
}

/** Values one after another, as `kubectl -o json` prints several objects. */
export function parseJsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if (c === '}' || c === ']') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  if (depth !== 0 || inString) throw new Error('kubectl printed truncated JSON');
  return out;
}

function withoutCaInjection(o: KubeObject): KubeObject {
  const copy = structuredClone(o);
  delete copy.metadata.annotations?.[CA_INJECTION];
  return copy;
}

/**
 * The manager container's args from the provider's Deployment, with clusterctl's variable
 * defaults (`${EXP_MACHINE_POOL:=true}` → `true`) and `featureGates` over `--feature-gates`.
 */
function managerArgs(
  spec: ProviderSpec,
  objects: KubeObject[],
  featureGates: Record<string, boolean>,
): string[] {
  const deployment = objects.find((o): o is Deployment => o.kind === 'Deployment');
  const container = deployment?.spec.template.spec.containers.find((c) => c.name === 'manager');
  if (!container?.args) {
    throw new Error(
      `no manager container with args in ${spec.configDir}/default of Cluster API ${CLUSTER_API_VERSION}`,
    );
  }
  const args = container.args.map((a) => a.replace(/\$\{\w+:=([^}]*)\}/g, '$1'));
  return args.map((a) => {
    if (!a.startsWith('--feature-gates=')) return a;
    const gates = new Map(
      a
        .slice('--feature-gates='.length)
        .split(',')
        .map((kv) => kv.split('=') as [string, string]),
    );
    for (const [k, v] of Object.entries(featureGates)) gates.set(k, String(v));
    return `--feature-gates=${[...gates].map(([k, v]) => `${k}=${v}`).join(',')}`;
  });
}

/** How CapiCore applies what it installs (as clusterctl does, server-side). */
const SERVER_SIDE = { serverSide: true, forceConflicts: true, fieldManager: 'knet-capi-core' };

/** Resolves once the manager's /readyz answers 200; rejects at once, with its log, if it exits. */
async function waitReady(m: CapiManager, timeoutMs: number): Promise<void> {
  let settled = false;
  const exited = m.process.wait().then((code) => {
    if (!settled)
      throw new Error(`${m.process.name} exited (code ${code}) during start-up:\n${m.process.tail()}`);
  });
  try {
    await Promise.race([
      until(
        () =>
          `${m.process.name} /readyz on 127.0.0.1:${m.healthPort} (last log lines:\n${m.process.tail(10)})`,
        async () => {
          const r = await fetch(`http://127.0.0.1:${m.healthPort}/readyz`, {
            signal: AbortSignal.timeout(2000),
          });
          return r.status === 200;
        },
        { timeoutMs, intervalMs: 250 },
      ),
      exited,
    ]);
  } finally {
    settled = true;
  }
}
