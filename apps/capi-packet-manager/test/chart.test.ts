/**
 * The capi-packet-manager chart (charts/capi-packet-manager) against the real helm and a real
 * kube-apiserver: lint; the defaults and the options rendered and defaulted by the API server
 * (server-side dry run); the manager's own options parser on the rendered args and env; the
 * schema's and the templates' refusals; the Metal API token in no object but the Secret; a real
 * `helm install` (CRDs established, NOTES); what the ServiceAccount may and may not do, cluster-wide
 * and namespaced (`kubectl auth can-i`); the README's values table.
 *
 * And the clusterctl bundle's infrastructure-components.yaml, which is this chart rendered with
 * clusterctl/values.yaml (`clusterctlComponents`): equal to a fresh render, its variables, and
 * applied as clusterctl applies it. After a chart change, rewrite it:
 *
 *   UPDATE_BUNDLE=1 npx jest -c apps/capi-packet-manager/jest.config.cjs chart
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import {
  bootstrapCrds,
  clusterctlComponents,
  infrastructureCrds,
  substituteVariables,
  templateVariables,
  toYaml,
  type Manifest,
} from '@knet/capi';
import { parseOptions } from '@knet/runtime';
import {
  ChartBed,
  ControlPlane,
  chartContainer,
  resourceName,
  serviceAccountUser,
  workspaceRoot,
  type KubeObject,
} from '@knet/testing';
import { program } from '../src/options';

jest.setTimeout(180_000);

const NS = 'capi-packet-chart';
/** Watched by the namespaced variants. */
const WATCHED = 'clusters';
const NAME = 'capi-packet-manager';
const GLOBAL_NAME = `${NS}-${NAME}`;
const SA = serviceAccountUser(NS, NAME);
const CHART_DIR = join(workspaceRoot(), 'charts', 'capi-packet-manager');
const BUNDLE_DIR = join(CHART_DIR, 'clusterctl');
const COMPONENTS = join(BUNDLE_DIR, 'infrastructure-components.yaml');
/** The namespace clusterctl installs the bundle into by default (its one Namespace object). */
const BUNDLE_NAMESPACE = 'capi-packet-system';
/** A token for these tests only (no Metal API is called); any object holding it is a leak. */
const KEY = `metal-${randomBytes(16).toString('hex')}`;
const CRD_NAMES = [...infrastructureCrds(), ...bootstrapCrds()].map((c) => c.metadata.name);

// --- the parts of the objects the tests look at ---------------------------------------------------
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  imagePullSecrets?: { name: string }[];
  nodeSelector?: Record<string, string>;
  containers: Container[];
}
interface Rule {
  apiGroups: string[];
  resources: string[];
  resourceNames?: string[];
  verbs: string[];
}
interface K8sObject extends KubeObject {
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    strategy?: Record<string, unknown>;
    selector?: { matchLabels?: Record<string, string> };
    template?: {
      metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
  rules?: Rule[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

let cp: ControlPlane;
let chart: ChartBed;

beforeAll(async () => {
  cp = await ControlPlane.start();
  chart = new ChartBed(cp, { chart: 'capi-packet-manager', release: NAME, namespace: NS });
  await cp.kubectlOk(['create', 'namespace', NS]);
  await cp.kubectlOk(['create', 'namespace', WATCHED]);
}, 240_000);

afterAll(async () => {
  await cp?.stop();
});

const WITH_KEY = { credentials: { apiKey: KEY } };

/** The chart rendered with `values` and defaulted by the API server (server-side dry run). */
async function objects(values: Record<string, unknown> = WITH_KEY): Promise<K8sObject[]> {
  return chart.dryRun<K8sObject>(await chart.render([], { values }));
}

const names = (list: KubeObject[]) => list.map(resourceName).sort();
const find = (list: K8sObject[], kind: string, name: string = NAME): K8sObject => {
  const all = list.filter((o) => o.kind === kind && o.metadata.name === name);
  if (all.length !== 1) throw new Error(`${all.length} ${kind} ${name} among ${names(list).join(', ')}`);
  return all[0]!;
};
const podOf = (list: K8sObject[]): PodSpec => find(list, 'Deployment').spec!.template!.spec;
const manager = (pod: PodSpec): Container => {
  const c = pod.containers.find((x) => x.name === 'manager');
  if (!c) throw new Error(`no container manager among ${pod.containers.map((x) => x.name).join(', ')}`);
  return c;
};

/** What the downward API and the chart's Secret give the manager's env. */
const FIELDS = { 'metadata.namespace': NS, 'metadata.name': 'capi-packet-manager-7c9d-x2' };
const SECRETS = { [`${NAME}-credentials/PACKET_API_KEY`]: KEY, 'metal-credentials/token': KEY };

/** The manager's own options parser on the rendered container (args and env as the kubelet resolves them). */
async function managerOptions(values: Record<string, unknown>) {
  const c = await chartContainer(chart, 'deployment.yaml', 'manager', {
    values,
    fields: FIELDS,
    secrets: SECRETS,
  });
  return parseOptions(program, ['node', 'capi-packet-manager', ...c.args], c.env);
}

/**
 * `kubectl auth can-i <args> --as=<user>`, except for Cluster API's own resources: CAPI's CRDs are
 * not installed here and can-i resolves a resource through discovery (it answers "no" for one it
 * cannot find, whatever RBAC says), so those are asked with a SubjectAccessReview, which goes to
 * the same authorizer without discovery. `args` as can-i takes them: verb, resource[/name], `-n`,
 * `--all-namespaces`, `--subresource=`.
 */
async function may(user: string, args: readonly string[]): Promise<boolean> {
  const [verb, target = ''] = args;
  const capi = /^(clusters|machines)\.cluster\.x-k8s\.io(?:\/(.+))?$/.exec(target);
  if (!capi) return chart.canI(user, args);
  const flag = (name: string) => args[args.indexOf(name) + 1];
  const review = {
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: {
      user,
      groups: [
        'system:serviceaccounts',
        `system:serviceaccounts:${user.split(':')[2]}`,
        'system:authenticated',
      ],
      resourceAttributes: {
        verb,
        group: 'cluster.x-k8s.io',
        resource: capi[1],
        ...(capi[2] ? { name: capi[2] } : {}),
        ...(args.includes('-n') ? { namespace: flag('-n') } : {}),
        ...Object.fromEntries(
          args.filter((a) => a.startsWith('--subresource=')).map((a) => ['subresource', a.split('=')[1]]),
        ),
      },
    },
  };
  const out = await cp.kubectlOk(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(review) });
  return (JSON.parse(out) as { status?: { allowed?: boolean } }).status?.allowed === true;
}

const MANAGER_RULES: Rule[] = [
  {
    apiGroups: ['infrastructure.cluster.x-k8s.io'],
    resources: ['packetclusters', 'packetmachines'],
    verbs: ['get', 'list', 'watch', 'patch'],
  },
  {
    apiGroups: ['infrastructure.cluster.x-k8s.io'],
    resources: ['packetclusters/status', 'packetmachines/status'],
    verbs: ['patch'],
  },
  {
    apiGroups: ['bootstrap.cluster.x-k8s.io'],
    resources: ['packetkubeadmconfigs'],
    verbs: ['get', 'list', 'watch'],
  },
  { apiGroups: ['bootstrap.cluster.x-k8s.io'], resources: ['packetkubeadmconfigs/status'], verbs: ['patch'] },
  { apiGroups: ['cluster.x-k8s.io'], resources: ['clusters', 'machines'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
];

describe('helm lint --strict', () => {
  it('passes with the defaults and with every values file in ci/', async () => {
    expect(await chart.lintAll()).toEqual([]);
  });
});

describe('the defaults (with a token), as the API server stores them', () => {
  let all: K8sObject[];
  let pod: PodSpec;
  beforeAll(async () => {
    all = await objects();
    pod = podOf(all);
  });

  it('are these objects: the manager cluster-wide, leader election in the release namespace, the CAPI aggregation', () => {
    expect(names(all)).toEqual([
      `clusterrole.rbac.authorization.k8s.io/${GLOBAL_NAME}`,
      `clusterrole.rbac.authorization.k8s.io/${GLOBAL_NAME}-capi`,
      `clusterrolebinding.rbac.authorization.k8s.io/${GLOBAL_NAME}`,
      `deployment.apps/${NAME}`,
      `role.rbac.authorization.k8s.io/${NAME}-leader-election`,
      `rolebinding.rbac.authorization.k8s.io/${NAME}-leader-election`,
      `secret/${NAME}-credentials`,
      `serviceaccount/${NAME}`,
    ]);
    expect(all.filter((o) => o.metadata.namespace !== undefined).map((o) => o.metadata.namespace)).toEqual(
      all.filter((o) => o.metadata.namespace !== undefined).map(() => NS),
    );
  });

  it('one replica, the old pod stopped before the new one, the ServiceAccount token mounted for the API calls', () => {
    const d = find(all, 'Deployment');
    expect(d.spec!.replicas).toBe(1);
    expect(d.spec!.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
    });
    expect(d.spec!.selector).toEqual({
      matchLabels: { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/instance': NAME },
    });
    expect(pod.serviceAccountName).toBe(NAME);
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.containers.map((c) => c.name)).toEqual(['manager']);
  });

  it('the manager: non-root 65532, read-only root filesystem, no capabilities, RuntimeDefault seccomp, resources', () => {
    expect(pod.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      fsGroup: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(manager(pod).securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(manager(pod).resources).toEqual({
      requests: { cpu: '50m', memory: '96Mi' },
      limits: { memory: '256Mi' },
    });
  });

  it('runs the appVersion image with the token from the Secret, the API URL, and the pod namespace and name', () => {
    const c = manager(pod);
    expect(c.image).toBe('ghcr.io/knet/capi-packet-manager:0.1.0');
    expect(c.env).toEqual([
      {
        name: 'PACKET_API_KEY',
        valueFrom: { secretKeyRef: { name: `${NAME}-credentials`, key: 'PACKET_API_KEY' } },
      },
      { name: 'METAL_API_URL', value: 'https://api.equinix.com/metal/v1' },
      {
        name: 'POD_NAMESPACE',
        valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
      },
      { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
    ]);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);
    expect(c.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'metrics' });
    expect(c.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'metrics' });
    expect(find(all, 'Secret', `${NAME}-credentials`).data).toEqual({
      PACKET_API_KEY: Buffer.from(KEY).toString('base64'),
    });
  });

  it("the manager's own options parser accepts the rendered args and env: leader election on its Lease in the release namespace", async () => {
    expect(await managerOptions(WITH_KEY)).toMatchObject({
      apiKey: KEY,
      apiUrl: 'https://api.equinix.com/metal/v1',
      metricsPort: 8080,
      metricsHost: '0.0.0.0',
      logLevel: 'info',
      leaderElect: true,
      leaseName: NAME,
      leaderElectionNamespace: NS,
      identity: FIELDS['metadata.name'],
      syncPeriod: 600_000,
      devicePollInterval: 15_000,
      clusterConcurrency: 10,
      machineConcurrency: 10,
      namespace: undefined,
      watchFilter: undefined,
    });
  });

  it('the RBAC: exactly the calls the manager makes; its own Lease by name; full access for CAPI core by aggregation', () => {
    expect(find(all, 'ClusterRole', GLOBAL_NAME).rules).toEqual(MANAGER_RULES);
    const binding = find(all, 'ClusterRoleBinding', GLOBAL_NAME);
    expect([binding.roleRef, binding.subjects]).toEqual([
      { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: GLOBAL_NAME },
      [{ kind: 'ServiceAccount', name: NAME, namespace: NS }],
    ]);
    expect(find(all, 'Role', `${NAME}-leader-election`).rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: [NAME],
        verbs: ['get', 'update'],
      },
    ]);
    const capi = find(all, 'ClusterRole', `${GLOBAL_NAME}-capi`);
    expect(capi.metadata.labels?.['cluster.x-k8s.io/aggregate-to-manager']).toBe('true');
    const all7 = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    expect(capi.rules).toEqual([
      {
        apiGroups: ['infrastructure.cluster.x-k8s.io'],
        resources: ['packetclusters', 'packetmachines', 'packetmachinetemplates'],
        verbs: all7,
      },
      {
        apiGroups: ['bootstrap.cluster.x-k8s.io'],
        resources: ['packetkubeadmconfigs', 'packetkubeadmconfigtemplates'],
        verbs: all7,
      },
    ]);
  });
});

describe('options', () => {
  it('watchNamespace: --namespace and a Role there instead of the ClusterRole; the Lease stays in the release namespace', async () => {
    const values = { ...WITH_KEY, watchNamespace: WATCHED };
    const all = await objects(values);
    expect(names(all)).toEqual([
      `clusterrole.rbac.authorization.k8s.io/${GLOBAL_NAME}-capi`,
      `deployment.apps/${NAME}`,
      `role.rbac.authorization.k8s.io/${NAME}`,
      `role.rbac.authorization.k8s.io/${NAME}-leader-election`,
      `rolebinding.rbac.authorization.k8s.io/${NAME}`,
      `rolebinding.rbac.authorization.k8s.io/${NAME}-leader-election`,
      `secret/${NAME}-credentials`,
      `serviceaccount/${NAME}`,
    ]);
    const role = all.find((o) => o.kind === 'Role' && o.metadata.name === NAME)!;
    expect([role.metadata.namespace, role.rules]).toEqual([WATCHED, MANAGER_RULES]);
    const binding = all.find((o) => o.kind === 'RoleBinding' && o.metadata.name === NAME)!;
    expect([binding.metadata.namespace, binding.subjects]).toEqual([
      WATCHED,
      [{ kind: 'ServiceAccount', name: NAME, namespace: NS }],
    ]);
    expect(find(all, 'Role', `${NAME}-leader-election`).metadata.namespace).toBe(NS);
    expect(await managerOptions(values)).toMatchObject({ namespace: WATCHED, leaderElectionNamespace: NS });
  });

  it('credentials.existingSecret: no Secret of the chart, the key read from yours, no checksum annotation', async () => {
    const values = { credentials: { existingSecret: 'metal-credentials', existingSecretKey: 'token' } };
    const all = await objects(values);
    expect(names(all)).not.toContain(`secret/${NAME}-credentials`);
    expect(manager(podOf(all)).env![0]).toEqual({
      name: 'PACKET_API_KEY',
      valueFrom: { secretKeyRef: { name: 'metal-credentials', key: 'token' } },
    });
    expect(find(all, 'Deployment').spec!.template!.metadata.annotations).toBeUndefined();
    expect((await managerOptions(values)).apiKey).toBe(KEY);
  });

  it('a new token rolls the pods: the checksum annotation follows it', async () => {
    const annotations = async (apiKey: string) =>
      find(await objects({ credentials: { apiKey } }), 'Deployment').spec!.template!.metadata.annotations;
    const [a, b] = [await annotations(KEY), await annotations(`${KEY}-rotated`)];
    expect(a?.['checksum/credentials']).toMatch(/^[0-9a-f]{16}$/);
    expect(b?.['checksum/credentials']).toMatch(/^[0-9a-f]{16}$/);
    expect(a?.['checksum/credentials']).not.toBe(b?.['checksum/credentials']);
  });

  it('the manager flags from the values; extraArgs after them; leader election off drops the Lease rules', async () => {
    const values = {
      ...WITH_KEY,
      metalApiUrl: 'http://127.0.0.1:9999/metal/v1',
      watchFilter: 'team-a',
      syncPeriod: '5m',
      devicePollInterval: '5s',
      concurrency: { packetClusters: 2, packetMachines: 20 },
      logLevel: 'debug',
      metricsPort: 9443,
      leaderElection: { enabled: false },
      extraArgs: ['--shutdown-timeout=40s'],
    };
    const c = await chartContainer(chart, 'deployment.yaml', 'manager', {
      values,
      fields: FIELDS,
      secrets: SECRETS,
    });
    expect(c.args).toEqual([
      '--metrics-port=9443',
      '--log-level=debug',
      '--sync-period=5m',
      '--device-poll-interval=5s',
      '--packetcluster-concurrency=2',
      '--packetmachine-concurrency=20',
      '--leader-elect=false',
      '--watch-filter=team-a',
      '--shutdown-timeout=40s',
    ]);
    expect(await managerOptions(values)).toMatchObject({
      apiUrl: 'http://127.0.0.1:9999/metal/v1',
      watchFilter: 'team-a',
      syncPeriod: 300_000,
      devicePollInterval: 5000,
      clusterConcurrency: 2,
      machineConcurrency: 20,
      logLevel: 'debug',
      metricsPort: 9443,
      leaderElect: false,
      shutdownTimeout: 40_000,
    });
    expect(names(await objects(values)).filter((n) => n.includes('leader-election'))).toEqual([]);
  });

  it('image, pull secrets, pod labels and annotations, a lease name of its own, two replicas', async () => {
    const values = {
      ...WITH_KEY,
      image: { repository: 'registry.example.com:5000/capi/manager', tag: 'dev-1', pullPolicy: 'Always' },
      imagePullSecrets: ['regcred', { name: 'other' }],
      podLabels: { team: 'infra' },
      podAnnotations: { 'example.com/note': 'yes' },
      leaderElection: { enabled: true, leaseName: 'capi-packet-lease' },
      replicas: 2,
    };
    const all = await objects(values);
    const d = find(all, 'Deployment');
    const pod = podOf(all);
    expect(d.spec!.replicas).toBe(2);
    expect(manager(pod).image).toBe('registry.example.com:5000/capi/manager:dev-1');
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }, { name: 'other' }]);
    expect(d.spec!.template!.metadata.labels).toMatchObject({ team: 'infra' });
    expect(d.spec!.template!.metadata.annotations).toMatchObject({ 'example.com/note': 'yes' });
    expect(find(all, 'Role', `${NAME}-leader-election`).rules![1]!.resourceNames).toEqual([
      'capi-packet-lease',
    ]);
    expect((await managerOptions(values)).leaseName).toBe('capi-packet-lease');
  });

  it('rbac.create and aggregateToCapi false, serviceAccount.create false: only the Deployment and the Secret', async () => {
    const all = await objects({
      ...WITH_KEY,
      rbac: { create: false, aggregateToCapi: false },
      serviceAccount: { create: false, name: 'capi' },
    });
    expect(names(all)).toEqual([`deployment.apps/${NAME}`, `secret/${NAME}-credentials`]);
    expect(podOf(all).serviceAccountName).toBe('capi');
  });
});

describe('values are checked before anything is rendered', () => {
  /** helm template's stderr for `values`, which must fail. */
  const refusal = async (values: unknown): Promise<string> => {
    const r = await cp.helm(['template', NAME, chart.chart, '-n', NS, '-f', writeValues(values)]);
    expect(r.exitCode).not.toBe(0);
    return r.stderr;
  };
  let files = 0;
  const writeValues = (values: unknown) => {
    const path = join(cp.dir, `capi-packet-values-${++files}.json`);
    writeFileSync(path, JSON.stringify(values));
    return path;
  };

  it('the schema: an unknown key, a bad duration, a flag that is not one, a bad level, a port, a selector label', async () => {
    expect(await refusal({ ...WITH_KEY, credential: {} })).toContain(
      'Additional property credential is not allowed',
    );
    expect(await refusal({ ...WITH_KEY, syncPeriod: '10 minutes' })).toContain('syncPeriod');
    expect(await refusal({ ...WITH_KEY, extraArgs: ['shutdown-timeout=1s'] })).toContain(
      "extraArgs.0: Does not match pattern '^--[a-z][-a-z0-9]*(=.*)?$'",
    );
    expect(await refusal({ ...WITH_KEY, logLevel: 'verbose' })).toContain(
      'logLevel must be one of the following',
    );
    expect(await refusal({ ...WITH_KEY, metricsPort: 0 })).toContain(
      'metricsPort: Must be greater than or equal to 1',
    );
    expect(await refusal({ ...WITH_KEY, podLabels: { 'app.kubernetes.io/name': 'x' } })).toContain(
      'podLabels',
    );
    expect(await refusal({ ...WITH_KEY, watchNamespace: 'Not_A_Namespace' })).toContain('watchNamespace');
    expect(await refusal({ ...WITH_KEY, metalApiUrl: 'ftp://metal.example.com' })).toContain('metalApiUrl');
  });

  it('the templates: one line that names the value to set instead, never the token', async () => {
    expect(await refusal({})).toContain('credentials.apiKey or credentials.existingSecret is required');
    expect(await refusal({ credentials: { apiKey: KEY, existingSecret: 'x' } })).toContain(
      'give credentials.apiKey or credentials.existingSecret, not both',
    );
    expect(await refusal({ ...WITH_KEY, replicas: 2, leaderElection: { enabled: false } })).toContain(
      'replicas is 2 but leaderElection.enabled is false: every replica would reconcile and create devices',
    );
    expect(await refusal({ ...WITH_KEY, extraArgs: ['--namespace=x'] })).toContain(
      'extraArgs: --namespace=x: the chart sets --namespace from watchNamespace; set that value instead',
    );
    const apiKeyFlag = await refusal({ ...WITH_KEY, extraArgs: [`--api-key=${KEY}`] });
    expect(apiKeyFlag).toContain('extraArgs: --api-key would put the Metal API token into the pod spec');
    expect(apiKeyFlag).not.toContain(KEY);
    expect(await refusal({ ...WITH_KEY, serviceAccount: { create: false } })).toContain(
      'serviceAccount.name is required when serviceAccount.create is false',
    );
  });
});

describe('the Metal API token', () => {
  const b64 = Buffer.from(KEY).toString('base64');
  /** Every object other than the chart's Secret that holds the token, in clear or base64. */
  const leaks = (list: K8sObject[]) =>
    list
      .filter((o) => !(o.kind === 'Secret' && o.metadata.name === `${NAME}-credentials`))
      .filter((o) => JSON.stringify(o).includes(KEY) || JSON.stringify(o).includes(b64))
      .map(resourceName);

  it('the check finds a planted leak (the token in a pod annotation)', async () => {
    expect(leaks(await objects({ ...WITH_KEY, podAnnotations: { note: KEY } }))).toEqual([
      `deployment.apps/${NAME}`,
    ]);
  });

  it('is in no rendered object but the Secret, in every variant', async () => {
    for (const values of [
      WITH_KEY,
      { ...WITH_KEY, watchNamespace: WATCHED },
      { ...WITH_KEY, leaderElection: { enabled: false } },
      { ...WITH_KEY, replicas: 3, extraArgs: ['--shutdown-timeout=40s'] },
    ]) {
      const all = await objects(values);
      expect([JSON.stringify(values).replace(KEY, '<key>'), leaks(all)]).toEqual([
        JSON.stringify(values).replace(KEY, '<key>'),
        [],
      ]);
      expect(find(all, 'Secret', `${NAME}-credentials`).data?.['PACKET_API_KEY']).toBe(b64);
    }
  });
});

describe('a real install', () => {
  const helmOk = async (args: string[]) => {
    const r = await cp.helm(args);
    if (r.exitCode !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const SCOPED_NS = 'capi-packet-scoped';
  const SCOPED = 'scoped';
  const SCOPED_SA = serviceAccountUser(SCOPED_NS, `${SCOPED}-${NAME}`);
  let installed = '';

  beforeAll(async () => {
    installed = await helmOk(['install', NAME, chart.chart, '-n', NS, '--set', `credentials.apiKey=${KEY}`]);
    await helmOk([
      'install',
      SCOPED,
      chart.chart,
      '-n',
      SCOPED_NS,
      '--create-namespace',
      '--set',
      `watchNamespace=${WATCHED}`,
      '--set',
      'credentials.existingSecret=metal-credentials',
    ]);
  });

  afterAll(async () => {
    await cp.helm(['uninstall', SCOPED, '-n', SCOPED_NS]);
    await cp.helm(['uninstall', NAME, '-n', NS]);
  });

  it('installs the CRDs (established) and the manager, and prints how to check it', async () => {
    await cp.kubectlOk([
      'wait',
      '--for=condition=Established',
      '--timeout=60s',
      ...CRD_NAMES.map((n) => `crd/${n}`),
    ]);
    expect(installed).toContain(`kubectl -n ${NS} rollout status deployment/${NAME}`);
    expect(installed).toContain(`kubectl -n ${NS} get lease ${NAME} -o jsonpath='{.spec.holderIdentity}'`);
    expect(installed).not.toContain(KEY);
    const d = JSON.parse(
      await cp.kubectlOk(['get', 'deployment', NAME, '-n', NS, '-o', 'json']),
    ) as K8sObject;
    expect(manager(d.spec!.template!.spec).args).toContain('--leader-elect=true');
  });

  it("the README's values table lists every value with its default, and the schema knows every value", async () => {
    const defaults = JSON.parse(
      await helmOk(['get', 'values', NAME, '-n', NS, '--all', '-o', 'json']),
    ) as Record<string, unknown>;
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const rows = new Map<string, string>();
    for (const m of readme.matchAll(/^\| `([^`]+)` +\|.*\| `([^`]*)` +\|$/gm)) rows.set(m[1]!, m[2]!);
    const cell = (v: unknown) => (typeof v === 'string' ? (v === '' ? "''" : v) : JSON.stringify(v));
    const isMap = (v: unknown): v is Record<string, unknown> =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    const leaves: [string, unknown][] = [];
    const walk = (v: unknown, path: string) => {
      if (rows.has(path) || !isMap(v) || Object.keys(v).length === 0) leaves.push([path, v]);
      else for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    };
    // The install's own token is not a default.
    walk({ ...defaults, credentials: { ...(defaults['credentials'] as object), apiKey: '' } }, '');
    expect(leaves.map(([p]) => [p, rows.get(p)])).toEqual(leaves.map(([p, v]) => [p, cell(v)]));
    expect([...rows.keys()].filter((p) => !leaves.some(([l]) => l === p))).toEqual([]);
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as {
      properties: Record<string, { properties?: Record<string, unknown>; $ref?: string }>;
    };
    const unknown = leaves
      .map(([p]) => p.split('.'))
      .filter(([top, sub]) => {
        const s = schema.properties[top!];
        return !s || (sub !== undefined && s.properties !== undefined && !(sub in s.properties));
      });
    expect(unknown).toEqual([]);
  });

  it('the ServiceAccount may make every call the manager makes', async () => {
    const allowed = [
      ...['get', 'list', 'watch', 'patch'].flatMap((v) => [
        [v, 'packetclusters.infrastructure.cluster.x-k8s.io', '-n', 'default'],
        [v, 'packetmachines.infrastructure.cluster.x-k8s.io', '-n', WATCHED],
      ]),
      ['patch', 'packetclusters.infrastructure.cluster.x-k8s.io/c', '--subresource=status', '-n', WATCHED],
      ['patch', 'packetmachines.infrastructure.cluster.x-k8s.io/m', '--subresource=status', '-n', WATCHED],
      ['patch', 'packetkubeadmconfigs.bootstrap.cluster.x-k8s.io/m', '--subresource=status', '-n', WATCHED],
      ...['get', 'list', 'watch'].flatMap((v) => [
        [v, 'packetkubeadmconfigs.bootstrap.cluster.x-k8s.io', '-n', WATCHED],
        [v, 'clusters.cluster.x-k8s.io', '--all-namespaces'],
        [v, 'machines.cluster.x-k8s.io', '-n', WATCHED],
      ]),
      ['get', 'secrets/c-ca', '-n', WATCHED],
      ['create', 'secrets', '-n', WATCHED],
      ['get', 'configmaps/c-lock', '-n', WATCHED],
      ['create', 'configmaps', '-n', WATCHED],
      ['create', 'events', '-n', WATCHED],
      ['patch', 'events', '-n', 'default'],
      ['create', 'leases.coordination.k8s.io', '-n', NS],
      ['get', `leases.coordination.k8s.io/${NAME}`, '-n', NS],
      ['update', `leases.coordination.k8s.io/${NAME}`, '-n', NS],
    ];
    const answers = await Promise.all(allowed.map(async (a) => [a.join(' '), await may(SA, a)]));
    expect(answers).toEqual(allowed.map((a) => [a.join(' '), true]));
  });

  it('and nothing else: no deletes or updates, no Secret list, no other Lease, no nodes or pods, no CRDs', async () => {
    const refused = [
      ['delete', 'packetmachines.infrastructure.cluster.x-k8s.io/m', '-n', WATCHED],
      ['update', 'packetmachines.infrastructure.cluster.x-k8s.io/m', '-n', WATCHED],
      ['create', 'packetmachines.infrastructure.cluster.x-k8s.io', '-n', WATCHED],
      ['update', 'packetclusters.infrastructure.cluster.x-k8s.io/c', '--subresource=status', '-n', WATCHED],
      ['get', 'packetmachinetemplates.infrastructure.cluster.x-k8s.io', '-n', WATCHED],
      ['get', 'packetkubeadmconfigtemplates.bootstrap.cluster.x-k8s.io', '-n', WATCHED],
      ['patch', 'packetkubeadmconfigs.bootstrap.cluster.x-k8s.io/m', '-n', WATCHED],
      ['patch', 'secrets/c-kubeconfig', '-n', WATCHED],
      ['patch', 'clusters.cluster.x-k8s.io/c', '-n', WATCHED],
      ['patch', 'machines.cluster.x-k8s.io/m', '--subresource=status', '-n', WATCHED],
      ['delete', 'secrets/c-ca', '-n', WATCHED],
      ['update', 'secrets/c-ca', '-n', WATCHED],
      ['list', 'secrets', '-n', WATCHED],
      ['watch', 'secrets', '--all-namespaces'],
      ['list', 'events', '-n', WATCHED],
      ['get', 'leases.coordination.k8s.io/kube-controller-manager', '-n', 'kube-system'],
      ['update', 'leases.coordination.k8s.io/someone-else', '-n', NS],
      ['create', 'leases.coordination.k8s.io', '-n', 'kube-system'],
      ['get', 'nodes'],
      ['list', 'pods', '--all-namespaces'],
      ['create', 'pods/exec', '-n', NS],
      ['update', 'configmaps/c-lock', '-n', WATCHED],
      ['delete', 'configmaps/c-lock', '-n', WATCHED],
      ['list', 'configmaps', '--all-namespaces'],
      ['get', 'customresourcedefinitions.apiextensions.k8s.io'],
      ['create', 'serviceaccounts/token', '-n', NS],
    ];
    const answers = await Promise.all(refused.map(async (a) => [a.join(' '), await may(SA, a)]));
    expect(answers).toEqual(refused.map((a) => [a.join(' '), false]));
  });

  it('namespaced (watchNamespace): the same calls in that namespace only; no cluster-wide Secret, Cluster or Machine access', async () => {
    const yes = [
      ['get', 'secrets/c-ca', '-n', WATCHED],
      ['create', 'secrets', '-n', WATCHED],
      ['watch', 'packetmachines.infrastructure.cluster.x-k8s.io', '-n', WATCHED],
      ['list', 'clusters.cluster.x-k8s.io', '-n', WATCHED],
      ['create', 'events', '-n', WATCHED],
      ['update', `leases.coordination.k8s.io/${SCOPED}-${NAME}`, '-n', SCOPED_NS],
    ];
    const no = [
      ['list', 'secrets', '--all-namespaces'],
      ['get', 'secrets/c-ca', '-n', 'default'],
      ['create', 'secrets', '-n', SCOPED_NS],
      ['watch', 'packetmachines.infrastructure.cluster.x-k8s.io', '--all-namespaces'],
      ['list', 'clusters.cluster.x-k8s.io', '--all-namespaces'],
      ['get', 'machines.cluster.x-k8s.io', '-n', 'default'],
      ['create', 'events', '-n', 'default'],
      ['get', 'nodes'],
    ];
    const ask = (list: string[][]) =>
      Promise.all(list.map(async (a) => [a.join(' '), await may(SCOPED_SA, a)]));
    expect(await ask(yes)).toEqual(yes.map((a) => [a.join(' '), true]));
    expect(await ask(no)).toEqual(no.map((a) => [a.join(' '), false]));
  });
});

describe('the clusterctl bundle: infrastructure-components.yaml', () => {
  let fresh: Manifest[];
  let text: string;
  beforeAll(async () => {
    const rendered = await chart.render(['--include-crds', '-f', join(BUNDLE_DIR, 'values.yaml')], {
      release: NAME,
      namespace: BUNDLE_NAMESPACE,
    });
    fresh = clusterctlComponents(rendered, BUNDLE_NAMESPACE);
    if (process.env['UPDATE_BUNDLE'] === '1') {
      writeFileSync(
        COMPONENTS,
        toYaml(fresh, [
          'capi-packet-manager for clusterctl: charts/capi-packet-manager rendered with clusterctl/values.yaml.',
          'Generated by apps/capi-packet-manager/test/chart.test.ts; do not edit. Rewrite after a chart change:',
          '  UPDATE_BUNDLE=1 npx jest -c apps/capi-packet-manager/jest.config.cjs chart',
          'Variables: PACKET_API_KEY (required), METAL_API_URL (default https://api.equinix.com/metal/v1).',
        ]),
      );
    }
    text = readFileSync(COMPONENTS, 'utf8');
  });

  it('equals a fresh render of the chart (UPDATE_BUNDLE=1 rewrites it)', () => {
    expect(loadAll(text)).toEqual(JSON.parse(JSON.stringify(fresh)));
  });

  it('has the variables clusterctl asks for: the token, and the API URL with its default', () => {
    expect(templateVariables(text).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'METAL_API_URL', default: 'https://api.equinix.com/metal/v1' },
      { name: 'PACKET_API_KEY' },
    ]);
  });

  it('follows the provider contract: one Namespace first, everything labelled, namespaced objects in it, the container "manager"', () => {
    expect(fresh[0]).toEqual({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: BUNDLE_NAMESPACE, labels: { 'cluster.x-k8s.io/provider': 'infrastructure-packet' } },
    });
    expect(fresh.filter((o) => o.kind === 'Namespace')).toHaveLength(1);
    expect(
      fresh.filter((o) => o.metadata.labels?.['cluster.x-k8s.io/provider'] !== 'infrastructure-packet'),
    ).toEqual([]);
    expect(fresh.filter((o) => JSON.stringify(o.metadata.labels).includes('Helm'))).toEqual([]);
    const namespaced = fresh.filter((o) => o.metadata.namespace !== undefined);
    expect(namespaced.map((o) => o.metadata.namespace)).toEqual(namespaced.map(() => BUNDLE_NAMESPACE));
    expect(
      fresh
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual([...CRD_NAMES].sort());
    const deployment = fresh.find((o) => o.kind === 'Deployment') as unknown as K8sObject;
    expect(deployment.spec!.template!.spec.containers.map((c) => c.name)).toEqual(['manager']);
    expect(manager(deployment.spec!.template!.spec).args).toContain('--leader-elect=true');
  });

  it('substituted as clusterctl does and applied: the manager, its Secret with the token, the default API URL', async () => {
    const bundleKey = `${KEY}-bundle`;
    const yaml = substituteVariables(text, (name) => (name === 'PACKET_API_KEY' ? bundleKey : undefined));
    await cp.kubectlOk(['apply', '-f', '-'], { input: yaml });
    const secret = JSON.parse(
      await cp.kubectlOk(['get', 'secret', `${NAME}-credentials`, '-n', BUNDLE_NAMESPACE, '-o', 'json']),
    ) as K8sObject;
    expect(secret.data).toEqual({ PACKET_API_KEY: Buffer.from(bundleKey).toString('base64') });
    const d = JSON.parse(
      await cp.kubectlOk(['get', 'deployment', NAME, '-n', BUNDLE_NAMESPACE, '-o', 'json']),
    ) as K8sObject;
    expect(manager(d.spec!.template!.spec).env).toContainEqual({
      name: 'METAL_API_URL',
      value: 'https://api.equinix.com/metal/v1',
    });
    expect(
      await chart.canI(serviceAccountUser(BUNDLE_NAMESPACE, NAME), [
        'patch',
        'packetmachines.infrastructure.cluster.x-k8s.io',
        '-n',
        WATCHED,
      ]),
    ).toBe(true);
  });
});
