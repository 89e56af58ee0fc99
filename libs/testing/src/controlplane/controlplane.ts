import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCertificateAuthority,
  issueCertificate,
  renderKubeconfig,
  type CertificateAuthority,
} from '@knet/crypto';
import { sleep } from '@knet/runtime';
import { ensureTestBedBinaries, type TestBedBinaries } from './binaries';
import { describeExit, run, type RunResult } from '../exec';
import { ManagedProcess } from './process';
import { freePort } from './ports';

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (namespaces finalize, default ServiceAccounts appear, GC runs). */
  controllerManager?: boolean;
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=…']. */
  apiServerFlags?: string[];
  /** How long to wait for /readyz (default 90 s; the first start on 2 cores takes ~10 s). */
  startTimeoutMs?: number;
  /** Keep the temp dir (logs, certs) after stop, to debug a failure. */
  keepDir?: boolean;
  /**
   * Run etcd, kube-apiserver and kube-controller-manager inside a network namespace the caller
   * created (the real node's, see `NodeBed`) instead of on the root namespace's loopback. The API
   * server then listens on `address:6443` there, advertises `address` as the `kubernetes`
   * Service's endpoint, and is reached from this process through `relay` (which must forward a
   * root-loopback port to 127.0.0.1:6443 in the namespace). Nothing is added to the root namespace.
   */
  inNamespace?: ControlPlaneNamespace;
}

/** Where a control plane runs when it is not on the root namespace's loopback. */
export interface ControlPlaneNamespace {
  /** The netns name (`/run/netns/<name>`). */
  netns: string;
  /** The node's address in the namespace: API server advertise address and certificate SAN. */
  address: string;
  /** `--service-cluster-ip-range`; its first address is the `kubernetes` Service's ClusterIP. */
  serviceCidr: string;
  /**
   * The pod network: kube-controller-manager allocates it whole to the (one) node as its
   * `spec.podCIDR` (`--allocate-node-cidrs`, `--cluster-cidr`, a node mask of the same size), as a
   * kubeadm cluster's controller manager does; programs that read the Node's podCIDR (kilo-agent)
   * need it. Omitted: Nodes get no podCIDR.
   */
  podCidr?: string;
  /** Makes `port` on 127.0.0.1 inside the namespace reachable from here; returns the local port. */
  relay(port: number): Promise<{ port: number; close(): Promise<void> }>;
}

/** The API server's port inside a node namespace (the namespace is private, so it is fixed). */
export const NAMESPACED_API_PORT = 6443;

/** What a kubectl or helm run printed and how it exited. */
export type KubectlResult = RunResult;

/**
 * A real Kubernetes control plane on loopback: etcd + kube-apiserver (+ kube-controller-manager),
 * in a temp dir, RBAC on, client-cert admin in system:masters. Always `stop()` it (afterAll);
 * if the test process dies, the kernel kills the children (pdeathsig).
 */
export class ControlPlane {
  private procs: ManagedProcess[] = [];
  private readonly commands = new Map<string, { cmd: string; args: string[] }>();
  private readonly closers: Array<() => Promise<void>> = [];
  /** Argv prefix that runs a component where this control plane lives (empty: here). */
  private prefix: string[] = [];

  private constructor(
    readonly dir: string,
    readonly bin: TestBedBinaries,
    /** https://127.0.0.1:PORT */
    readonly server: string,
    readonly caPem: string,
    /** Admin (system:masters) kubeconfig file. */
    readonly kubeconfigPath: string,
    private readonly keepDir: boolean,
    private readonly ca: CertificateAuthority,
    /**
     * The API server's URL for components that run where it runs: the same as `server` on
     * loopback, `https://127.0.0.1:6443` inside a node namespace.
     */
    readonly innerServer: string = server,
  ) {}

  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const bin = await ensureTestBedBinaries();
    const ns = opts.inNamespace;
    // Inside a namespace the ports are private to it: fixed, and only the API server is relayed.
    const [etcdPort, peerPort, apiPort, kcmPort] = ns
      ? [2379, 2380, NAMESPACED_API_PORT, 10257]
      : await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const relay = ns ? await ns.relay(apiPort) : undefined;
    const dir = mkdtempSync(join(tmpdir(), 'knet-cp-'));
    const server = `https://127.0.0.1:${relay?.port ?? apiPort}`;
    const innerServer = `https://127.0.0.1:${apiPort}`;

    const ca = await createCertificateAuthority('knet-testbed-ca');
    const serving = await issueCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
      ipAddresses: [
        '127.0.0.1',
        '::1',
        ...(ns ? [ns.address, firstServiceIp(ns.serviceCidr)] : ['10.0.0.1']),
      ],
      usage: 'server',
    });
    const admin = await issueCertificate(ca, {
      commonName: 'admin',
      organizations: ['system:masters'],
      usage: 'client',
    });
    const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const f = (name: string, content: string) => {
      const p = join(dir, name);
      writeFileSync(p, content, { mode: 0o600 });
      return p;
    };
    const caFile = f('ca.crt', ca.certPem);
    const caKeyFile = f('ca.key', ca.keyPem);
    const tlsCert = f('apiserver.crt', serving.certPem);
    const tlsKey = f('apiserver.key', serving.keyPem);
    const saKey = f('sa.key', sa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
    const saPub = f('sa.pub', sa.publicKey.export({ type: 'spki', format: 'pem' }).toString());
    const kubeconfigPath = f(
      'admin.kubeconfig',
      renderKubeconfig({
        name: 'testbed',
        server,
        caPem: ca.certPem,
        credentials: { clientCertificatePem: admin.certPem, clientKeyPem: admin.keyPem },
      }),
    );

    const innerKubeconfig = ns
      ? f(
          'admin-inner.kubeconfig',
          renderKubeconfig({
            name: 'testbed',
            server: innerServer,
            caPem: ca.certPem,
            credentials: { clientCertificatePem: admin.certPem, clientKeyPem: admin.keyPem },
          }),
        )
      : kubeconfigPath;

    const cp = new ControlPlane(
      dir,
      bin,
      server,
      ca.certPem,
      kubeconfigPath,
      opts.keepDir ?? false,
      ca,
      innerServer,
    );
    if (relay) cp.closers.push(() => relay.close());
    if (ns) cp.prefix = ['nsenter', `--net=/run/netns/${ns.netns}`, '--'];
    const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
    try {
      const etcd = cp.spawn('etcd', bin.etcd, [
        '--name=testbed',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
        `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=testbed=http://127.0.0.1:${peerPort}`,
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ]);
      // In a namespace etcd is not reachable from here; the API server's /readyz includes it.
      if (!ns) {
        await waitForProcess(etcd, deadline, async () =>
          (await httpGet(`http://127.0.0.1:${etcdPort}/health`)).includes('true'),
        );
      }

      const apiFlags = [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${tlsCert}`,
        `--tls-private-key-file=${tlsKey}`,
        `--client-ca-file=${caFile}`,
        `--bind-address=${ns ? '0.0.0.0' : '127.0.0.1'}`,
        `--secure-port=${apiPort}`,
        `--service-cluster-ip-range=${ns?.serviceCidr ?? '10.0.0.0/24'}`,
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${saPub}`,
        `--service-account-signing-key-file=${saKey}`,
        '--authorization-mode=Node,RBAC',
        '--allow-privileged=true',
        '--enable-priority-and-fairness=false',
        '--profiling=false',
        '--v=1',
      ];
      if (ns) {
        // The node's kubelet serves on the node address; the API server proves itself to it
        // with a client certificate and checks the kubelet's serving certificate against the CA.
        const kubeletClient = await issueCertificate(ca, {
          commonName: 'kube-apiserver-kubelet-client',
          organizations: ['system:masters'],
          usage: 'client',
        });
        apiFlags.push(
          `--advertise-address=${ns.address}`,
          `--kubelet-client-certificate=${f('kubelet-client.crt', kubeletClient.certPem)}`,
          `--kubelet-client-key=${f('kubelet-client.key', kubeletClient.keyPem)}`,
          `--kubelet-certificate-authority=${caFile}`,
          '--kubelet-preferred-address-types=InternalIP',
        );
      } else if (!hasDefaultRoute()) {
        // With no default route the apiserver cannot pick an advertise address by itself;
        // loopback is not a valid Endpoints address, so the endpoint reconciler is turned off.
        apiFlags.push('--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none');
      }
      const api = cp.spawn('kube-apiserver', bin.kubeApiserver, [
        ...apiFlags,
        ...(opts.apiServerFlags ?? []),
      ]);
      await waitForProcess(
        api,
        deadline,
        async () => (await cp.kubectl(['get', '--raw', '/readyz'])).stdout === 'ok',
      );

      if (opts.controllerManager) {
        const kcm = cp.spawn('kube-controller-manager', bin.kubeControllerManager, [
          `--kubeconfig=${innerKubeconfig}`,
          `--authentication-kubeconfig=${innerKubeconfig}`,
          `--authorization-kubeconfig=${innerKubeconfig}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          '--leader-elect=false',
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${caFile}`,
          `--cluster-signing-cert-file=${caFile}`,
          `--cluster-signing-key-file=${caKeyFile}`,
          '--use-service-account-credentials=true',
          ...(ns?.podCidr
            ? [
                '--allocate-node-cidrs=true',
                `--cluster-cidr=${ns.podCidr}`,
                `--node-cidr-mask-size=${ns.podCidr.split('/')[1]}`,
              ]
            : []),
          '--v=1',
        ]);
        // Ready once the serviceaccount controller has made the default ServiceAccount.
        await waitForProcess(
          kcm,
          deadline,
          async () =>
            (await cp.kubectl(['get', 'serviceaccount', 'default', '-n', 'default'])).exitCode === 0,
        );
      }
      return cp;
    } catch (e) {
      await cp.stop();
      throw e;
    }
  }

  private spawn(name: string, cmd: string, args: string[]): ManagedProcess {
    const [head, ...rest] = [...this.prefix, cmd, ...args] as [string, ...string[]];
    const p = ManagedProcess.start(name, head, rest, join(this.dir, `${name}.log`));
    this.procs.push(p);
    this.commands.set(name, { cmd, args });
    return p;
  }

  /**
   * A kubeconfig file for user `commonName` in `groups`, by a client certificate of this control
   * plane's CA, for the API server at `server` (default: `innerServer`, where node components run).
   * For the node's own components (kubelet: `system:node:<name>` in `system:nodes`; kube-proxy:
   * `system:kube-proxy`).
   */
  async clientKubeconfig(
    file: string,
    commonName: string,
    groups: readonly string[] = [],
    server = this.innerServer,
  ): Promise<string> {
    const cert = await issueCertificate(this.ca, { commonName, organizations: [...groups], usage: 'client' });
    const path = join(this.dir, file);
    writeFileSync(
      path,
      renderKubeconfig({
        name: 'testbed',
        server,
        caPem: this.caPem,
        credentials: { clientCertificatePem: cert.certPem, clientKeyPem: cert.keyPem },
      }),
      { mode: 0o600 },
    );
    return path;
  }

  /** A serving certificate from this control plane's CA (e.g. the kubelet's, for the node address). */
  async servingCertificate(
    commonName: string,
    ipAddresses: readonly string[],
    dnsNames: readonly string[] = [],
  ): Promise<{ certPem: string; keyPem: string }> {
    const c = await issueCertificate(this.ca, {
      commonName,
      ipAddresses: [...ipAddresses],
      dnsNames: [...dnsNames],
      usage: 'server',
    });
    return { certPem: c.certPem, keyPem: c.keyPem };
  }

  /**
   * Stops one component (kill -9 with `crash: true`) and starts it again with the same flags and
   * port, then waits until the API server is ready again. For fault-injection tests.
   */
  async restart(
    name: 'etcd' | 'kube-apiserver' | 'kube-controller-manager',
    opts: { crash?: boolean; downMs?: number } = {},
  ): Promise<void> {
    const old = this.process(name);
    const command = this.commands.get(name);
    if (!old || !command) throw new Error(`restart: ${name} is not part of this control plane`);
    if (opts.crash) await old.kill();
    else await old.stop();
    this.procs = this.procs.filter((p) => p !== old);
    if (opts.downMs) await sleep(opts.downMs);
    const p = this.spawn(name, command.cmd, command.args);
    await waitForProcess(
      p,
      Date.now() + 90_000,
      async () => (await this.kubectl(['get', '--raw', '/readyz'])).stdout === 'ok',
    );
  }

  /** Runs the real kubectl against this control plane as admin. Never throws on a non-zero exit. */
  async kubectl(
    args: string[],
    opts: { input?: string; kubeconfig?: string; timeoutMs?: number } = {},
  ): Promise<KubectlResult> {
    return run(this.bin.kubectl, [`--kubeconfig=${opts.kubeconfig ?? this.kubeconfigPath}`, ...args], {
      timeoutMs: opts.timeoutMs ?? 60_000,
      ...(opts.input === undefined ? {} : { input: opts.input }),
    });
  }

  /** Like kubectl(), but throws with kubectl's stderr when it exits non-zero. */
  async kubectlOk(args: string[], opts: { input?: string; kubeconfig?: string } = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.exitCode !== 0)
      throw new Error(`kubectl ${args.join(' ')} failed (${describeExit(r)}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  /**
   * `kubectl apply` of `objects` as one List (one call; defaulting and admission as for any
   * client). `serverSide` applies as field manager `fieldManager`, taking over conflicting fields
   * with `forceConflicts`.
   */
  async apply(
    objects: readonly unknown[],
    opts: { serverSide?: boolean; forceConflicts?: boolean; fieldManager?: string; namespace?: string } = {},
  ): Promise<string> {
    return this.kubectlOk(
      [
        'apply',
        ...(opts.serverSide ? ['--server-side'] : []),
        ...(opts.forceConflicts ? ['--force-conflicts'] : []),
        ...(opts.fieldManager ? [`--field-manager=${opts.fieldManager}`] : []),
        ...(opts.namespace ? ['-n', opts.namespace] : []),
        '-f',
        '-',
      ],
      { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) },
    );
  }

  /**
   * Runs the real helm with this control plane's admin kubeconfig. `timeoutMs` (default 60 s) bounds
   * the run; give `helm install --wait --timeout T` more than T.
   */
  async helm(args: string[], opts: { timeoutMs?: number } = {}): Promise<KubectlResult> {
    return run(this.bin.helm, args, {
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      env: {
        ...process.env,
        KUBECONFIG: this.kubeconfigPath,
        HELM_CACHE_HOME: join(this.dir, 'helm-cache'),
        HELM_CONFIG_HOME: join(this.dir, 'helm-config'),
        HELM_DATA_HOME: join(this.dir, 'helm-data'),
      },
    });
  }

  /** The admin kubeconfig's YAML. */
  adminKubeconfig(): string {
    return readFileSync(this.kubeconfigPath, 'utf8');
  }

  /**
   * A kubeconfig file that authenticates as ServiceAccount `namespace/name` with a bound token
   * from the TokenRequest API, so a test can prove an app's RBAC is enough (and no more).
   * Creates the namespace and ServiceAccount when missing.
   */
  async serviceAccountKubeconfig(namespace: string, name: string, durationSeconds = 3600): Promise<string> {
    await this.kubectl(['create', 'namespace', namespace]);
    await this.kubectl(['create', 'serviceaccount', name, '-n', namespace]);
    const token = (
      await this.kubectlOk(['create', 'token', name, '-n', namespace, `--duration=${durationSeconds}s`])
    ).trim();
    const file = join(this.dir, `sa-${namespace}-${name}.kubeconfig`);
    writeFileSync(
      file,
      renderKubeconfig({
        name: `${namespace}-${name}`,
        server: this.server,
        caPem: this.caPem,
        namespace,
        credentials: { token },
      }),
      { mode: 0o600 },
    );
    return file;
  }

  /**
   * Lets ServiceAccount `namespace/serviceAccount` do `verbs` on `resources` in its namespace, and
   * no more: a Role and a RoleBinding, both named `role` (default the ServiceAccount's name).
   */
  async grant(
    namespace: string,
    serviceAccount: string,
    rules: { verbs: readonly string[]; resources: readonly string[]; role?: string },
  ): Promise<void> {
    const role = rules.role ?? serviceAccount;
    const verbs = `--verb=${rules.verbs.join(',')}`;
    const resources = `--resource=${rules.resources.join(',')}`;
    await this.kubectlOk(['create', 'role', role, verbs, resources, '-n', namespace]);
    const subject = `--serviceaccount=${namespace}:${serviceAccount}`;
    await this.kubectlOk(['create', 'rolebinding', role, `--role=${role}`, subject, '-n', namespace]);
  }

  /** Processes of this control plane, by name (etcd, kube-apiserver, kube-controller-manager). */
  process(name: string): ManagedProcess | undefined {
    return this.procs.find((p) => p.name === name);
  }

  /** Stops every process (reverse start order) and removes the temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    const procs = this.procs.reverse();
    this.procs = [];
    for (const p of procs) await p.stop();
    for (const close of this.closers.splice(0)) await close();
    if (!this.keepDir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Polls `ready` every 250 ms until it says yes or `deadline` passes; fails at once, with the last
 * lines of its log, if `proc` exits meanwhile. For the test bed's components (and the node's).
 */
export async function waitForProcess(
  proc: ManagedProcess,
  deadline: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  let last: unknown;
  while (Date.now() < deadline) {
    if (!proc.running)
      throw new Error(`${proc.name} exited during start-up; last log lines:\n${proc.tail()}`);
    try {
      if (await ready()) return;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(
    `${proc.name} not ready in time (${String(last ?? 'no answer')}); last log lines:\n${proc.tail()}`,
  );
}

function httpGet(url: string): Promise<string> {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.text());
}

/** The first host address of an IPv4 CIDR (the `kubernetes` Service's ClusterIP). */
export function firstServiceIp(cidr: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (!m) throw new Error(`service CIDR ${JSON.stringify(cidr)} is not an IPv4 CIDR like 203.0.113.0/24`);
  const n = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0);
  const bits = Number(m[5]);
  const base = bits === 0 ? 0 : n - (n % 2 ** (32 - bits));
  const ip = base + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(ip / 2 ** s) % 256).join('.');
}

/** True when the root namespace has an IPv4 default route (read from /proc, nothing changed). */
function hasDefaultRoute(): boolean {
  try {
    return readFileSync('/proc/net/route', 'utf8')
      .split('\n')
      .slice(1)
      .some((l) => l.split(/\s+/)[1] === '00000000');
  } catch {
    return false;
  }
}
