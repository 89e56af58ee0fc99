import { readFileSync } from 'node:fs';
import { errorMessage } from '@knet/runtime';
import {
  ChartBed,
  ControlPlane,
  appBundle,
  resourceName,
  run,
  serviceAccountUser,
  until,
  type KubeObject,
  type ManagedProcess,
} from '@knet/testing';
import {
  NS,
  condition,
  createCluster,
  getCluster,
  startHost,
  startProxy,
  stopAll,
  type RunningProxy,
} from './harness';

// The helm charts of tower-proxy and tower-agent, against a real API server: lint, render, server-side
// dry run, values checks, and the proxy running with nothing but the chart's RBAC.

jest.setTimeout(120_000);

const PROXY_SA = serviceAccountUser(NS, 'tower-proxy');
const AGENT_SA = serviceAccountUser(NS, 'tower-agent');
const FINGERPRINT = `SHA256:${'A'.repeat(43)}`;
/** The agent chart's required values. */
const AGENT_REQUIRED = {
  name: 'alpha',
  proxyServer: 'http://tower.example.com:8080',
  fingerprint: FINGERPRINT,
  token: '0123456789abcdef',
};
const setStrings = (values: Record<string, string>) =>
  Object.entries(values).flatMap(([k, v]) => ['--set-string', `${k}=${v}`]);
const AGENT_VALUES = setStrings(AGENT_REQUIRED);

let host: ControlPlane;
let proxyChart: ChartBed;
let agentChart: ChartBed;
const procs: ManagedProcess[] = [];

beforeAll(async () => {
  await Promise.all([
    startHost().then((h) => (host = h)),
    appBundle('tower-proxy'),
    appBundle('tower-agent'),
  ]);
  proxyChart = new ChartBed(host, { chart: 'tower-proxy', release: 'tower-proxy', namespace: NS });
  agentChart = new ChartBed(host, { chart: 'tower-agent', release: 'tower-agent', namespace: NS });
}, 240_000);

afterAll(() => stopAll(procs, host));

/** kubectl's names of objects, sorted (`deployment.apps/tower-proxy`, …). */
const names = (objects: KubeObject[]) => objects.map(resourceName).sort();

describe('helm lint --strict', () => {
  it('passes for tower-proxy', async () => {
    const r = await proxyChart.lint();
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });

  it('passes for tower-agent, with its required values and without (lint only reports them)', async () => {
    const r = await agentChart.lint(AGENT_VALUES);
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    const bare = await agentChart.lint();
    expect(bare.exitCode).toBe(0);
    expect(bare.stderr).toContain('Missing required value: fingerprint is required');
  });
});

describe('the API server accepts every rendered object (kubectl apply --dry-run=server)', () => {
  it('tower-proxy with the default values', async () => {
    expect(names(await proxyChart.dryRun(await proxyChart.render()))).toEqual([
      'clusterrole.rbac.authorization.k8s.io/kubesphere-system-tower-proxy',
      'clusterrolebinding.rbac.authorization.k8s.io/kubesphere-system-tower-proxy',
      'deployment.apps/tower-proxy',
      'role.rbac.authorization.k8s.io/kubesphere-system-tower-proxy-events',
      'role.rbac.authorization.k8s.io/tower-proxy',
      'rolebinding.rbac.authorization.k8s.io/kubesphere-system-tower-proxy-events',
      'rolebinding.rbac.authorization.k8s.io/tower-proxy',
      'service/tower',
      'serviceaccount/tower-proxy',
      'validatingadmissionpolicy.admissionregistration.k8s.io/kubesphere-system-tower-proxy-services',
      'validatingadmissionpolicybinding.admissionregistration.k8s.io/kubesphere-system-tower-proxy-services',
    ]);
    // dry run: nothing was stored
    expect((await host.kubectl(['get', 'deployment', 'tower-proxy', '-n', NS])).exitCode).not.toBe(0);
  });

  it('tower-proxy with 2 replicas (leader election), an existing CA Secret and a LoadBalancer', async () => {
    const yaml = await proxyChart.render(
      [
        '--set',
        'replicas=2',
        '--set',
        'ca.existingSecret=my-ca',
        '--set',
        'service.type=LoadBalancer',
        '--set',
        'service.name=tower-ha',
      ],
      { release: 'ha' },
    );
    expect(yaml).toContain('- --leader-elect=true');
    expect(yaml).toContain('- --ca-cert=/etc/tower-proxy/ca/ca.crt');
    expect(yaml).not.toContain('--ca-secret');
    expect(yaml).toContain('resources: [leases]');
    const applied = names(await proxyChart.dryRun(yaml));
    expect(applied).toContain('deployment.apps/ha-tower-proxy');
    expect(applied).toContain('service/tower-ha');
    expect(applied).toHaveLength(11);
  });

  it('tower-proxy hardened: a NetworkPolicy (agent port; listener ports from KubeSphere) and, with 2 replicas, a PodDisruptionBudget', async () => {
    const objects = await proxyChart.dryRun<KubeObject & { spec: Record<string, unknown> }>(
      await proxyChart.render(
        [
          '--set',
          'replicas=2',
          '--set',
          'networkPolicy.enabled=true',
          '--set',
          'podDisruptionBudget.enabled=true',
        ],
        { release: 'hard' },
      ),
    );
    const of = (kind: string) => objects.find((o) => o.kind === kind)!.spec;
    const pods = {
      matchLabels: { 'app.kubernetes.io/name': 'tower-proxy', 'app.kubernetes.io/instance': 'hard' },
    };
    expect(of('NetworkPolicy')).toEqual({
      podSelector: pods,
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [{ protocol: 'TCP', port: 8080 }] },
        { ports: [{ protocol: 'TCP', port: 9090 }] },
        {
          ports: [
            { protocol: 'TCP', port: 6000, endPort: 7000 },
            { protocol: 'TCP', port: 16000, endPort: 17000 },
          ],
          from: [
            { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kubesphere-system' } } },
          ],
        },
      ],
    });
    expect(of('PodDisruptionBudget')).toEqual({
      minAvailable: 1,
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
      selector: pods,
    });
    // Both select the Deployment's pods.
    expect((of('Deployment') as { selector: unknown }).selector).toEqual(pods);
    expect(objects).toHaveLength(13);
    // One replica gets no budget even when asked: it would block every node drain.
    const single = await proxyChart.render(['--set', 'podDisruptionBudget.enabled=true'], { release: 'one' });
    expect(single).not.toContain('kind: PodDisruptionBudget');
  });

  it('tower-proxy memory: a limit twice the RSS measured at 1,000 agents, the heap cap below it', async () => {
    const [deployment] = await proxyChart.dryRun<
      KubeObject & {
        spec: {
          template: {
            spec: {
              containers: {
                resources: { limits: { memory: string } };
                env: { name: string; value?: string }[];
              }[];
            };
          };
        };
      }
    >(await proxyChart.render(['--show-only', 'templates/deployment.yaml']));
    const container = deployment!.spec.template.spec.containers[0]!;
    expect(container.resources.limits.memory).toBe('512Mi');
    expect(container.env.find((e) => e.name === 'NODE_OPTIONS')?.value).toBe('--max-old-space-size=128');
  });

  it('tower-agent with its required values', async () => {
    const yaml = await agentChart.render(AGENT_VALUES);
    expect(yaml).toContain(`- --fingerprint=${FINGERPRINT}`);
    expect(yaml).not.toContain('0123456789abcdef'); // only base64 in the Secret, never in args
    expect(names(await agentChart.dryRun(yaml))).toEqual([
      'clusterrolebinding.rbac.authorization.k8s.io/kubesphere-system-tower-agent',
      'deployment.apps/tower-agent',
      'secret/tower-agent-token',
      'serviceaccount/tower-agent',
    ]);
  });

  it('the same release name in another namespace: its objects outside the release namespace (cluster-scoped, or in "default") carry that namespace, so none is shared', async () => {
    const other = 'tower-elsewhere';
    await host.kubectlOk(['create', 'namespace', other]);
    /** kubectl's names of the objects not in `ns`, the release namespace. */
    const outside = async (chart: ChartBed, args: string[], ns: string) =>
      names(
        (await chart.dryRun(await chart.render(args, { namespace: ns }))).filter(
          (o) => o.metadata.namespace !== ns,
        ),
      );
    for (const [chart, args] of [
      [proxyChart, []],
      [agentChart, AGENT_VALUES],
    ] as const) {
      const here = await outside(chart, [...args], NS);
      const there = await outside(chart, [...args], other);
      expect(here.length).toBeGreaterThan(0);
      expect(here.every((n) => n.includes(`/${NS}-`))).toBe(true);
      expect(there).toEqual(here.map((n) => n.replace(`/${NS}-`, `/${other}-`)).sort());
    }
  });
});

describe("the Deployments' args are flags the apps accept", () => {
  /** The container args of the rendered Deployment (one `- --flag=value` per line). */
  const argsOf = (yaml: string) =>
    [...yaml.matchAll(/^ {12}- (--\S+)$/gm)].map((m) => m[1] as string).filter(Boolean);
  /** Runs an app bundle: it must get past option parsing and fail only where a pod would differ. */
  const runApp = (bundle: string, args: string[], env: NodeJS.ProcessEnv) =>
    run(process.execPath, [bundle, ...args], {
      env: { PATH: process.env['PATH'], ...env },
      timeoutMs: 30_000,
    });

  it('tower-proxy (both the default values and HA with an existing CA)', async () => {
    const proxy = await appBundle('tower-proxy');
    for (const values of [[], ['--set', 'replicas=2', '--set', 'ca.existingSecret=my-ca']]) {
      const args = argsOf(await proxyChart.render([...values, '--show-only', 'templates/deployment.yaml']));
      expect(args).toContain('--port-range=6000-7000');
      expect(args).toEqual(
        expect.arrayContaining([
          '--max-handshakes-per-source=128',
          '--listener-idle-timeout=30m',
          // /metrics off the public agent port.
          '--metrics-port=9090',
        ]),
      );
      // The CA files would be mounted from the Secret: give files that exist, the real parser checks.
      const fixed = args.map((a) =>
        a.startsWith('--ca-cert=') || a.startsWith('--ca-key=')
          ? `${a.split('=')[0]}=${host.kubeconfigPath}`
          : a,
      );
      const r = await runApp(proxy, [...fixed, '--kubeconfig=/nonexistent/kubeconfig'], {
        POD_NAMESPACE: NS,
        POD_NAME: 'tower-proxy-0',
      });
      // Past the options: it stops only at the kubeconfig, which a pod does not need.
      expect(r.stderr).toContain(
        'tower-proxy: kubeconfig /nonexistent/kubeconfig (from --kubeconfig) cannot be read',
      );
      expect(r.exitCode).toBe(1);
    }
  });

  it('tower-agent', async () => {
    const agent = await appBundle('tower-agent');
    const args = argsOf(
      await agentChart.render([...AGENT_VALUES, '--show-only', 'templates/deployment.yaml']),
    );
    expect(args).toContain(`--fingerprint=${FINGERPRINT}`);
    const r = await runApp(agent, args, { TOWER_TOKEN: AGENT_REQUIRED.token, POD_NAME: 'tower-agent-0' });
    // Past the options: it stops only because this is not a pod (no in-cluster API server address).
    expect(r.stderr).toContain(
      'tower-agent: error: not running in a cluster (KUBERNETES_SERVICE_HOST unset)',
    );
  });

  it('tower-agent with two pinned fingerprints (key rotation), a liveness timeout and an egress proxy', async () => {
    const agent = await appBundle('tower-agent');
    const second = `SHA256:${'B'.repeat(43)}`;
    const yaml = await agentChart.render([
      // Commas in --set values are escaped, as a user would on the command line.
      ...setStrings({ ...AGENT_REQUIRED, fingerprint: `${FINGERPRINT}\\, ${second}` }),
      ...setStrings({
        livenessTimeout: '20m',
        'egressProxy.https': 'http://egress.example.com:3128',
        'egressProxy.noProxy': '.svc\\,10.0.0.0/8',
      }),
      '--show-only',
      'templates/deployment.yaml',
    ]);
    const args = argsOf(yaml);
    expect(args).toEqual(
      expect.arrayContaining([`--fingerprint=${FINGERPRINT},${second}`, '--liveness-timeout=20m']),
    );
    expect(yaml).toContain('{ name: HTTPS_PROXY, value: "http://egress.example.com:3128" }');
    expect(yaml).toMatch(/NO_PROXY, value: "\.svc,10\.0\.0\.0\/8"/);
    const r = await runApp(agent, args, { TOWER_TOKEN: AGENT_REQUIRED.token, POD_NAME: 'tower-agent-0' });
    expect(r.stderr).toContain(
      'tower-agent: error: not running in a cluster (KUBERNETES_SERVICE_HOST unset)',
    );
  });
});

describe('values are checked before anything is rendered', () => {
  /** helm's refusal to render these values (one line). */
  const fails = (chart: ChartBed, args: string[]) =>
    chart.render(args, { release: 'x' }).then(
      () => {
        throw new Error(`helm template accepted ${args.join(' ')}`);
      },
      (e: unknown) => errorMessage(e),
    );

  it('tower-proxy: the schema names the bad value', async () => {
    expect(await fails(proxyChart, ['--set', 'portRange.min=80'])).toMatch(
      /portRange\.min: Must be greater than or equal to 1024/,
    );
    expect(await fails(proxyChart, ['--set', 'service.type=External'])).toMatch(
      /service\.type: service\.type must be one of the following/,
    );
    expect(await fails(proxyChart, ['--set', 'keepalive=forever'])).toMatch(
      /keepalive: Does not match pattern/,
    );
    expect(await fails(proxyChart, ['--set', 'replica=2'])).toMatch(
      /Additional property replica is not allowed/,
    );
    expect(await fails(proxyChart, ['--set', 'networkPolicy.enabled=yes'])).toMatch(
      /networkPolicy\.enabled: Invalid type. Expected: boolean, given: string/,
    );
    expect(await fails(proxyChart, ['--set', 'podDisruptionBudget.minAvailable=2'])).toMatch(
      /Additional property minAvailable is not allowed/,
    );
    expect(await fails(proxyChart, ['--set', 'handshake.maxPerSource=0'])).toMatch(
      /handshake\.maxPerSource: Must be greater than or equal to 1/,
    );
    expect(await fails(proxyChart, ['--set', 'listeners.idleTimeout=never'])).toMatch(
      /listeners\.idleTimeout: Does not match pattern/,
    );
  });

  it('tower-proxy: what the schema cannot say, the templates refuse', async () => {
    expect(await fails(proxyChart, ['--set', 'replicas=2', '--set', 'leaderElect=false'])).toContain(
      'replicas=2 needs leaderElect=true',
    );
    expect(await fails(proxyChart, ['--set', 'port=6500'])).toContain(
      'port 6500 falls inside portRange 6000-7000',
    );
    expect(await fails(proxyChart, ['--set', 'metricsPort=8080'])).toContain(
      'metricsPort 8080 is the agent port too: choose another, or 0 to serve /metrics on port',
    );
    expect(await fails(proxyChart, ['--set', 'metricsPort=16500'])).toContain(
      'metricsPort 16500 falls inside portRange 6000-7000 or its ks-apiserver ports (+10000)',
    );
    expect(await fails(proxyChart, ['--set', 'metricsPort=80'])).toMatch(/metricsPort/);
    // 0: /metrics stays on the agent port, no flag, no container port.
    const onAgentPort = await proxyChart.render([
      '--set',
      'metricsPort=0',
      '--show-only',
      'templates/deployment.yaml',
    ]);
    expect(onAgentPort).not.toContain('--metrics-port');
    expect(onAgentPort).not.toContain('name: metrics');
    expect(await fails(proxyChart, ['--set', 'nodeOptions=--max-old-space-size=512'])).toContain(
      'nodeOptions --max-old-space-size=512 (MiB) needs resources.limits.memory of at least 768Mi (the heap cap + 256 MiB outside the heap), not 512Mi',
    );
    // …and a consistent pair passes.
    await expect(
      proxyChart.render([
        '--set',
        'nodeOptions=--max-old-space-size=768',
        '--set',
        'resources.limits.memory=1Gi',
      ]),
    ).resolves.toContain('--max-old-space-size=768');
  });

  it('tower-agent: a missing fingerprint fails with a message that says where to find it', async () => {
    const { fingerprint: _, ...withoutFingerprint } = AGENT_REQUIRED;
    expect(await fails(agentChart, setStrings(withoutFingerprint))).toContain(
      "fingerprint is required: the proxy's SSH host key fingerprint; on the host cluster: " +
        'kubectl -n kubesphere-system get configmap tower-proxy -o jsonpath={.data.fingerprint}',
    );
  });

  it('tower-agent: the schema names the bad value', async () => {
    // (--set-string wins over --set whatever the order, so overrides of required values are --set-string too)
    expect(await fails(agentChart, setStrings({ ...AGENT_REQUIRED, fingerprint: 'abc' }))).toMatch(
      /fingerprint: Does not match pattern/,
    );
    expect(await fails(agentChart, [...AGENT_VALUES, '--set', 'keepalive=5'])).toMatch(
      /keepalive: Invalid type. Expected: string, given: integer/,
    );
    expect(await fails(agentChart, setStrings({ ...AGENT_REQUIRED, proxyServer: 'ftp://x' }))).toMatch(
      /proxyServer: Does not match pattern/,
    );
    expect(await fails(agentChart, [...AGENT_VALUES, '--set', 'existingSecret=s'])).toContain(
      'give token or existingSecret, not both',
    );
  });
});

describe("tower-proxy's NOTES say what protects it and what does not", () => {
  const notes = async (args: string[]) => {
    const r = await host.helm(['install', 'notes', proxyChart.chart, '--dry-run=client', '-n', NS, ...args]);
    expect([r.exitCode, r.stderr]).toEqual([0, '']);
    return r.stdout.slice(r.stdout.indexOf('NOTES:'));
  };

  it('by default: no NetworkPolicy; the admission policy guards the Services', async () => {
    const text = await notes([]);
    expect(text).toContain('- No NetworkPolicy (networkPolicy.enabled=false)');
    expect(text).toContain('- /metrics is on port 9090 of the pods, not on the agent port.');
    expect(await notes(['--set', 'metricsPort=0'])).toContain(
      '- /metrics is on the agent port (metricsPort=0): whoever reaches that port reads the Cluster names in its series.',
    );
    expect(text).toContain(
      '- The admission policy kubesphere-system-notes-tower-proxy-services lets the proxy touch only its own Services.',
    );
    expect(text).not.toContain('PodDisruptionBudget');
  });

  it('hardened: the NetworkPolicy and its sources, the budget and how to drain the leader', async () => {
    const text = await notes([
      '--set',
      'networkPolicy.enabled=true',
      '--set',
      'podDisruptionBudget.enabled=true',
      '--set',
      'replicas=2',
    ]);
    expect(text).toContain(
      '- A NetworkPolicy admits only the agent port 8080 (from anywhere)\n  and the listener ports 6000-7000 and 16000-17000 (from networkPolicy.listenerFrom).',
    );
    expect(text).toContain('kubectl -n kubesphere-system delete pod <leader>');
    const single = await notes(['--set', 'podDisruptionBudget.enabled=true']);
    expect(single).toContain('- podDisruptionBudget.enabled needs replicas > 1: none was created');
  });
});

describe("tower-proxy runs with the chart's RBAC, and the RBAC allows nothing more", () => {
  let proxy: RunningProxy;
  let hostKeyUid: string;

  beforeAll(async () => {
    // The most demanding configuration: leader election on (the Lease rules).
    const rbac = await proxyChart.render([
      '--set',
      'leaderElect=true',
      '--show-only',
      'templates/serviceaccount.yaml',
      '--show-only',
      'templates/rbac.yaml',
    ]);
    expect(await proxyChart.apply(rbac)).toHaveLength(9); // with the Service guard (admission policy)
    // A host-key Secret without the key makes the proxy take its update path (PUT); the CA Secret is created.
    await host.kubectlOk([
      'create',
      'secret',
      'generic',
      'tower-proxy-host-key',
      '-n',
      NS,
      '--from-literal=note=made by hand',
    ]);
    hostKeyUid = await host.kubectlOk([
      'get',
      'secret',
      'tower-proxy-host-key',
      '-n',
      NS,
      '-o',
      'jsonpath={.metadata.uid}',
    ]);
    // The chart's ServiceAccount exists, so this only issues a token for it.
    const kubeconfig = await host.serviceAccountKubeconfig(NS, 'tower-proxy');
    proxy = await startProxy(host, ['--leader-elect=true', '--identity=rbac-test'], undefined, kubeconfig);
    procs.push(proxy.proc);
    await createCluster(host, 'rbac');
    await until(
      () => `the Cluster to be initialized; proxy log:\n${proxy.proc.tail(30)}`,
      async () => {
        const c = await getCluster(host, 'rbac');
        const svc = await host.kubectl(['get', 'service', 'mc-rbac', '-n', NS]);
        return (
          Boolean(c.spec?.connection?.kubeconfig) &&
          condition(c, 'Initialized') === 'True' &&
          svc.exitCode === 0
        );
      },
      30_000,
    );
  }, 120_000);

  it("the proxy authenticates as the chart's ServiceAccount", async () => {
    const sa = JSON.parse(
      await host.kubectlOk(['get', 'serviceaccount', 'tower-proxy', '-n', NS, '-o', 'json']),
    ) as { metadata: { labels?: Record<string, string> } };
    expect(sa.metadata.labels?.['helm.sh/chart']).toBe('tower-proxy-0.1.0');
    expect(proxy.args.find((a) => a.startsWith('--kubeconfig='))).toMatch(/sa-kubesphere-system-tower-proxy/);
  });

  it('fills the Cluster: token, kubeconfig, Initialized, and creates the Service mc-rbac', async () => {
    const c = await getCluster(host, 'rbac');
    expect(c.spec?.connection?.token).toMatch(/^[0-9a-f]{64}$/);
    expect(c.spec?.connection?.kubeconfig).toBeTruthy();
    expect(condition(c, 'Initialized')).toBe('True');
    const svc = JSON.parse(await host.kubectlOk(['get', 'service', 'mc-rbac', '-n', NS, '-o', 'json'])) as {
      spec: { ports: { port: number }[] };
    };
    expect(svc.spec.ports.map((p) => p.port)).toEqual([6443, 80]);
  });

  it('keeps its state: host key Secret (updated), CA Secret (created), info ConfigMap (applied), Lease', async () => {
    const secret = async (name: string) =>
      JSON.parse(await host.kubectlOk(['get', 'secret', name, '-n', NS, '-o', 'json'])) as {
        metadata: { uid: string };
        type: string;
        data?: Record<string, string>;
      };
    // Updated in place (PUT: same object, what it held kept, the key added), not deleted and created again.
    const hostKey = await secret('tower-proxy-host-key');
    expect(hostKey.metadata.uid).toBe(hostKeyUid);
    expect(Object.keys(hostKey.data ?? {}).sort()).toEqual(['note', 'ssh-host-key', 'ssh-host-key.pub']);
    const ca = await secret('tower-proxy-ca');
    expect(ca.type).toBe('kubernetes.io/tls');
    expect(Object.keys(ca.data ?? {}).sort()).toEqual(['tls.crt', 'tls.key']);
    // The command NOTES.txt gives.
    expect(
      await host.kubectlOk([
        '-n',
        NS,
        'get',
        'configmap',
        'tower-proxy',
        '-o',
        'jsonpath={.data.fingerprint}',
      ]),
    ).toBe(proxy.fingerprint);
    expect(
      await host.kubectlOk([
        '-n',
        NS,
        'get',
        'lease',
        'tower-proxy',
        '-o',
        'jsonpath={.spec.holderIdentity}',
      ]),
    ).toBe('rbac-test');
  });

  it('records Events about the Cluster (in the namespace "default")', async () => {
    await until(
      () => `a KubeconfigIssued event; proxy log:\n${proxy.proc.tail(30)}`,
      async () =>
        (
          await host.kubectlOk([
            'get',
            'events',
            '-n',
            'default',
            '--field-selector',
            'involvedObject.name=rbac,reason=KubeconfigIssued',
            '-o',
            'name',
          ])
        ).trim() !== '',
      10_000,
    );
  });

  it('external access: the LoadBalancer ext-mc-rbac carries the kubernetes port only; mc-rbac is unchanged', async () => {
    const ports = async (name: string) => {
      const r = await host.kubectl(['get', 'service', name, '-n', NS, '-o', 'json']);
      if (r.exitCode !== 0) return undefined;
      const svc = JSON.parse(r.stdout) as { spec: { type: string; ports: { port: number }[] } };
      return [svc.spec.type, svc.spec.ports.map((p) => p.port)];
    };
    const before = await ports('mc-rbac');
    await host.kubectlOk([
      'patch',
      'clusters.cluster.kubesphere.io',
      'rbac',
      '--type=merge',
      '-p',
      '{"spec":{"externalKubeAPIEnabled":true}}',
    ]);
    await until(
      () => `ext-mc-rbac to be created; proxy log:\n${proxy.proc.tail(30)}`,
      async () => (await ports('ext-mc-rbac')) !== undefined,
      20_000,
    );
    expect(await ports('ext-mc-rbac')).toEqual(['LoadBalancer', [6443]]);
    expect(await ports('mc-rbac')).toEqual(before);
    expect(before).toEqual(['ClusterIP', [6443, 80]]);
  });

  it('deletes its Services when the Cluster goes (no garbage collector runs here: the proxy does it)', async () => {
    await host.kubectlOk(['delete', 'clusters.cluster.kubesphere.io', 'rbac']);
    await until(
      () => `mc-rbac and ext-mc-rbac to be deleted; proxy log:\n${proxy.proc.tail(30)}`,
      async () =>
        (await host.kubectl(['get', 'service', 'mc-rbac', '-n', NS])).exitCode !== 0 &&
        (await host.kubectl(['get', 'service', 'ext-mc-rbac', '-n', NS])).exitCode !== 0,
      20_000,
    );
  });

  it("RBAC would let it touch any Service of its namespace: the chart's admission policy refuses all but its own", async () => {
    for (const name of ['foreign', 'mc-lookalike'])
      await host.kubectlOk(['create', 'service', 'clusterip', name, '--tcp=443:8443', '-n', NS]);
    expect(await proxyChart.canI(PROXY_SA, ['delete', 'services/foreign', '-n', NS])).toBe(true);
    const asProxy = (args: string[]) => host.kubectl([...args, '-n', NS, `--as=${PROXY_SA}`]);
    const denied = (r: { exitCode: number | null; stderr: string }) =>
      r.exitCode !== 0 && r.stderr.includes('denied request');
    await until(
      'the admission policy to be in force',
      async () => denied(await asProxy(['delete', 'service', 'foreign', '--dry-run=server'])),
      15_000,
    );
    const notOurs = 'denied request: tower-proxy changes and deletes only its own Services';
    const mustBeOurs =
      'denied request: a Service written by tower-proxy must be mc-<cluster> or ext-mc-<cluster> labelled';
    const attempts: [string[], string][] = [
      [['delete', 'service', 'foreign'], notOurs],
      [['delete', 'service', 'mc-lookalike'], notOurs],
      // taking one over by putting the proxy's labels on it
      [
        [
          'label',
          'service',
          'mc-lookalike',
          'app.kubernetes.io/managed-by=tower-proxy',
          'tower.knet.io/cluster=lookalike',
        ],
        notOurs,
      ],
      [
        ['patch', 'service', 'foreign', '--type=merge', '-p', '{"spec":{"selector":{"app":"tower"}}}'],
        notOurs,
      ],
      [['create', 'service', 'clusterip', 'mc-unlabelled', '--tcp=443:8443'], mustBeOurs],
    ];
    // One of its own names and labels, but the kubesphere port (plain HTTP) on a load balancer.
    const exposed = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'ext-mc-lookalike',
        labels: { 'app.kubernetes.io/managed-by': 'tower-proxy', 'tower.knet.io/cluster': 'lookalike' },
      },
      spec: { type: 'LoadBalancer', ports: [{ name: 'kubesphere', port: 80, targetPort: 16000 }] },
    };
    const r = await host.kubectl(['apply', '-f', '-', '-n', NS, `--as=${PROXY_SA}`], {
      input: JSON.stringify(exposed),
    });
    expect([r.exitCode !== 0, r.stderr]).toEqual([
      true,
      expect.stringContaining(
        'denied request: a LoadBalancer Service written by tower-proxy carries only the kubernetes port (6443)',
      ),
    ]);
    for (const [args, message] of attempts) {
      const r = await asProxy(args);
      expect([args.join(' '), r.exitCode !== 0, r.stderr]).toEqual([
        args.join(' '),
        true,
        expect.stringContaining(message),
      ]);
    }
    // Both are still there, as they were.
    const left = JSON.parse(
      await host.kubectlOk(['get', 'services', 'foreign', 'mc-lookalike', '-n', NS, '-o', 'json']),
    ) as {
      items: { metadata: { labels?: Record<string, string> }; spec: { selector?: Record<string, string> } }[];
    };
    expect(left.items.map((s) => [s.metadata.labels, s.spec.selector])).toEqual([
      [{ app: 'foreign' }, { app: 'foreign' }],
      [{ app: 'mc-lookalike' }, { app: 'mc-lookalike' }],
    ]);
  });

  it('no request of the proxy was forbidden', () => {
    // Structured: a number such as "retryInMs":403 is not a refusal (CI once matched one).
    const refused = (l: string): boolean => {
      try {
        const e = JSON.parse(l) as { code?: unknown; reason?: unknown; err?: unknown; msg?: unknown };
        return (
          e.code === 403 || e.reason === 'Forbidden' || /forbidden/i.test(`${String(e.err)} ${String(e.msg)}`)
        );
      } catch {
        return /forbidden|"code":403\b/i.test(l);
      }
    };
    const forbidden = readFileSync(proxy.proc.logFile, 'utf8').split('\n').filter(refused);
    expect(forbidden).toEqual([]);
  });

  it('the ServiceAccount can do what the proxy does…', async () => {
    const yes = [
      ['list', 'clusters.cluster.kubesphere.io'],
      ['watch', 'clusters.cluster.kubesphere.io'],
      ['patch', 'clusters.cluster.kubesphere.io/any'],
      ['create', 'services', '-n', NS],
      ['list', 'services', '-n', NS],
      ['watch', 'services', '-n', NS],
      ['get', 'services/mc-any', '-n', NS],
      ['patch', 'services/mc-any', '-n', NS],
      ['delete', 'services/mc-any', '-n', NS],
      ['get', 'secrets/tower-proxy-host-key', '-n', NS],
      ['update', 'secrets/tower-proxy-ca', '-n', NS],
      ['create', 'secrets', '-n', NS],
      ['patch', 'configmaps/tower-proxy', '-n', NS],
      ['create', 'configmaps/tower-proxy', '-n', NS],
      ['update', 'leases.coordination.k8s.io/tower-proxy', '-n', NS],
      ['create', 'events', '-n', 'default'],
    ];
    for (const a of yes)
      expect([a.join(' '), await proxyChart.canI(PROXY_SA, a)]).toEqual([a.join(' '), true]);
  });

  it('…and nothing it does not need', async () => {
    const no = [
      ['list', 'secrets', '--all-namespaces'],
      ['get', 'secrets', '-n', NS], // only the two named Secrets
      ['get', 'secrets/other', '-n', NS],
      ['update', 'secrets/other', '-n', NS],
      ['delete', 'secrets/tower-proxy-ca', '-n', NS],
      ['create', 'secrets', '-n', 'default'],
      ['get', 'pods', '-n', NS],
      ['list', 'pods', '--all-namespaces'],
      ['create', 'pods', '-n', NS],
      ['delete', 'clusters.cluster.kubesphere.io/any'],
      ['update', 'clusters.cluster.kubesphere.io/any'],
      ['create', 'clusters.cluster.kubesphere.io'],
      ['patch', 'services/kube-dns', '-n', 'kube-system'],
      ['create', 'services', '-n', 'default'],
      ['get', 'services/kube-dns', '-n', 'kube-system'],
      ['list', 'services', '-n', 'default'],
      ['list', 'configmaps', '-n', NS],
      ['patch', 'configmaps/other', '-n', NS],
      ['create', 'configmaps/other', '-n', NS],
      ['update', 'leases.coordination.k8s.io/other', '-n', NS],
      ['create', 'events', '-n', 'kube-system'],
      ['list', 'namespaces'],
      ['create', 'clusterrolebindings'],
      ['*', '*'],
    ];
    for (const a of no)
      expect([a.join(' '), await proxyChart.canI(PROXY_SA, a)]).toEqual([a.join(' '), false]);
  });
});

describe("tower-agent's RBAC: the ClusterRole it binds is what the host may do in the member", () => {
  // "view" is an aggregated ClusterRole: kube-controller-manager fills its rules, so this member runs one.
  let member: ControlPlane;
  let memberChart: ChartBed;
  const canOnMember = (args: string[]) => memberChart.canI(AGENT_SA, args);

  beforeAll(async () => {
    member = await ControlPlane.start({ controllerManager: true });
    await member.kubectlOk(['create', 'namespace', NS]);
    memberChart = new ChartBed(member, { chart: 'tower-agent', release: 'tower-agent', namespace: NS });
    const rbac = await memberChart.render([
      ...AGENT_VALUES,
      '--show-only',
      'templates/serviceaccount.yaml',
      '--show-only',
      'templates/rbac.yaml',
    ]);
    expect(names(await memberChart.apply(rbac))).toEqual([
      'clusterrolebinding.rbac.authorization.k8s.io/kubesphere-system-tower-agent',
      'serviceaccount/tower-agent',
    ]);
    await until(
      () => 'the ClusterRole view to be aggregated',
      async () => canOnMember(['list', 'pods', '--all-namespaces']),
      30_000,
    );
  }, 120_000);

  afterAll(async () => {
    await member?.stop();
  });

  it('by default "view": read most things, no Secrets, no writes', async () => {
    expect(await canOnMember(['list', 'pods', '--all-namespaces'])).toBe(true);
    expect(await canOnMember(['watch', 'deployments.apps', '-n', 'default'])).toBe(true);
    expect(await canOnMember(['get', 'secrets', '-n', 'default'])).toBe(false);
    expect(await canOnMember(['create', 'deployments.apps', '-n', 'default'])).toBe(false);
    expect(await canOnMember(['delete', 'namespaces'])).toBe(false);
    expect(await canOnMember(['create', 'pods/exec', '-n', 'default'])).toBe(false);
  });
});
