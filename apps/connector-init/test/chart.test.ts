/**
 * The connector chart (charts/connector) against the real helm and a real kube-apiserver: lint,
 * render, server-side dry run, the schema's and the templates' refusals, the pod's promises (a native
 * sidecar, the API key and the ServiceAccount token in connector-init only, the hardened containers,
 * the memory handoff), and a real install: the ServiceAccount may read and write its one ConfigMap and
 * nothing else, an upgrade keeps what connector-init wrote there, and uninstall runs the pre-delete
 * hook Job and leaves nothing of the release.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChartBed,
  ControlPlane,
  resourceName,
  serviceAccountUser,
  until,
  type KubeObject,
} from '@knet/testing';

jest.setTimeout(120_000);

const NS = 'connector-chart';
/** Release "connector": every object is named after it (the release name holds the chart's). */
const NAME = 'connector';
const CLAIMS = `${NAME}-connectors`;
const SA = serviceAccountUser(NS, NAME);
const HANDOFF = '/run/knet/connector';
const SA_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The values the chart cannot render without. */
const REQUIRED = {
  twingate: { account: 'acme.twingate.com', networkName: 'Kubernetes', apiKey: 'tg-api-key-not-real' },
};

/** `values` merged over REQUIRED (one level deep per top-level key). */
function withRequired(values: Record<string, unknown> = {}): Record<string, unknown> {
  const twingate = { ...REQUIRED.twingate, ...((values['twingate'] as object | undefined) ?? {}) };
  return { ...values, twingate };
}

// --- the parts of the objects the tests look at ---------------------------------------------------
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  exec?: { command: string[] };
  periodSeconds?: number;
  failureThreshold?: number;
  initialDelaySeconds?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  restartPolicy?: string;
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  secret?: { secretName: string };
  projected?: {
    sources: {
      serviceAccountToken?: { path: string };
      secret?: { name: string };
      configMap?: { name: string };
      downwardAPI?: unknown;
    }[];
  };
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  restartPolicy?: string;
  securityContext?: Record<string, unknown> & { sysctls?: { name: string; value: string }[] };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  affinity?: Record<string, unknown>;
  topologySpreadConstraints?: unknown[];
}
interface PodTemplate {
  metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}
interface K8sObject extends KubeObject {
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    podManagementPolicy?: string;
    serviceName?: string;
    selector?: { matchLabels?: Record<string, string> };
    template?: PodTemplate;
    maxUnavailable?: number | string;
    schedule?: string;
    concurrencyPolicy?: string;
    backoffLimit?: number;
    activeDeadlineSeconds?: number;
    jobTemplate?: { spec: { template: PodTemplate } };
  };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  status?: Record<string, unknown>;
}

let cp: ControlPlane;
let chart: ChartBed;

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true });
  chart = new ChartBed(cp, { chart: 'connector', release: NAME, namespace: NS });
  await cp.kubectlOk(['create', 'namespace', NS]);
}, 240_000);

afterAll(async () => {
  await cp?.stop();
});

/** The chart rendered with `values` (REQUIRED added) and defaulted by the API server (dry run). */
async function objects(values: Record<string, unknown> = {}, args: string[] = []): Promise<K8sObject[]> {
  return chart.dryRun<K8sObject>(await chart.render(args, { values: withRequired(values) }));
}

let files = 0;
/** `values` as a values file for helm (JSON is YAML), in the control plane's temp dir. */
function valuesFile(values: Record<string, unknown>): string {
  const path = join(cp.dir, `connector-values-${++files}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
}

/** kubectl's names of objects, sorted (`statefulset.apps/connector`, …). */
const names = (list: KubeObject[]) => list.map(resourceName).sort();

const find = (list: K8sObject[], kind: string, name?: string): K8sObject => {
  const all = list.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (all.length !== 1)
    throw new Error(`${all.length} ${kind} ${name ?? ''} among ${names(list).join(', ')}`);
  return all[0]!;
};
const statefulSet = (list: K8sObject[]) => find(list, 'StatefulSet', NAME);
const podOf = (list: K8sObject[]): PodSpec => statefulSet(list).spec!.template!.spec;
const container = (list: Container[] | undefined, name: string): Container => {
  const c = (list ?? []).find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name} among ${(list ?? []).map((x) => x.name).join(', ')}`);
  return c;
};
const sidecar = (pod: PodSpec) => container(pod.initContainers, 'connector-init');
const connector = (pod: PodSpec) => container(pod.containers, 'connector');
/** A container's env with plain values; a `valueFrom` shows as `<from fieldRef metadata.name>` etc. */
function envOf(c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const f = e.valueFrom;
    out[e.name] =
      e.value ??
      (f?.fieldRef
        ? `<field ${f.fieldRef.fieldPath}>`
        : f?.secretKeyRef
          ? `<secret ${f.secretKeyRef.name}/${f.secretKeyRef.key}>`
          : f?.configMapKeyRef
            ? `<configmap ${f.configMapKeyRef.name}/${f.configMapKeyRef.key}>`
            : '');
  }
  return out;
}

/**
 * Every credential a pod's containers can read, as "<container>: <what>": env from a Secret, envFrom
 * (a whole Secret or ConfigMap), a mounted Secret or projected Secret/ServiceAccount token, and, when
 * the pod does not turn automounting off, the automounted token in every container.
 */
function credentials(pod: PodSpec): string[] {
  const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
  const found: string[] = [];
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) found.push(`${c.name}: env ${e.name} from secret ${ref.name}/${ref.key}`);
    }
    for (const e of c.envFrom ?? []) {
      if (e.secretRef) found.push(`${c.name}: envFrom secret ${e.secretRef.name}`);
      if (e.configMapRef) found.push(`${c.name}: envFrom configmap ${e.configMapRef.name}`);
    }
    for (const m of c.volumeMounts ?? []) {
      const v = volumes.get(m.name);
      if (v?.secret) found.push(`${c.name}: mount ${m.mountPath} of secret ${v.secret.secretName}`);
      for (const s of v?.projected?.sources ?? []) {
        if (s.serviceAccountToken) found.push(`${c.name}: mount ${m.mountPath} with a ServiceAccount token`);
        if (s.secret) found.push(`${c.name}: mount ${m.mountPath} of secret ${s.secret.name}`);
      }
    }
    if (pod.automountServiceAccountToken !== false) found.push(`${c.name}: automounted ServiceAccount token`);
  }
  return found.sort();
}

const HARDENED = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  privileged: false,
  capabilities: { drop: ['ALL'] },
};
const POD_SECURITY = {
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  fsGroup: 65532,
  seccompProfile: { type: 'RuntimeDefault' },
};
/** What the chart renders with replicas > 1 whatever the gc and hook values, as `names` lists it. */
const ALWAYS = [
  `configmap/${CLAIMS}`,
  `poddisruptionbudget.policy/${NAME}`,
  `role.rbac.authorization.k8s.io/${NAME}`,
  `rolebinding.rbac.authorization.k8s.io/${NAME}`,
  `secret/${NAME}-api-key`,
  `serviceaccount/${NAME}`,
  `statefulset.apps/${NAME}`,
];
/** The env of the connector container with the default values: no token, no API key. */
const CONNECTOR_ENV = {
  TWINGATE_URL: 'https://acme.twingate.com',
  TWINGATE_LOG_LEVEL: '3',
  TWINGATE_LABEL_DEPLOYED_BY: 'knet',
  TWINGATE_LABEL_HELM_CHART: 'connector-0.1.0',
};
/** The env of every connector-init command (provision, gc) with the default values. */
const INIT_ENV = {
  TWINGATE_API_KEY: `<secret ${NAME}-api-key/TWINGATE_API_KEY>`,
  TWINGATE_ACCOUNT: 'acme.twingate.com',
  TWINGATE_NETWORK: 'Kubernetes',
  CONNECTOR_RELEASE: NAME,
  POD_NAMESPACE: '<field metadata.namespace>',
  CONNECTOR_INIT_LOG_LEVEL: 'info',
};
/** What `credentials` finds when `container` alone holds the API key (from `secret`) and the token. */
const only = (container: string, secret = `${NAME}-api-key/TWINGATE_API_KEY`) => [
  `${container}: env TWINGATE_API_KEY from secret ${secret}`,
  `${container}: mount ${SA_TOKEN_PATH} with a ServiceAccount token`,
];
const SELECTOR = {
  'app.kubernetes.io/name': 'connector',
  'app.kubernetes.io/instance': NAME,
  'app.kubernetes.io/component': 'connector',
};

describe('helm lint --strict', () => {
  it('passes with the required values, and fails without them, naming them', async () => {
    const r = await chart.lint([
      '--set',
      'twingate.account=acme.twingate.com',
      '--set',
      'twingate.networkName=k8s',
    ]);
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.exitCode).toBe(0);
    const bare = await chart.lint();
    expect(bare.exitCode).not.toBe(0);
    expect(bare.stdout + bare.stderr).toContain('twingate: account is required');
    expect(bare.stdout + bare.stderr).toContain('twingate: networkName is required');
  });
});

describe('the default values, as the API server stores them (server-side dry run)', () => {
  let all: K8sObject[];
  beforeAll(async () => {
    all = await objects();
  });

  it('are these objects: no Service (connectors only dial out), the hook Job among them', () => {
    expect(names(all)).toEqual([...ALWAYS, `cronjob.batch/${NAME}-gc`, `job.batch/${NAME}-uninstall`].sort());
    expect(all.every((o) => o.metadata.namespace === NS)).toBe(true);
  });

  it('were not stored (a dry run)', async () => {
    expect((await cp.kubectl(['get', 'statefulset', NAME, '-n', NS])).exitCode).not.toBe(0);
  });

  it('a StatefulSet of 2 replicas started in parallel, selecting only its connector pods', () => {
    const sts = statefulSet(all);
    expect(sts.spec!.replicas).toBe(2);
    expect(sts.spec!.podManagementPolicy).toBe('Parallel');
    expect(sts.spec!.serviceName).toBe(NAME);
    expect(sts.spec!.selector).toEqual({ matchLabels: SELECTOR });
    expect(sts.spec!.template!.metadata.labels).toMatchObject(SELECTOR);
  });

  it('connector-init is a native sidecar (an init container with restartPolicy Always) that the connector waits for', () => {
    const pod = podOf(all);
    expect(pod.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([['connector-init', 'Always']]);
    const init = sidecar(pod);
    expect(init.image).toBe('ghcr.io/knet/connector-init:0.1.0');
    expect(init.args).toEqual(['provision']);
    expect(init.ports).toEqual([expect.objectContaining({ name: 'init-metrics', containerPort: 9090 })]);
    // The connector starts only once the startup probe passes: tokens handed over, within 10 minutes.
    expect(init.startupProbe).toMatchObject({
      httpGet: { path: '/readyz', port: 'init-metrics' },
      periodSeconds: 2,
      failureThreshold: 300,
    });
    expect(init.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'init-metrics' });
    expect(init.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'init-metrics' });
    expect(envOf(init)).toEqual({
      ...INIT_ENV,
      POD_NAME: '<field metadata.name>',
      CONNECTOR_HANDOFF_DIR: HANDOFF,
      CONNECTOR_REUSE_OFFLINE: 'true',
      CONNECTOR_REUSE_MIN_AGE: '10m',
      CONNECTOR_STATUS_NOTIFICATIONS: 'false',
      CONNECTOR_INIT_METRICS_PORT: '9090',
    });
  });

  it('the connector container runs the vendor image through the launch script, with no token in its env', () => {
    const c = connector(podOf(all));
    expect(c.image).toBe('twingate/connector:1');
    expect(c.command).toEqual([`${HANDOFF}/sh`, `${HANDOFF}/launch`]);
    expect(c.args).toEqual(['/connectord']);
    expect(envOf(c)).toEqual(CONNECTOR_ENV);
    expect(c.readinessProbe).toMatchObject({
      exec: { command: ['/connectorctl', 'health'] },
      periodSeconds: 5,
    });
    expect(c.livenessProbe).toMatchObject({
      exec: { command: ['/connectorctl', 'health'] },
      initialDelaySeconds: 5,
      periodSeconds: 5,
    });
    expect(c.ports).toBeUndefined();
  });

  it('the credential counter catches a deliberate leak into the connector container', () => {
    const pod = structuredClone(podOf(all));
    const leaked = connector(pod);
    leaked.envFrom = [{ secretRef: { name: `${NAME}-api-key` } }];
    leaked.env = [...(leaked.env ?? []), { name: 'K', valueFrom: { secretKeyRef: { name: 'x', key: 'k' } } }];
    leaked.volumeMounts = [...(leaked.volumeMounts ?? []), { name: 'kube-api-access', mountPath: '/t' }];
    expect(credentials(pod).filter((c) => c.startsWith('connector:'))).toEqual([
      'connector: env K from secret x/k',
      `connector: envFrom secret ${NAME}-api-key`,
      'connector: mount /t with a ServiceAccount token',
    ]);
    delete pod.automountServiceAccountToken;
    expect(credentials(pod)).toContain('connector: automounted ServiceAccount token');
  });

  it('the API key and the ServiceAccount token reach connector-init only', () => {
    const pod = podOf(all);
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe(NAME);
    expect(credentials(pod)).toEqual(only('connector-init'));
    // The token volume is what the kubelet would automount: token, cluster CA, namespace.
    const token = pod.volumes!.find((v) => v.name === 'kube-api-access')!;
    expect(token.projected!.sources.map((s) => Object.keys(s)[0])).toEqual([
      'serviceAccountToken',
      'configMap',
      'downwardAPI',
    ]);
    expect(sidecar(pod).volumeMounts).toContainEqual({
      name: 'kube-api-access',
      mountPath: SA_TOKEN_PATH,
      readOnly: true,
    });
  });

  it('the tokens go through a memory emptyDir that both containers mount; the connector gets /var/run/twingate', () => {
    const pod = podOf(all);
    const volumes = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v]));
    expect(volumes['handoff']).toEqual({ name: 'handoff', emptyDir: { medium: 'Memory', sizeLimit: '8Mi' } });
    expect(volumes['twingate-run']?.emptyDir).toBeDefined();
    expect(volumes['twingate-run']?.emptyDir?.medium).toBeUndefined();
    expect(sidecar(pod).volumeMounts!.map((m) => [m.name, m.mountPath])).toEqual([
      ['handoff', HANDOFF],
      ['kube-api-access', SA_TOKEN_PATH],
    ]);
    expect(connector(pod).volumeMounts!.map((m) => [m.name, m.mountPath, m.readOnly ?? false])).toEqual([
      ['handoff', HANDOFF, true], // the connector only reads the FIFO: it cannot alter sh or launch
      ['twingate-run', '/var/run/twingate', false],
    ]);
  });

  it('both containers run hardened, as 65532 with the RuntimeDefault seccomp profile', () => {
    const pod = podOf(all);
    expect(pod.securityContext).toEqual(POD_SECURITY);
    expect(sidecar(pod).securityContext).toEqual(HARDENED);
    expect(connector(pod).securityContext).toEqual(HARDENED);
  });

  it('the ConfigMap of claims has no data (connector-init writes it) and says so', () => {
    const cm = find(all, 'ConfigMap', CLAIMS);
    expect(cm.data).toBeUndefined();
    expect(cm.metadata.annotations?.['connector.knet.io/note']).toContain('renders no data');
  });

  it('the Role grants get, update and patch of that one ConfigMap and nothing else', () => {
    expect(find(all, 'Role', NAME).rules).toEqual([
      {
        apiGroups: [''],
        resources: ['configmaps'],
        resourceNames: [CLAIMS],
        verbs: ['get', 'update', 'patch'],
      },
    ]);
  });

  it('soft anti-affinity: distinct nodes preferred (weight 100) among this release’s connector pods only', () => {
    expect(podOf(all).affinity).toEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              topologyKey: 'kubernetes.io/hostname',
              labelSelector: { matchLabels: SELECTOR },
            },
          },
        ],
      },
    });
  });

  it('a PodDisruptionBudget of maxUnavailable 1 over the StatefulSet’s pods', () => {
    const pdb = find(all, 'PodDisruptionBudget', NAME);
    expect(pdb.spec!.maxUnavailable).toBe(1);
    expect(pdb.spec!.selector).toEqual(statefulSet(all).spec!.selector);
  });

  it('the gc CronJob and the uninstall hook Job run connector-init gc with the same ServiceAccount, token volume and hardening', () => {
    const cron = find(all, 'CronJob', `${NAME}-gc`);
    expect(cron.spec!.schedule).toBe('17 * * * *');
    expect(cron.spec!.concurrencyPolicy).toBe('Forbid');
    const hook = find(all, 'Job', `${NAME}-uninstall`);
    expect(hook.metadata.annotations).toMatchObject({
      'helm.sh/hook': 'pre-delete',
      'helm.sh/hook-delete-policy': 'before-hook-creation,hook-succeeded',
    });
    expect(hook.spec!.activeDeadlineSeconds).toBe(240);
    expect(hook.spec!.backoffLimit).toBe(2);
    for (const [template, replicas] of [
      [cron.spec!.jobTemplate!.spec.template, '2'],
      [hook.spec!.template!, '0'],
    ] as const) {
      const pod = template.spec;
      expect(pod.containers.map((c) => c.name)).toEqual(['gc']);
      expect(pod.initContainers).toBeUndefined();
      const gc = pod.containers[0]!;
      expect(gc.args).toEqual(['gc']);
      expect(envOf(gc)).toEqual({
        ...INIT_ENV,
        CONNECTOR_REPLICAS: replicas,
        CONNECTOR_DELETE_ADOPTED: 'false',
      });
      expect(pod.serviceAccountName).toBe(NAME);
      expect(credentials(pod)).toEqual(only('gc'));
      expect(pod.securityContext).toEqual(POD_SECURITY);
      expect(gc.securityContext).toEqual(HARDENED);
      expect(pod.restartPolicy).toBe('Never');
      // Not one of the StatefulSet's pods: neither in its budget nor in its anti-affinity.
      expect(template.metadata.labels?.['app.kubernetes.io/component']).toBe('gc');
    }
  });
});

describe('values: rendered as documented, accepted by the API server', () => {
  it('the PodDisruptionBudget only with replicas > 1 (and enabled)', async () => {
    const count = async (values: Record<string, unknown>) =>
      (await objects(values)).filter((o) => o.kind === 'PodDisruptionBudget').length;
    expect(await count({ connector: { replicas: 1 } })).toBe(0);
    expect(await count({ connector: { replicas: 0 } })).toBe(0);
    expect(await count({ connector: { replicas: 3 }, podDisruptionBudget: { enabled: false } })).toBe(0);
    const three = await objects({ connector: { replicas: 3 }, podDisruptionBudget: { maxUnavailable: 2 } });
    expect(find(three, 'PodDisruptionBudget', NAME).spec!.maxUnavailable).toBe(2);
    expect(statefulSet(three).spec!.replicas).toBe(3);
    // The CronJob follows the replicas: it deletes the connectors of ordinals from 3 up.
    const gc = find(three, 'CronJob', `${NAME}-gc`).spec!.jobTemplate!.spec.template.spec.containers[0]!;
    expect(envOf(gc)['CONNECTOR_REPLICAS']).toBe('3');
  });

  it('affinityPreset hard requires distinct nodes, none sets no affinity, a given affinity replaces the preset', async () => {
    expect(podOf(await objects({ affinityPreset: 'hard' })).affinity).toEqual({
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: SELECTOR } },
        ],
      },
    });
    expect(podOf(await objects({ affinityPreset: 'none' })).affinity).toBeUndefined();
    const affinity = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'edge', operator: 'In', values: ['true'] }] }],
        },
      },
    };
    expect(podOf(await objects({ affinityPreset: 'hard', affinity })).affinity).toEqual(affinity);
  });

  it('topologySpreadConstraints are passed through as given', async () => {
    const topologySpreadConstraints = [
      {
        maxSkew: 1,
        topologyKey: 'topology.kubernetes.io/zone',
        whenUnsatisfiable: 'ScheduleAnyway',
        labelSelector: { matchLabels: SELECTOR },
      },
    ];
    const pod = podOf(await objects({ topologySpreadConstraints }));
    expect(pod.topologySpreadConstraints).toEqual(topologySpreadConstraints);
    expect(podOf(await objects()).topologySpreadConstraints).toBeUndefined();
  });

  it('connector.logLevel maps to TWINGATE_LOG_LEVEL 3, 4, 6, 7 (as the seed chart)', async () => {
    const levels: Record<string, string> = {};
    for (const logLevel of ['error', 'warning', 'info', 'debug']) {
      const yaml = await chart.render(['--show-only', 'templates/statefulset.yaml'], {
        values: withRequired({ connector: { logLevel } }),
      });
      levels[logLevel] = envOf(connector(podOf(await chart.dryRun<K8sObject>(yaml))))['TWINGATE_LOG_LEVEL']!;
    }
    expect(levels).toEqual({ error: '3', warning: '4', info: '6', debug: '7' });
    await expect(
      chart.render([], { values: withRequired({ connector: { logLevel: 'verbose' } }) }),
    ).rejects.toThrow('connector.logLevel must be one of the following');
  });

  it('twingate.existingSecret: the pods read the key from it, and the chart renders no Secret', async () => {
    const all = await objects({
      twingate: { apiKey: '', existingSecret: 'tg-admin', existingSecretKey: 'key' },
    });
    expect(all.filter((o) => o.kind === 'Secret')).toEqual([]);
    expect(envOf(sidecar(podOf(all)))['TWINGATE_API_KEY']).toBe('<secret tg-admin/key>');
    const gc = find(all, 'CronJob', `${NAME}-gc`).spec!.jobTemplate!.spec.template.spec.containers[0]!;
    expect(envOf(gc)['TWINGATE_API_KEY']).toBe('<secret tg-admin/key>');
    expect(credentials(podOf(all))).toEqual(only('connector-init', 'tg-admin/key'));
  });

  it('init.extraEnv: appended to connector-init’s env in the sidecar, the gc CronJob and the hook Job, never the connector’s', async () => {
    const extraEnv = [
      { name: 'TWINGATE_API_URL', value: 'https://twingate-api.example.internal' },
      { name: 'NODE_EXTRA_CA_CERTS', value: `${SA_TOKEN_PATH}/ca.crt` },
      { name: 'FROM_FIELD', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    ];
    const all = await objects({ init: { extraEnv } });
    const extra = {
      TWINGATE_API_URL: 'https://twingate-api.example.internal',
      NODE_EXTRA_CA_CERTS: `${SA_TOKEN_PATH}/ca.crt`,
      FROM_FIELD: '<field spec.nodeName>',
    };
    const envNames = (c: Container) => (c.env ?? []).map((e) => e.name);
    const pod = podOf(all);
    const cron = find(all, 'CronJob', `${NAME}-gc`).spec!.jobTemplate!.spec.template.spec.containers[0]!;
    const hook = find(all, 'Job', `${NAME}-uninstall`).spec!.template!.spec.containers[0]!;
    for (const c of [sidecar(pod), cron, hook]) {
      expect(envOf(c)).toMatchObject(extra);
      // After the chart's own variables, in the order given.
      expect(envNames(c).slice(-3)).toEqual(Object.keys(extra));
    }
    expect(envOf(connector(pod))).toEqual(CONNECTOR_ENV);
    // Defaults: nothing more than the chart's own.
    expect(envOf(sidecar(podOf(await objects())))).not.toHaveProperty('TWINGATE_API_URL');
  });

  it('every option on: an https:// account, metrics, ICMP, DNS, analytics, env, a name prefix, no gc and no hook', async () => {
    const all = await objects({
      twingate: { account: 'https://acme.twingate.com/' },
      connector: {
        replicas: 3,
        entrypoint: '/opt/connectord',
        image: { tag: 1, pullPolicy: 'Always' },
        logAnalytics: 'v2',
        dns: '10.0.0.10',
        env: { TWINGATE_LABEL_SITE: 'edge', EXTRA: 42 },
        metrics: { enabled: true },
        probes: { enabled: false },
        icmpSupport: true,
      },
      init: {
        namePrefix: 'edge',
        reuseOffline: false,
        reuseMinAge: '1h',
        statusNotifications: true,
        logLevel: 'debug',
      },
      gc: { enabled: false },
      uninstallHook: { enabled: false },
      commonLabels: { team: 'net' },
      podLabels: { tier: 'edge' },
      podAnnotations: { note: 'x' },
      priorityClassName: 'system-cluster-critical',
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
      imagePullSecrets: [{ name: 'regcred' }],
      podDnsPolicy: 'None',
      podDnsConfig: { nameservers: ['10.0.0.10'] },
    });
    expect(names(all)).toEqual(ALWAYS);
    expect(all.every((o) => o.metadata.labels?.['team'] === 'net')).toBe(true);
    const template = statefulSet(all).spec!.template!;
    expect(template.metadata.labels).toMatchObject({ ...SELECTOR, team: 'net', tier: 'edge' });
    expect(template.metadata.annotations).toMatchObject({
      note: 'x',
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9999',
    });
    const pod = template.spec;
    expect(pod.securityContext?.sysctls).toEqual([
      { name: 'net.ipv4.ping_group_range', value: '0 2147483647' },
    ]);
    const c = connector(pod);
    expect(c.image).toBe('twingate/connector:1');
    expect(c.args).toEqual(['/opt/connectord']);
    expect(envOf(c)).toEqual({
      ...CONNECTOR_ENV,
      TWINGATE_DNS: '10.0.0.10',
      TWINGATE_LOG_ANALYTICS: 'v2',
      TWINGATE_METRICS_PORT: '9999',
      TWINGATE_LABEL_SITE: 'edge',
      EXTRA: '42',
    });
    expect(c.ports).toEqual([expect.objectContaining({ name: 'metrics', containerPort: 9999 })]);
    expect(c.readinessProbe).toBeUndefined();
    expect(c.livenessProbe).toBeUndefined();
    expect(envOf(sidecar(pod))).toMatchObject({
      TWINGATE_ACCOUNT: 'acme.twingate.com',
      CONNECTOR_NAME_PREFIX: 'edge',
      CONNECTOR_REUSE_OFFLINE: 'false',
      CONNECTOR_REUSE_MIN_AGE: '1h',
      CONNECTOR_STATUS_NOTIFICATIONS: 'true',
      CONNECTOR_INIT_LOG_LEVEL: 'debug',
    });
    // Still only connector-init holds credentials.
    expect(credentials(pod).every((c) => c.startsWith('connector-init: '))).toBe(true);
  });
});

describe('values are checked before anything is rendered', () => {
  /** helm template's stderr for `values` (without REQUIRED), which must fail. */
  const refusal = async (values: Record<string, unknown>): Promise<string> => {
    const r = await cp.helm(['template', NAME, chart.chart, '-n', NS, '-f', valuesFile(values)]);
    expect(r.exitCode).not.toBe(0);
    return r.stderr;
  };

  it('no apiKey and no existingSecret: one line that says what to give', async () => {
    const stderr = await refusal({ twingate: { account: 'acme.twingate.com', networkName: 'k8s' } });
    const lines = stderr.split('\n').filter((l) => l.includes('twingate.'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      'twingate.apiKey or twingate.existingSecret is required: a Twingate API key with Read, Write & Provision permissions (--set twingate.apiKey=<key>)',
    );
  });

  it('both apiKey and existingSecret', async () => {
    expect(await refusal(withRequired({ twingate: { existingSecret: 'tg' } }))).toContain(
      'give twingate.apiKey or twingate.existingSecret, not both',
    );
  });

  it('the schema: a missing or empty networkName, a bad preset, an unknown key, a selector label', async () => {
    expect(await refusal({ twingate: { account: 'acme.twingate.com', apiKey: 'k' } })).toContain(
      'twingate: networkName is required',
    );
    expect(await refusal(withRequired({ twingate: { networkName: '' } }))).toContain('twingate.networkName');
    expect(await refusal(withRequired({ affinityPreset: 'always' }))).toContain(
      'affinityPreset must be one of the following: "soft", "hard", "none"',
    );
    expect(await refusal(withRequired({ connector: { replica: 3 } }))).toContain(
      'Additional property replica is not allowed',
    );
    expect(await refusal(withRequired({ init: { extraEnv: [{ value: 'x' }] } }))).toContain(
      'init.extraEnv.0: name is required',
    );
    expect(await refusal(withRequired({ twingate: { account: 'acme twingate' } }))).toContain(
      'twingate.account',
    );
    expect(await refusal(withRequired({ commonLabels: { 'app.kubernetes.io/instance': 'x' } }))).toContain(
      'commonLabels',
    );
  });

  it('the two metrics ports may not be the same (one pod, one network namespace)', async () => {
    expect(await refusal(withRequired({ connector: { metrics: { enabled: true, port: 9090 } } }))).toContain(
      'connector.metrics.port and init.metricsPort are both 9090',
    );
  });
});

/**
 * Reports Job `name` complete, as the Job controller does when its pod has succeeded (there is no
 * node here to run it): SuccessCriteriaMet and Complete, one success, nothing active, the start
 * time the controller set kept (the API server refuses a completion before it).
 */
async function completeJob(name: string) {
  const job = JSON.parse(await cp.kubectlOk(['get', 'job', name, '-n', NS, '-o', 'json'])) as K8sObject;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const condition = (type: string) => ({ type, status: 'True', lastProbeTime: now, lastTransitionTime: now });
  const status = {
    startTime: (job.status?.['startTime'] as string | undefined) ?? now,
    completionTime: now,
    active: 0,
    ready: 0,
    terminating: 0,
    succeeded: 1,
    conditions: [condition('SuccessCriteriaMet'), condition('Complete')],
  };
  return cp.kubectl([
    'patch',
    'job',
    name,
    '-n',
    NS,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status }),
  ]);
}

describe('a real install, upgrade and uninstall', () => {
  const helmOk = async (args: string[]) => {
    const r = await cp.helm(args);
    if (r.exitCode !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  const getClaims = async () =>
    JSON.parse(await cp.kubectlOk(['get', 'configmap', CLAIMS, '-n', NS, '-o', 'json'])) as K8sObject;
  let installed: string[] = [];

  beforeAll(async () => {
    const out = await helmOk(['install', NAME, chart.chart, '-n', NS, '-f', valuesFile(REQUIRED)]);
    expect(out).toContain(
      `kubectl -n ${NS} exec ${NAME}-0 -c connector-init -- /nodejs/bin/node /app/main.js status`,
    );
    installed = (await helmOk(['get', 'manifest', NAME, '-n', NS]))
      .split('\n')
      .filter((l) => l.startsWith('# Source: '))
      .map((l) => l.slice('# Source: '.length));
  });

  it('installs the templates of the defaults; the hook Job is not part of the manifest', () => {
    expect([...new Set(installed)].sort()).toEqual([
      'connector/templates/configmap.yaml',
      'connector/templates/cronjob-gc.yaml',
      'connector/templates/poddisruptionbudget.yaml',
      'connector/templates/rbac.yaml',
      'connector/templates/secret.yaml',
      'connector/templates/serviceaccount.yaml',
      'connector/templates/statefulset.yaml',
    ]);
  });

  it('the StatefulSet controller creates both pods at once (Parallel: neither is ready, there is no node), and as admitted only connector-init holds credentials', async () => {
    const pods = await until(
      'the pods connector-0 and connector-1',
      async () => {
        const list = JSON.parse(
          await cp.kubectlOk([
            'get',
            'pods',
            '-n',
            NS,
            '-l',
            'app.kubernetes.io/component=connector',
            '-o',
            'json',
          ]),
        ) as { items: (K8sObject & { spec: PodSpec })[] };
        return list.items.length === 2 ? list.items : undefined;
      },
      30_000,
    );
    expect(pods.map((p) => p.metadata.name).sort()).toEqual([`${NAME}-0`, `${NAME}-1`]);
    for (const pod of pods) {
      // The ServiceAccount admission plugin added no token volume of its own.
      expect(credentials(pod.spec)).toEqual(only('connector-init'));
      expect(pod.spec.volumes!.map((v) => v.name).sort()).toEqual([
        'handoff',
        'kube-api-access',
        'twingate-run',
      ]);
    }
  });

  it('the ServiceAccount may get, update and patch its ConfigMap and nothing else', async () => {
    const allowed = [
      ['get', `configmaps/${CLAIMS}`],
      ['update', `configmaps/${CLAIMS}`],
      ['patch', `configmaps/${CLAIMS}`],
    ];
    const refused = [
      ['get', 'configmaps/other'],
      ['update', 'configmaps/other'],
      ['list', 'configmaps'],
      ['watch', 'configmaps'],
      ['create', 'configmaps'],
      ['delete', `configmaps/${CLAIMS}`],
      ['get', 'secrets'],
      ['list', 'secrets'],
      ['get', `secrets/${NAME}-api-key`],
      ['list', 'pods'],
      ['get', `pods/${NAME}-0`],
      ['create', 'pods/exec'],
      ['get', `statefulsets.apps/${NAME}`],
      ['create', 'serviceaccounts/token'],
    ];
    const answers = async (list: string[][]) =>
      Promise.all(list.map(async (a) => [a.join(' '), await chart.canI(SA, [...a, '-n', NS])]));
    expect(await answers(allowed)).toEqual(allowed.map((a) => [a.join(' '), true]));
    expect(await answers(refused)).toEqual(refused.map((a) => [a.join(' '), false]));
    expect(await chart.canI(SA, ['get', 'configmaps', '--all-namespaces'])).toBe(false);
  });

  it('connector-init’s writes, as the ServiceAccount (update and patch), survive helm upgrade', async () => {
    const asSa = `--as=${SA}`;
    // update (PUT with the resourceVersion, as connector-init does): get, add data, replace.
    const cm = await getClaims();
    cm.data = { '0': '{"id":"Q29ubmVjdG9yOjE=","name":"connector-0"}' };
    await cp.kubectlOk(['replace', '-n', NS, asSa, '-f', '-'], { input: JSON.stringify(cm) });
    await cp.kubectlOk([
      'patch',
      'configmap',
      CLAIMS,
      '-n',
      NS,
      asSa,
      '--type=merge',
      '-p',
      '{"data":{"1":"{\\"id\\":\\"Q29ubmVjdG9yOjI=\\",\\"name\\":\\"connector-1\\"}"}}',
    ]);
    const written = (await getClaims()).data;
    expect(Object.keys(written ?? {}).sort()).toEqual(['0', '1']);

    await helmOk(['upgrade', NAME, chart.chart, '-n', NS, '--reuse-values', '--set', 'connector.replicas=3']);
    await helmOk([
      'upgrade',
      NAME,
      chart.chart,
      '-n',
      NS,
      '--reuse-values',
      '--set',
      'connector.logLevel=debug',
    ]);
    const after = await getClaims();
    expect(after.data).toEqual(written);
    expect(after.metadata.annotations?.['connector.knet.io/note']).toContain('renders no data');
    const sts = JSON.parse(
      await cp.kubectlOk(['get', 'statefulset', NAME, '-n', NS, '-o', 'json']),
    ) as K8sObject;
    expect(sts.spec!.replicas).toBe(3);
    expect(envOf(connector(sts.spec!.template!.spec))['TWINGATE_LOG_LEVEL']).toBe('7');
    const status = JSON.parse(await helmOk(['status', NAME, '-n', NS, '-o', 'json'])) as {
      version: number;
      info: { status: string };
    };
    expect([status.version, status.info.status]).toEqual([3, 'deployed']);
  });

  it('helm uninstall runs the pre-delete Job (connector-init gc, no replica left) and then leaves nothing of the release', async () => {
    // No node runs the Job here: the test plays its pod's part and reports it complete, as the Job
    // controller would, once it has checked what helm created.
    const uninstall = cp.helm(['uninstall', NAME, '-n', NS, '--timeout', '45s']);
    uninstall.catch(() => undefined); // awaited below, also when a step before fails
    const job = await until(
      'the uninstall hook Job',
      async () => {
        const r = await cp.kubectl(['get', 'job', `${NAME}-uninstall`, '-n', NS, '-o', 'json']);
        return r.exitCode === 0 ? (JSON.parse(r.stdout) as K8sObject) : undefined;
      },
      30_000,
    );
    const pod = job.spec!.template!.spec;
    expect(envOf(pod.containers[0]!)).toMatchObject({ CONNECTOR_REPLICAS: '0', CONNECTOR_RELEASE: NAME });
    expect(pod.containers[0]!.args).toEqual(['gc']);
    // The objects it needs are still there while it runs.
    for (const what of [
      `configmap/${CLAIMS}`,
      `secret/${NAME}-api-key`,
      `serviceaccount/${NAME}`,
      `role/${NAME}`,
    ])
      expect([what, (await cp.kubectl(['get', what, '-n', NS])).exitCode]).toEqual([what, 0]);
    let refusal = '';
    await until(
      () => `the hook Job reported complete (last refusal: ${refusal})`,
      async () => {
        const r = await completeJob(`${NAME}-uninstall`);
        refusal = r.stderr.trim();
        return r.exitCode === 0;
      },
      30_000,
    );
    const r = await uninstall;
    expect([r.exitCode, r.stderr.trim()]).toEqual([0, '']);
    expect(r.stdout).toContain(`release "${NAME}" uninstalled`);

    // Nothing of it is left: the objects, the pods the StatefulSet controller made (garbage
    // collected), the succeeded hook Job, helm's release Secrets.
    let left = '';
    await until(
      () => `nothing of the release left in ${NS}; left: ${left}`,
      async () => {
        left = (
          await cp.kubectlOk([
            'get',
            'statefulsets,cronjobs,jobs,pods,poddisruptionbudgets,configmaps,secrets,serviceaccounts,roles,rolebindings,controllerrevisions',
            '-n',
            NS,
            '-o',
            'name',
          ])
        )
          .split('\n')
          .filter((n) => n !== '' && n !== 'configmap/kube-root-ca.crt' && n !== 'serviceaccount/default')
          .join(', ');
        return left === '';
      },
      30_000,
    );
    expect((await cp.helm(['status', NAME, '-n', NS])).exitCode).not.toBe(0);
  });
});
