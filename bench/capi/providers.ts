/**
 * The two infrastructure providers the bench runs against the same test bed and the same fake:
 * capi-packet-manager (ours, its shipped esbuild bundle) and CAPEM v0.9.0 (the upstream provider,
 * built unmodified from tools/capem). Each installs its own CRDs (both define
 * packetclusters.infrastructure.cluster.x-k8s.io, so each gets its own ControlPlane) and starts
 * managers watching one namespace, each against its own FakeMetalApi.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootstrapCrds, infrastructureCrds } from '@knet/capi';
import { createCertificateAuthority, issueCertificate } from '@knet/crypto';
import {
  type ControlPlane,
  type FakeMetalApi,
  type GoToolRecipe,
  ManagedProcess,
  capiPacketManagerCommand,
  ensureGoTool,
  goModuleDir,
  renderProvider,
  freePort,
  log,
  sleep,
  until,
} from '@knet/testing';
import { type Bucket, histogramBuckets } from './histogram';
import { MetalTlsProxy } from './metal-tls-proxy';

export type ProviderName = 'knet' | 'capem';

/** The Metal API token both fakes accept and both managers send (never logged). */
export const TOKEN = 'bench-capi-token-0123456789abcdef';

export interface ManagerSettings {
  namespace: string;
  api: FakeMetalApi;
  /** `--sync-period` (both managers have the flag, with CAPEM's name). */
  syncPeriod: string;
  /** Log file. */
  logFile: string;
}

/** A running manager of either provider. */
export interface Manager {
  /** The last lines of its log (across restarts). */
  tail(lines: number): string;
  /** Its /metrics text. */
  metrics(): Promise<string>;
  /** Cumulative buckets of its reconcile-time histogram for PacketMachine or PacketCluster passes. */
  reconcileBuckets(text: string, kind: 'PacketMachine' | 'PacketCluster'): Bucket[];
  /** Figures of its run for the result lines: restarts after crashes, CAPEM's proxy. */
  extra(): Record<string, number>;
  stop(): Promise<void>;
}

/** The first wait before a crashed manager is started again, as the kubelet's crash-loop back-off. */
const RESTART_BACKOFF_MS = 10_000;

/**
 * A manager process restarted whenever it exits unasked, as its Deployment's pod would be: after
 * 10 s, then 20 s, 40 s… (the kubelet's crash-loop back-off). Same command, ports and log file.
 */
class Supervised {
  restarts = 0;
  private current: ManagedProcess;
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly start: () => ManagedProcess,
  ) {
    this.current = start();
    this.watch();
  }

  get process(): ManagedProcess {
    return this.current;
  }

  private watch(): void {
    const p = this.current;
    void p.wait().then(async (code) => {
      if (this.stopped) return;
      const waitMs = RESTART_BACKOFF_MS * 2 ** this.restarts;
      this.restarts++;
      log(
        `${this.name} exited (code ${code}) unasked; starting it again in ${waitMs / 1000} s (log: ${p.logFile})`,
      );
      await sleep(waitMs);
      if (this.stopped) return;
      this.current = this.start();
      this.watch();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.current.stop();
  }
}

export interface Provider {
  name: ProviderName;
  /** Where it comes from, for the result lines. */
  describe: string;
  /** Its settings that shape the figures, for the README and the result lines. */
  settings: Record<string, string>;
  /** Installs its CRDs in `cp` (before any object and before CAPI core reads them). */
  install(cp: ControlPlane): Promise<void>;
  startManager(cp: ControlPlane, s: ManagerSettings): Promise<Manager>;
  /** Once a manager answers: what has to wait for one (CAPEM's admission webhooks). */
  afterFirstManager?(cp: ControlPlane): Promise<void>;
  /** Stops what it started besides its managers (CAPEM's proxies). */
  dispose?(): Promise<void>;
}

async function waitHttp(what: string, url: string, m: ManagedProcess, timeoutMs = 120_000): Promise<void> {
  await until(
    () => `${what} at ${url} (last log lines:\n${m.tail(10)})`,
    async () => {
      if (!m.running) throw new Error(`${m.name} exited during start-up:\n${m.tail(20)}`);
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      return r?.status === 200;
    },
    { timeoutMs, intervalMs: 250 },
  );
}

/** Applies `objects` server-side (as the bench's field manager). */
const applyServerSide = (cp: ControlPlane, objects: unknown[]) =>
  cp.apply(objects, { serverSide: true, fieldManager: 'knet-bench-capi' });

/** Applies CRDs and waits until the API server serves them. */
async function installCrds(cp: ControlPlane, crds: { metadata: { name: string } }[]): Promise<void> {
  await applyServerSide(cp, crds);
  await cp.kubectlOk([
    'wait',
    '--for=condition=Established',
    '--timeout=60s',
    ...crds.map((c) => `crd/${c.metadata.name}`),
  ]);
}

async function scrape(url: string): Promise<string> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (r.status !== 200) throw new Error(`GET ${url} answered ${r.status}`);
  return r.text();
}

/**
 * capi-packet-manager from its bundle. `--device-poll-interval=10s`, CAPEM's fixed requeue for a
 * provisioning device (its default is 15 s), so both look at provisioning devices as often.
 */
export function knetProvider(): Provider {
  const pollInterval = '10s';
  return {
    name: 'knet',
    describe: 'capi-packet-manager (apps/capi-packet-manager, its esbuild bundle)',
    settings: { 'device-poll-interval': pollInterval, concurrency: '10 (default)' },
    async install(cp) {
      await installCrds(cp, [...infrastructureCrds(), ...bootstrapCrds()]);
    },
    async startManager(cp, s) {
      const port = await freePort();
      const name = `capi-packet-manager-${s.namespace}`;
      const { cmd, args, env } = await capiPacketManagerCommand({
        kubeconfig: cp.kubeconfigPath,
        namespace: s.namespace,
        metalApiUrl: s.api.url,
        token: TOKEN,
        metricsPort: port,
        flags: [
          `--device-poll-interval=${pollInterval}`,
          `--sync-period=${s.syncPeriod}`,
          '--log-level=info',
        ],
      });
      const start = () => ManagedProcess.start(name, cmd, args, s.logFile, env);
      const m = new Supervised(name, start);
      await waitHttp('capi-packet-manager /readyz', `http://127.0.0.1:${port}/readyz`, m.process);
      return {
        tail: (n) => m.process.tail(n),
        metrics: () => scrape(`http://127.0.0.1:${port}/metrics`),
        reconcileBuckets: (text, kind) =>
          histogramBuckets(text, 'capi_packet_reconcile_duration_seconds', { kind }),
        extra: () => ({ restarts: m.restarts }),
        stop: () => m.stop(),
      };
    },
  };
}

/** CAPEM's manager: tools/capem, built as its Makefile stamps the version. */
const CAPEM_VERSION = 'v0.9.0';
const CAPEM_MODULE = 'sigs.k8s.io/cluster-api-provider-packet';
const CAPEM_TOOL: GoToolRecipe<'capem-manager'> = {
  name: 'capem',
  moduleDir: 'tools/capem',
  binaries: { 'capem-manager': CAPEM_MODULE },
  ldflags: [
    '-s',
    '-w',
    ...Object.entries({ gitVersion: CAPEM_VERSION, gitMajor: '0', gitMinor: '9', gitTreeState: 'clean' }).map(
      ([k, v]) => `-X ${CAPEM_MODULE}/version.${k}=${v}`,
    ),
  ].join(' '),
  firstBuild: '~2.5 min on 2 cores',
};

interface KubeObject {
  kind: string;
  metadata: { name: string; annotations?: Record<string, string> };
  spec?: { conversion?: { webhook?: { clientConfig: ClientConfig } } };
  webhooks?: { clientConfig: ClientConfig }[];
}
interface ClientConfig {
  service?: { path?: string };
  url?: string;
  caBundle?: string;
}

/**
 * CAPEM v0.9.0 as `clusterctl init --infrastructure packet` would install it: `kubectl kustomize
 * config/default` from the module cache, of which the CRDs (v1beta1, contract label
 * `cluster.x-k8s.io/v1beta1`) and the defaulting and validating webhook configurations are
 * applied, pointed at the first manager's webhook server on 127.0.0.1 with a caBundle of a CA
 * made here instead of cert-manager's Service (no Pods run here). Its managers reach the fake
 * through {@link MetalTlsProxy} (HTTPS_PROXY and SSL_CERT_FILE; see there why).
 */
export function capemProvider(dir: string): Provider {
  const state: {
    bin?: string;
    objects?: KubeObject[];
    certDir?: string;
    caBundle?: string;
    webhookPort?: number;
    proxies: MetalTlsProxy[];
  } = { proxies: [] };
  const pointed = (c: ClientConfig, port: number): ClientConfig => ({
    url: `https://127.0.0.1:${port}${c.service?.path ?? '/'}`,
    caBundle: state.caBundle as string,
  });
  const withoutInjection = (o: KubeObject): KubeObject => {
    const copy = structuredClone(o);
    delete copy.metadata.annotations?.['cert-manager.io/inject-ca-from'];
    return copy;
  };
  return {
    name: 'capem',
    describe: `CAPEM ${CAPEM_VERSION} (${CAPEM_MODULE}, built from tools/capem)`,
    settings: { 'requeue while provisioning': '10s (fixed)', concurrency: '10 (default)' },
    async install(cp) {
      const tool = await ensureGoTool(CAPEM_TOOL, (l) => log(`capem: ${l}`));
      state.bin = tool.bin['capem-manager'];
      const moduleDir = await goModuleDir(CAPEM_TOOL.moduleDir, CAPEM_MODULE);
      state.objects = (await renderProvider(cp, join(moduleDir, 'config', 'default'))) as KubeObject[];
      const ca = await createCertificateAuthority('knet-bench-capem-webhook-ca', 1);
      const serving = await issueCertificate(ca, {
        commonName: 'capem-webhook',
        ipAddresses: ['127.0.0.1'],
        usage: 'server',
        validityDays: 1,
      });
      state.certDir = join(dir, 'capem-certs');
      mkdirSync(state.certDir, { recursive: true });
      writeFileSync(join(state.certDir, 'tls.crt'), serving.certPem);
      writeFileSync(join(state.certDir, 'tls.key'), serving.keyPem, { mode: 0o600 });
      state.caBundle = Buffer.from(ca.certPem).toString('base64');
      state.webhookPort = await freePort();
      const crds = state.objects
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => {
          const crd = withoutInjection(o);
          const hook = crd.spec?.conversion?.webhook;
          if (hook) hook.clientConfig = pointed(hook.clientConfig, state.webhookPort as number);
          return crd;
        });
      await installCrds(cp, crds);
    },
    async startManager(cp, s) {
      if (!state.bin || !state.certDir) throw new Error('capem: install() first');
      const proxy = await MetalTlsProxy.start(s.api.url);
      state.proxies.push(proxy);
      const caFile = join(dir, `capem-proxy-ca-${s.namespace}.pem`);
      writeFileSync(caFile, proxy.caPem);
      // The first manager serves the webhooks the API server calls; the others listen unused.
      const webhookPort = state.proxies.length === 1 ? (state.webhookPort as number) : await freePort();
      const [health, metrics] = [await freePort(), await freePort()];
      const name = `capem-manager-${s.namespace}`;
      const bin = state.bin;
      const start = () =>
        ManagedProcess.start(
          name,
          bin,
          [
            `--namespace=${s.namespace}`,
            `--sync-period=${s.syncPeriod}`,
            '--leader-elect=false',
            `--webhook-port=${webhookPort}`,
            `--webhook-cert-dir=${state.certDir}`,
            `--health-addr=127.0.0.1:${health}`,
            `--diagnostics-address=127.0.0.1:${metrics}`,
            '--insecure-diagnostics',
          ],
          s.logFile,
          {
            ...process.env,
            KUBECONFIG: cp.kubeconfigPath,
            PACKET_API_KEY: TOKEN,
            HTTPS_PROXY: proxy.url,
            https_proxy: proxy.url,
            NO_PROXY: '127.0.0.1,localhost',
            no_proxy: '127.0.0.1,localhost',
            SSL_CERT_FILE: caFile,
            SSL_CERT_DIR: '/nonexistent',
          },
        );
      const m = new Supervised(name, start);
      await waitHttp('CAPEM /readyz', `http://127.0.0.1:${health}/readyz`, m.process);
      return {
        tail: (n) => m.process.tail(n),
        metrics: () => scrape(`http://127.0.0.1:${metrics}/metrics`),
        reconcileBuckets: (text, kind) =>
          histogramBuckets(text, 'controller_runtime_reconcile_time_seconds', {
            controller: kind.toLowerCase(),
          }),
        extra: () => ({
          restarts: m.restarts,
          proxy_tunnels: proxy.stats.tunnels,
          proxy_requests: proxy.stats.requests,
          proxy_refused: proxy.stats.refused,
          proxy_facility_rewrites: proxy.rewrites,
        }),
        stop: () => m.stop(),
      };
    },
    async afterFirstManager(cp) {
      const hooks = (state.objects ?? [])
        .filter(
          (o) => o.kind === 'MutatingWebhookConfiguration' || o.kind === 'ValidatingWebhookConfiguration',
        )
        .map((o) => {
          const wc = withoutInjection(o);
          for (const w of wc.webhooks ?? [])
            w.clientConfig = pointed(w.clientConfig, state.webhookPort as number);
          return wc;
        });
      await applyServerSide(cp, hooks);
    },
    async dispose() {
      await Promise.all(state.proxies.map((p) => p.close()));
    },
  };
}
