/**
 * The kilo-agent chart (charts/kilo-agent) against the real helm and a real kube-apiserver: lint,
 * render and server-side dry run of the defaults and of every option (args, env, securityContext,
 * volumes, probes, the wireguard-go sidecar, extraDeploy, extraEnvVars(CM/Secret), the affinity
 * presets), the rendered args parsed by kilo-agent's own options, the schema's and templates'
 * refusals, the README's parameter table against the values and the schema, the Peer CRD (Kilo's
 * validation plus a status subresource), and a real install: what the ServiceAccount may do
 * (`kubectl auth can-i`), and the Peer status written as the agent.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptions } from '@knet/runtime';
import {
  ChartBed,
  ControlPlane,
  resourceName,
  serviceAccountUser,
  workspaceRoot,
  type KubeObject,
} from '@knet/testing';
import { program } from '../src/options';

jest.setTimeout(120_000);

const NS = 'kilo-agent-chart';
/** Release "kilo-agent": every object is named after it (the release name holds the chart's). */
const NAME = 'kilo-agent';
const GLOBAL_NAME = `${NS}-${NAME}`;
const SA = serviceAccountUser(NS, NAME);
const CHART_DIR = join(workspaceRoot(), 'charts', 'kilo-agent');
const SA_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

// --- the parts of the objects the tests look at ---------------------------------------------------
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  command?: string[];
  args?: string[];
  restartPolicy?: string;
  env?: EnvVar[];
  envFrom?: { secretRef?: { name: string }; configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number; hostPort?: number; protocol?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  securityContext?: Record<string, unknown>;
  resources?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  emptyDir?: { medium?: string; sizeLimit?: string };
  configMap?: { name: string };
  projected?: { sources: Record<string, unknown>[] };
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  dnsPolicy?: string;
  priorityClassName?: string;
  schedulerName?: string;
  imagePullSecrets?: { name: string }[];
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
  affinity?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
}
interface K8sObject extends KubeObject {
  data?: Record<string, string>;
  spec?: {
    selector?: { matchLabels?: Record<string, string> };
    updateStrategy?: Record<string, unknown>;
    template?: {
      metadata: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  subjects?: { kind: string; name: string; namespace?: string }[];
  status?: Record<string, unknown>;
}

let cp: ControlPlane;
let chart: ChartBed;

beforeAll(async () => {
  cp = await ControlPlane.start();
  chart = new ChartBed(cp, { chart: 'kilo-agent', release: NAME, namespace: NS });
  await cp.kubectlOk(['create', 'namespace', NS]);
}, 240_000);

afterAll(async () => {
  await cp?.stop();
});

/** The chart rendered with `values` and defaulted by the API server (server-side dry run). */
async function objects(values: Record<string, unknown> = {}): Promise<K8sObject[]> {
  return chart.dryRun<K8sObject>(await chart.render([], { values }));
}

let files = 0;
/** `values` as a values file for helm (JSON is YAML), in the control plane's temp dir. */
function valuesFile(values: unknown): string {
  const path = join(cp.dir, `kilo-agent-values-${++files}.json`);
  writeFileSync(path, JSON.stringify(values));
  return path;
}

const names = (list: KubeObject[]) => list.map(resourceName).sort();
const find = (list: K8sObject[], kind: string, name: string = NAME): K8sObject => {
  const all = list.filter((o) => o.kind === kind && o.metadata.name === name);
  if (all.length !== 1) throw new Error(`${all.length} ${kind} ${name} among ${names(list).join(', ')}`);
  return all[0]!;
};
const daemonSet = (list: K8sObject[]) => find(list, 'DaemonSet');
const podOf = (list: K8sObject[]): PodSpec => daemonSet(list).spec!.template!.spec;
const container = (list: Container[] | undefined, name: string): Container => {
  const c = (list ?? []).find((x) => x.name === name);
  if (!c) throw new Error(`no container ${name} among ${(list ?? []).map((x) => x.name).join(', ')}`);
  return c;
};
const agent = (pod: PodSpec) => container(pod.containers, 'kilo-agent');
const mounts = (c: Container) =>
  Object.fromEntries(
    (c.volumeMounts ?? []).map((m) => [m.mountPath, `${m.name}${m.readOnly ? ' (ro)' : ''}`]),
  );
const volume = (pod: PodSpec, name: string): Volume => {
  const v = (pod.volumes ?? []).find((x) => x.name === name);
  if (!v) throw new Error(`no volume ${name} among ${(pod.volumes ?? []).map((x) => x.name).join(', ')}`);
  return v;
};

/** The agent's args as the kubelet runs them: $(NODE_NAME) expanded from the downward API. */
const expanded = (c: Container, node: string) =>
  (c.args ?? []).map((a) => a.replaceAll('$(NODE_NAME)', node));

/** kilo-agent's own options parser on the rendered args (env: the container's plain env and NODE_NAME). */
function agentOptions(c: Container, node = 'node-a') {
  const env: Record<string, string> = { NODE_NAME: node };
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return parseOptions(program, ['node', 'kilo-agent', ...expanded(c, node)], env);
}

const SELECTOR = { 'app.kubernetes.io/name': 'kilo-agent', 'app.kubernetes.io/instance': NAME };
const DEFAULT_ARGS = [
  '--hostname=$(NODE_NAME)',
  '--cni=false',
  '--mesh-granularity=location',
  '--listen=:1107',
];
const HARDENED_ROOT = {
  runAsUser: 0,
  runAsGroup: 0,
  runAsNonRoot: false,
  privileged: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  seccompProfile: { type: 'RuntimeDefault' },
};
/** kilo-agent's mounts with the defaults, by path. */
const AGENT_MOUNTS = {
  '/var/lib/kilo': 'kilo-dir',
  '/lib/modules': 'lib-modules (ro)',
  '/run/xtables.lock': 'xtables-lock',
  '/tmp': 'tmp',
  [SA_TOKEN_PATH]: 'kube-api-access (ro)',
};

describe('helm lint --strict', () => {
  it('passes with the defaults and with every values file in ci/', async () => {
    expect(await chart.lintAll()).toEqual([]);
  });
});

describe('the default values, as the API server stores them (server-side dry run)', () => {
  let all: K8sObject[];
  let pod: PodSpec;
  beforeAll(async () => {
    all = await objects();
    pod = podOf(all);
  });

  it('are these objects: no ConfigMap without configuration, the RBAC cluster-wide under <namespace>-<fullname>', () => {
    expect(names(all)).toEqual([
      `clusterrole.rbac.authorization.k8s.io/${GLOBAL_NAME}`,
      `clusterrolebinding.rbac.authorization.k8s.io/${GLOBAL_NAME}`,
      `daemonset.apps/${NAME}`,
      `serviceaccount/${NAME}`,
    ]);
  });

  it('were not stored (a dry run)', async () => {
    expect((await cp.kubectl(['get', 'daemonset', NAME, '-n', NS])).exitCode).not.toBe(0);
  });

  it('a DaemonSet on the host network of every Linux node, every taint tolerated, system-node-critical, one node at a time', () => {
    const ds = daemonSet(all);
    expect(ds.spec!.selector).toEqual({ matchLabels: SELECTOR });
    expect(ds.spec!.template!.metadata.labels).toMatchObject(SELECTOR);
    expect(ds.spec!.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.affinity).toBeUndefined();
    expect(pod.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.initContainers).toBeUndefined();
    expect(pod.containers.map((c) => c.name)).toEqual(['kilo-agent']);
  });

  it('kilo-agent runs the appVersion image with the minimal flags and NODE_NAME from the downward API', () => {
    const c = agent(pod);
    expect(c.image).toBe('ghcr.io/knet/kilo-agent:0.1.0');
    expect(c.command).toBeUndefined();
    expect(c.args).toEqual(DEFAULT_ARGS);
    expect(c.env).toEqual([
      { name: 'NODE_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.nodeName' } } },
    ]);
    expect(c.envFrom).toBeUndefined();
  });

  it("kilo-agent's own options parser accepts the rendered args: Kilo's defaults but --cni and the listen port", () => {
    const opts = agentOptions(agent(pod), 'node-a');
    expect(opts).toMatchObject({
      hostname: 'node-a',
      cni: false,
      meshGranularity: 'location',
      listen: { host: '0.0.0.0', port: 1107 },
      createInterface: true,
      interface: 'kilo0',
      subnet: '10.4.0.0/16',
      port: 51820,
      encapsulate: 'always',
      logLevel: 'info',
    });
  });

  it('the container: not privileged, root with NET_ADMIN and NET_RAW only, read-only root filesystem', () => {
    expect(agent(pod).securityContext).toEqual({
      ...HARDENED_ROOT,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    });
    expect(agent(pod).resources).toEqual({
      requests: { cpu: '25m', memory: '96Mi' },
      limits: { memory: '256Mi' },
    });
  });

  it('volumes: the key dir, /lib/modules read-only, the xtables lock, /tmp, and the token for kilo-agent only', () => {
    expect(mounts(agent(pod))).toEqual(AGENT_MOUNTS);
    expect(volume(pod, 'kilo-dir').hostPath).toEqual({ path: '/var/lib/kilo', type: 'DirectoryOrCreate' });
    expect(volume(pod, 'lib-modules').hostPath).toEqual({ path: '/lib/modules', type: '' });
    expect(volume(pod, 'xtables-lock').hostPath).toEqual({ path: '/run/xtables.lock', type: 'FileOrCreate' });
    expect(volume(pod, 'tmp').emptyDir).toEqual({ sizeLimit: '16Mi' });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.serviceAccountName).toBe(NAME);
    expect(volume(pod, 'kube-api-access').projected!.sources.map((s) => Object.keys(s)[0])).toEqual([
      'serviceAccountToken',
      'configMap',
      'downwardAPI',
    ]);
    expect(pod.volumes!.map((v) => v.name)).toEqual([
      'kilo-dir',
      'lib-modules',
      'xtables-lock',
      'tmp',
      'kube-api-access',
    ]);
  });

  it('probes: GET /health on port 1107, a port of the node (host network)', () => {
    const c = agent(pod);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 1107, protocol: 'TCP' }]);
    expect(c.livenessProbe).toEqual({
      httpGet: { path: '/health', port: 'metrics', scheme: 'HTTP' },
      initialDelaySeconds: 10,
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 6,
      successThreshold: 1,
    });
    expect(c.readinessProbe).toEqual({
      httpGet: { path: '/health', port: 'metrics', scheme: 'HTTP' },
      initialDelaySeconds: 5,
      periodSeconds: 10,
      timeoutSeconds: 5,
      failureThreshold: 3,
      successThreshold: 1,
    });
  });

  it('the ClusterRole: nodes get/list/watch/patch, peers list/watch, peers/status update/patch, events create/patch; nothing else', () => {
    expect(find(all, 'ClusterRole', GLOBAL_NAME).rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
      { apiGroups: ['kilo.squat.ai'], resources: ['peers'], verbs: ['list', 'watch'] },
      { apiGroups: ['kilo.squat.ai'], resources: ['peers/status'], verbs: ['update', 'patch'] },
      { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    expect(find(all, 'ClusterRoleBinding', GLOBAL_NAME).subjects).toEqual([
      { kind: 'ServiceAccount', name: NAME, namespace: NS },
    ]);
  });
});

describe('options', () => {
  it('wireguard-go on: a native sidecar with NET_ADMIN and /dev/net/tun; the agent with --create-interface=false and the shared /var/run/wireguard', async () => {
    const pod = podOf(await objects({ wireguardGo: { enabled: true, interface: 'wg-kilo' } }));
    const wg = container(pod.initContainers, 'wireguard-go');
    expect(pod.initContainers!.map((c) => [c.name, c.restartPolicy])).toEqual([['wireguard-go', 'Always']]);
    expect(wg.image).toBe('ghcr.io/masipcat/wireguard-go-docker:0.0.20230223');
    expect(wg.args).toEqual(['wireguard-go', '--foreground', 'wg-kilo']);
    expect(wg.securityContext).toEqual({
      ...HARDENED_ROOT,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] },
    });
    expect(mounts(wg)).toEqual({ '/var/run/wireguard': 'wireguard', '/dev/net/tun': 'dev-net-tun' });
    expect(volume(pod, 'wireguard').emptyDir).toEqual({ medium: 'Memory', sizeLimit: '1Mi' });
    expect(volume(pod, 'dev-net-tun').hostPath).toEqual({ path: '/dev/net/tun', type: 'CharDevice' });
    const c = agent(pod);
    expect(c.args).toEqual([...DEFAULT_ARGS, '--create-interface=false', '--interface=wg-kilo']);
    expect(mounts(c)).toEqual({ ...AGENT_MOUNTS, '/var/run/wireguard': 'wireguard' });
    expect(agentOptions(c)).toMatchObject({ createInterface: false, interface: 'wg-kilo' });
  });

  it('extraFlags come after args and the chart flags, so they win; image.debug sets --log-level=debug', async () => {
    const c = agent(
      podOf(
        await objects({
          image: { debug: true },
          kdaemon: {
            extraFlags: [
              '--mesh-granularity=full',
              '--subnet=10.5.0.0/16',
              '--service-cidr=10.96.0.0/12',
              '--service-cidr=fd00:96::/108',
              '--compatibility=flannel',
            ],
            listenPort: 11070,
          },
        }),
      ),
    );
    expect(c.args).toEqual([
      '--hostname=$(NODE_NAME)',
      '--cni=false',
      '--mesh-granularity=location',
      '--listen=:11070',
      '--log-level=debug',
      '--mesh-granularity=full',
      '--subnet=10.5.0.0/16',
      '--service-cidr=10.96.0.0/12',
      '--service-cidr=fd00:96::/108',
      '--compatibility=flannel',
    ]);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 11070, protocol: 'TCP' }]);
    expect(agentOptions(c)).toMatchObject({
      meshGranularity: 'full',
      subnet: '10.5.0.0/16',
      compatibility: 'flannel',
      logLevel: 'debug',
      listen: { port: 11070 },
    });
  });

  it('command and args replace the defaults (a custom image); the chart still owns --listen', async () => {
    const c = agent(
      podOf(await objects({ kdaemon: { command: ['/bin/kilo-agent'], args: ['--local=false'] } })),
    );
    expect(c.command).toEqual(['/bin/kilo-agent']);
    expect(c.args).toEqual(['--local=false', '--listen=:1107']);
  });

  it('extraEnvVars (rendered as a template), extraEnvVarsCM and extraEnvVarsSecret reach the kilo-agent container', async () => {
    const c = agent(
      podOf(
        await objects({
          kdaemon: {
            extraEnvVars: [
              { name: 'KILO_AGENT_MTU', value: '1380' },
              { name: 'RELEASE_NS', value: '{{ .Release.Namespace }}' },
            ],
            extraEnvVarsCM: 'kilo-env',
            extraEnvVarsSecret: 'kilo-secret-env',
          },
        }),
      ),
    );
    expect(c.env!.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath])).toEqual([
      ['NODE_NAME', 'spec.nodeName'],
      ['KILO_AGENT_MTU', '1380'],
      ['RELEASE_NS', NS],
    ]);
    expect(c.envFrom).toEqual([
      { configMapRef: { name: 'kilo-env' } },
      { secretRef: { name: 'kilo-secret-env' } },
    ]);
  });

  it('configuration: a ConfigMap mounted read-only at /etc/kilo, its files rendered as templates, pods rolled on change', async () => {
    const conf = (name: string) => ({
      kdaemon: { configuration: { 'cni-conf.json': `{"name":"${name}","ns":"{{ .Release.Namespace }}"}` } },
    });
    const all = await objects(conf('kilo'));
    expect(find(all, 'ConfigMap').data).toEqual({ 'cni-conf.json': `{"name":"kilo","ns":"${NS}"}` });
    const pod = podOf(all);
    expect(mounts(agent(pod))['/etc/kilo']).toBe('configuration (ro)');
    expect(volume(pod, 'configuration').configMap).toMatchObject({ name: NAME });
    const checksum = (list: K8sObject[]) =>
      daemonSet(list).spec!.template!.metadata.annotations?.['checksum/configuration'];
    expect(checksum(all)).toMatch(/^[0-9a-f]{16}$/);
    expect(checksum(await objects(conf('other')))).not.toBe(checksum(all));
  });

  it('existingConfigmap: mounted at /etc/kilo, no ConfigMap of the chart', async () => {
    const all = await objects({ kdaemon: { existingConfigmap: 'my-kilo' } });
    expect(all.some((o) => o.kind === 'ConfigMap')).toBe(false);
    expect(volume(podOf(all), 'configuration').configMap).toMatchObject({ name: 'my-kilo' });
    expect(mounts(agent(podOf(all)))['/etc/kilo']).toBe('configuration (ro)');
  });

  it('extraDeploy: objects and strings of YAML, rendered as templates, installed with the release', async () => {
    const all = await objects({
      extraDeploy: [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: {
            name: '{{ include "kilo-agent.fullname" . }}-extra',
            namespace: '{{ .Release.Namespace }}',
          },
          data: { release: '{{ .Release.Name }}' },
        },
        [
          'apiVersion: v1',
          'kind: Secret',
          'metadata:',
          '  name: extra-{{ .Release.Name }}',
          '  namespace: {{ .Release.Namespace }}',
          '  labels: {{- include "kilo-agent.labels" . | nindent 4 }}',
          'stringData: { a: b }',
        ].join('\n'),
      ],
    });
    expect(names(all)).toEqual(
      expect.arrayContaining([`configmap/${NAME}-extra`, `secret/extra-${NAME}`, `daemonset.apps/${NAME}`]),
    );
    expect(find(all, 'ConfigMap', `${NAME}-extra`)).toMatchObject({
      metadata: { namespace: NS },
      data: { release: NAME },
    });
    expect(find(all, 'Secret', `extra-${NAME}`).metadata.labels).toMatchObject(SELECTOR);
  });

  it('affinity presets: node (hard, soft) and pod anti-affinity (soft, hard); affinity replaces them', async () => {
    const affinity = async (kdaemon: Record<string, unknown>) => podOf(await objects({ kdaemon })).affinity;
    expect(
      await affinity({
        nodeAffinityPreset: { type: 'hard', key: 'kilo.squat.ai/enabled', values: ['true'] },
      }),
    ).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchExpressions: [{ key: 'kilo.squat.ai/enabled', operator: 'In', values: ['true'] }] },
          ],
        },
      },
    });
    expect(await affinity({ nodeAffinityPreset: { type: 'soft', key: 'zone', values: ['a', 'b'] } })).toEqual(
      {
        nodeAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 1,
              preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] },
            },
          ],
        },
      },
    );
    const term = {
      labelSelector: { matchLabels: SELECTOR },
      namespaces: [NS],
      topologyKey: 'kubernetes.io/hostname',
    };
    expect(await affinity({ podAntiAffinityPreset: 'soft' })).toEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: term }],
      },
    });
    expect(await affinity({ podAntiAffinityPreset: 'hard', podAffinityPreset: 'soft' })).toEqual({
      podAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: term }],
      },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] },
    });
    const own = {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [
            { matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['edge-1'] }] },
          ],
        },
      },
    };
    expect(
      await affinity({
        affinity: own,
        podAntiAffinityPreset: 'hard',
        nodeAffinityPreset: { type: 'hard', key: 'k', values: ['v'] },
      }),
    ).toEqual(own);
  });

  it('the rest of the seed values: registry, pull secrets, labels, annotations, scheduler, security contexts off, init containers, sidecars, volumes', async () => {
    const all = await objects({
      global: { imageRegistry: 'registry.example', imagePullSecrets: ['g1', { name: 'g2' }] },
      image: { tag: '1.2.3', pullSecrets: [{ name: 'p1' }, 'g1'], pullPolicy: 'Always' },
      wireguardGo: { enabled: true },
      commonLabels: { team: 'net' },
      commonAnnotations: { owner: 'net-team' },
      schedulerName: 'node-scheduler',
      kdaemon: {
        podLabels: { tier: '{{ .Release.Name }}' },
        podAnnotations: { note: 'x' },
        priorityClassName: '',
        nodeSelector: { 'node-role.kubernetes.io/edge': '' },
        tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }],
        updateStrategy: { type: 'OnDelete' },
        podSecurityContext: { enabled: false },
        containerSecurityContext: { enabled: false },
        livenessProbe: { enabled: false },
        readinessProbe: { enabled: false },
        initContainers: [{ name: 'install-cni', image: 'busybox', command: ['true'] }],
        sidecars: [{ name: 'exporter', image: 'busybox', command: ['sleep', 'infinity'] }],
        extraVolumes: [{ name: 'cni-conf', hostPath: { path: '/etc/cni/net.d' } }],
        extraVolumeMounts: [{ name: 'cni-conf', mountPath: '/etc/cni/net.d' }],
      },
      serviceAccount: { annotations: { 'example.com/role': 'kilo' } },
    });
    expect(all.every((o) => o.metadata.labels?.['team'] === 'net')).toBe(true);
    expect(all.every((o) => o.metadata.annotations?.['owner'] === 'net-team')).toBe(true);
    expect(find(all, 'ServiceAccount').metadata.annotations).toMatchObject({
      'example.com/role': 'kilo',
      owner: 'net-team',
    });
    const ds = daemonSet(all);
    expect(ds.spec!.updateStrategy).toEqual({ type: 'OnDelete' });
    expect(ds.spec!.template!.metadata.labels).toMatchObject({ ...SELECTOR, team: 'net', tier: NAME });
    expect(ds.spec!.template!.metadata.annotations).toMatchObject({ note: 'x', owner: 'net-team' });
    const pod = ds.spec!.template!.spec;
    expect(pod.schedulerName).toBe('node-scheduler');
    expect(pod.priorityClassName).toBeUndefined();
    // A map merges into the default one (helm): the Linux selector stays.
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux', 'node-role.kubernetes.io/edge': '' });
    expect(pod.tolerations).toEqual([{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod.imagePullSecrets).toEqual([{ name: 'g1' }, { name: 'g2' }, { name: 'p1' }]);
    expect(pod.securityContext).toEqual({});
    expect(pod.initContainers!.map((c) => c.name)).toEqual(['wireguard-go', 'install-cni']);
    expect(pod.containers.map((c) => c.name)).toEqual(['kilo-agent', 'exporter']);
    const c = agent(pod);
    expect([c.image, c.imagePullPolicy]).toEqual(['registry.example/knet/kilo-agent:1.2.3', 'Always']);
    expect(container(pod.initContainers, 'wireguard-go').image).toBe(
      'registry.example/masipcat/wireguard-go-docker:0.0.20230223',
    );
    expect(c.securityContext).toBeUndefined();
    expect(c.livenessProbe).toBeUndefined();
    expect(c.readinessProbe).toBeUndefined();
    expect(mounts(c)['/etc/cni/net.d']).toBe('cni-conf');
    expect(volume(pod, 'cni-conf').hostPath).toEqual({ path: '/etc/cni/net.d', type: '' });
    // Only kilo-agent mounts the ServiceAccount token.
    const withToken = [...pod.initContainers!, ...pod.containers].filter((x) => mounts(x)[SA_TOKEN_PATH]);
    expect(withToken.map((x) => x.name)).toEqual(['kilo-agent']);
  });

  it('rbac.create false: no ClusterRole nor binding; serviceAccount.create false: the named one', async () => {
    const all = await objects({ rbac: { create: false }, serviceAccount: { create: false, name: 'kilo' } });
    expect(names(all)).toEqual([`daemonset.apps/${NAME}`]);
    expect(podOf(all).serviceAccountName).toBe('kilo');
  });
});

describe('values are checked before anything is rendered', () => {
  /** helm template's stderr for `values`, which must fail. */
  const refusal = async (values: unknown): Promise<string> => {
    const r = await cp.helm(['template', NAME, chart.chart, '-n', NS, '-f', valuesFile(values)]);
    expect(r.exitCode).not.toBe(0);
    return r.stderr;
  };

  it('the schema: a bad preset, a port out of range, an unknown key, a flag that is not one, a selector label, a bad interface', async () => {
    expect(await refusal({ kdaemon: { podAntiAffinityPreset: 'always' } })).toContain(
      'kdaemon.podAntiAffinityPreset must be one of the following: "", "soft", "hard"',
    );
    expect(await refusal({ kdaemon: { listenPort: 70000 } })).toContain(
      'kdaemon.listenPort: Must be less than or equal to 65535',
    );
    expect(await refusal({ kdaemon: { extraFlag: ['--mtu=1380'] } })).toContain(
      'kdaemon: Additional property extraFlag is not allowed',
    );
    expect(await refusal({ kdaemon: { extraFlags: ['mtu=1380'] } })).toContain(
      "kdaemon.extraFlags.0: Does not match pattern '^--[a-z][-a-z0-9]*(=.*)?$'",
    );
    expect(await refusal({ commonLabels: { 'app.kubernetes.io/instance': 'x' } })).toContain('commonLabels');
    expect(await refusal({ wireguardGo: { interface: 'an-interface-name-too-long' } })).toContain(
      'wireguardGo.interface',
    );
    expect(await refusal({ image: { registry: 'ghcr.io', repository: '' } })).toContain('image.repository');
  });

  it('the templates: one line that names the value to set instead', async () => {
    expect(await refusal({ kdaemon: { extraFlags: ['--listen=:9000'] } })).toContain(
      'kdaemon.args/extraFlags: --listen=:9000: the chart sets --listen from kdaemon.listenPort (the probes use that port); set kdaemon.listenPort instead',
    );
    expect(
      await refusal({ wireguardGo: { enabled: true }, kdaemon: { extraFlags: ['--interface=wg0'] } }),
    ).toContain(
      'with wireguardGo.enabled the chart sets --interface and --create-interface=false; set wireguardGo.interface instead',
    );
    expect(await refusal({ kdaemon: { configuration: { a: 'b' }, existingConfigmap: 'c' } })).toContain(
      'give kdaemon.configuration or kdaemon.existingConfigmap, not both',
    );
    expect(await refusal({ kdaemon: { nodeAffinityPreset: { type: 'hard' } } })).toContain(
      'kdaemon.nodeAffinityPreset.type is hard: give kdaemon.nodeAffinityPreset.key and values too',
    );
    expect(await refusal({ serviceAccount: { create: false } })).toContain(
      'serviceAccount.name is required when serviceAccount.create is false',
    );
  });
});

describe('the Peer CRD (crds/peers.kilo.squat.ai.yaml)', () => {
  const CRD = join(CHART_DIR, 'crds/peers.kilo.squat.ai.yaml');
  /** The Peer of Kilo's docs/vpn.md. */
  const DOCS_PEER = {
    apiVersion: 'kilo.squat.ai/v1alpha1',
    kind: 'Peer',
    metadata: { name: 'squat' },
    spec: {
      allowedIPs: ['10.5.0.1/32'],
      publicKey: 'GY5aT1N9dTR/nJnT1N2f4ClZWVj0jOAld0r8ysWLyjg=',
      persistentKeepalive: 10,
    },
  };
  const applyPeer = (peer: unknown) => cp.kubectl(['apply', '-f', '-'], { input: JSON.stringify(peer) });

  beforeAll(async () => {
    await cp.kubectlOk(['apply', '-f', CRD]);
    await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/peers.kilo.squat.ai', '--timeout=30s']);
  });

  it("is Kilo's Peer: cluster-scoped kilo.squat.ai/v1alpha1 peers, with a status subresource and printer columns", async () => {
    const crd = JSON.parse(await cp.kubectlOk(['get', 'crd', 'peers.kilo.squat.ai', '-o', 'json'])) as {
      spec: {
        scope: string;
        names: Record<string, string>;
        versions: { name: string; subresources?: unknown; additionalPrinterColumns?: { name: string }[] }[];
      };
    };
    expect(crd.spec.scope).toBe('Cluster');
    expect(crd.spec.names).toMatchObject({
      kind: 'Peer',
      listKind: 'PeerList',
      plural: 'peers',
      singular: 'peer',
    });
    const [v] = crd.spec.versions;
    expect(v!.name).toBe('v1alpha1');
    expect(v!.subresources).toEqual({ status: {} });
    expect(v!.additionalPrinterColumns!.map((c) => c.name)).toEqual([
      'Endpoint',
      'Latest Handshake',
      'Allowed IPs',
      'Observed By',
      'Age',
    ]);
  });

  it("accepts the Peer of Kilo's docs/vpn.md and one with an endpoint and a preshared key", async () => {
    expect(await applyPeer(DOCS_PEER)).toMatchObject({
      exitCode: 0,
      stdout: expect.stringContaining('peer.kilo.squat.ai/squat created'),
    });
    const full = {
      ...DOCS_PEER,
      metadata: { name: 'gateway' },
      spec: {
        allowedIPs: ['10.5.0.2/32', '192.0.2.0/24'],
        publicKey: 'kVbDZ6b3V6bMt1Dmz6cl5O8cLbHqvZ7zNNTsHhmC0Hg=',
        presharedKey: 'Ycb/VZ5sHtU3kVLF1u4ElDdIlYK8xvDDF7SBQ5wTQ4E=',
        endpoint: { dnsOrIP: { ip: '198.51.100.7' }, port: 51820 },
      },
    };
    expect((await applyPeer(full)).exitCode).toBe(0);
  });

  it("refuses what Kilo's schema refuses: no publicKey, no allowedIPs, allowedIPs not a list, an endpoint without port, a string keepalive", async () => {
    const bad = async (name: string, spec: Record<string, unknown>) => {
      const r = await applyPeer({ ...DOCS_PEER, metadata: { name }, spec });
      expect([name, r.exitCode]).toEqual([name, 1]);
      return r.stderr;
    };
    const { publicKey, allowedIPs } = DOCS_PEER.spec;
    expect(await bad('no-key', { allowedIPs })).toContain('spec.publicKey: Required value');
    expect(await bad('no-ips', { publicKey })).toContain('spec.allowedIPs: Required value');
    expect(await bad('ips-string', { publicKey, allowedIPs: '10.5.0.1/32' })).toContain(
      'spec.allowedIPs: Invalid value: "string"',
    );
    expect(
      await bad('no-port', { publicKey, allowedIPs, endpoint: { dnsOrIP: { ip: '198.51.100.7' } } }),
    ).toContain('spec.endpoint.port: Required value');
    expect(await bad('keepalive-string', { publicKey, allowedIPs, persistentKeepalive: '10s' })).toContain(
      'spec.persistentKeepalive: Invalid value: "string"',
    );
    expect(
      (await applyPeer({ ...DOCS_PEER, metadata: { name: 'no-spec' }, spec: undefined })).stderr,
    ).toContain('spec: Required value');
  });

  it("accepts a malformed publicKey and allowedIPs, as Kilo's schema does (the agents ignore such a peer)", async () => {
    const r = await applyPeer({
      ...DOCS_PEER,
      metadata: { name: 'malformed' },
      spec: { allowedIPs: ['not-a-cidr'], publicKey: 'not-a-key' },
    });
    expect([r.exitCode, r.stdout.trim()]).toEqual([0, 'peer.kilo.squat.ai/malformed created']);
  });

  it('status is a subresource: ignored through the main resource, validated through /status', async () => {
    await cp.kubectlOk([
      'patch',
      'peer',
      'squat',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { endpoint: '203.0.113.9:51820' } }),
    ]);
    const get = async () =>
      JSON.parse(await cp.kubectlOk(['get', 'peer', 'squat', '-o', 'json'])) as K8sObject;
    expect((await get()).status).toBeUndefined();
    const bad = await cp.kubectl([
      'patch',
      'peer',
      'squat',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { receiveBytes: 'many' } }),
    ]);
    expect([bad.exitCode, bad.stderr]).toEqual([
      1,
      expect.stringContaining('status.receiveBytes: Invalid value: "string"'),
    ]);
    const badTime = await cp.kubectl([
      'patch',
      'peer',
      'squat',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { latestHandshake: 'yesterday' } }),
    ]);
    expect([badTime.exitCode, badTime.stderr]).toEqual([
      1,
      expect.stringContaining('status.latestHandshake'),
    ]);
  });
});

describe('a real install', () => {
  const helmOk = async (args: string[]) => {
    const r = await cp.helm(args);
    if (r.exitCode !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  let installed = '';

  beforeAll(async () => {
    installed = await helmOk(['install', NAME, chart.chart, '-n', NS]);
  });

  afterAll(async () => {
    await cp.helm(['uninstall', NAME, '-n', NS]);
  });

  it('installs the defaults (the CRD already there is kept) and prints how to check the mesh', async () => {
    expect(installed).toContain(`kubectl -n ${NS} rollout status daemonset/${NAME}`);
    expect(installed).toContain('kgctl graph | circo -Tsvg > mesh.svg');
    expect(installed).toContain('kubectl get peers -o wide');
    const ds = JSON.parse(
      await cp.kubectlOk(['get', 'daemonset', NAME, '-n', NS, '-o', 'json']),
    ) as K8sObject;
    expect(agent(ds.spec!.template!.spec).args).toEqual(DEFAULT_ARGS);
  });

  it("the README's parameter table lists every value with its default, and the schema knows every value", async () => {
    const defaults = JSON.parse(
      await helmOk(['get', 'values', NAME, '-n', NS, '--all', '-o', 'json']),
    ) as Record<string, unknown>;
    const readme = readFileSync(join(CHART_DIR, 'README.md'), 'utf8');
    const rows = new Map<string, string>();
    for (const m of readme.matchAll(/^\| `([^`]+)` +\|.*\| `([^`]*)` +\|$/gm)) rows.set(m[1]!, m[2]!);
    const cell = (v: unknown) => (typeof v === 'string' ? (v === '' ? "''" : v) : JSON.stringify(v));
    const isMap = (v: unknown): v is Record<string, unknown> =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    // A value is a row when the README has one for its path; else its keys are (a map without a row
    // must be a group of rows, never empty).
    const leaves: [string, unknown][] = [];
    const walk = (v: unknown, path: string) => {
      if (rows.has(path) || !isMap(v) || Object.keys(v).length === 0) leaves.push([path, v]);
      else for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k);
    };
    walk(defaults, '');
    expect(leaves.map(([p]) => [p, rows.get(p)])).toEqual(leaves.map(([p, v]) => [p, cell(v)]));
    expect([...rows.keys()].filter((p) => !leaves.some(([l]) => l === p))).toEqual([]);

    interface Schema {
      properties?: Record<string, Schema>;
      $ref?: string;
      additionalProperties?: unknown;
    }
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as Schema & {
      definitions: Record<string, Schema>;
    };
    const resolve = (s: Schema): Schema =>
      s.$ref ? resolve(schema.definitions[s.$ref.replace('#/definitions/', '')]!) : s;
    const unknown = leaves
      .map(([p]) => p)
      .filter((p) => {
        let s: Schema | undefined = schema;
        for (const key of p.split('.')) {
          const r: Schema = resolve(s!);
          // A key the schema names, or one of a map it types; an object without
          // additionalProperties (a securityContext) takes any key.
          if (r.properties === undefined || r.additionalProperties === undefined) return false;
          s =
            r.properties[key] ??
            (isMap(r.additionalProperties) ? (r.additionalProperties as Schema) : undefined);
          if (!s) return true;
        }
        return false;
      });
    expect(unknown).toEqual([]);
  });

  it('the ServiceAccount may do what the agent needs', async () => {
    const allowed = [
      ['get', 'nodes/node-a'],
      ['list', 'nodes'],
      ['watch', 'nodes'],
      ['patch', 'nodes/node-a'],
      ['list', 'peers.kilo.squat.ai'],
      ['watch', 'peers.kilo.squat.ai'],
      ['update', 'peers.kilo.squat.ai/squat', '--subresource=status'],
      ['patch', 'peers.kilo.squat.ai/squat', '--subresource=status'],
      ['create', 'events', '-n', NS],
      ['patch', 'events', '-n', 'default'],
      ['create', 'events.events.k8s.io', '-n', NS],
      ['patch', 'events.events.k8s.io', '-n', 'kube-system'],
    ];
    const answers = await Promise.all(allowed.map(async (a) => [a.join(' '), await chart.canI(SA, a)]));
    expect(answers).toEqual(allowed.map((a) => [a.join(' '), true]));
  });

  it('and nothing else: no node deletes or updates, no Secrets, no Peer get, create, update or delete, no CRDs', async () => {
    const refused = [
      ['delete', 'nodes/node-a'],
      ['update', 'nodes/node-a'],
      ['create', 'nodes'],
      ['update', 'nodes/node-a', '--subresource=status'],
      ['get', 'secrets', '-n', NS],
      ['list', 'secrets', '--all-namespaces'],
      ['get', 'configmaps', '-n', NS],
      ['list', 'pods', '--all-namespaces'],
      ['get', 'peers.kilo.squat.ai/squat'],
      ['create', 'peers.kilo.squat.ai'],
      ['update', 'peers.kilo.squat.ai/squat'],
      ['patch', 'peers.kilo.squat.ai/squat'],
      ['delete', 'peers.kilo.squat.ai/squat'],
      ['get', 'peers.kilo.squat.ai/squat', '--subresource=status'],
      ['get', 'customresourcedefinitions.apiextensions.k8s.io/peers.kilo.squat.ai'],
      ['delete', 'events', '-n', NS],
      ['list', 'events', '-n', NS],
      ['create', 'serviceaccounts/token', '-n', NS],
      ['create', 'pods/exec', '-n', NS],
    ];
    const answers = await Promise.all(refused.map(async (a) => [a.join(' '), await chart.canI(SA, a)]));
    expect(answers).toEqual(refused.map((a) => [a.join(' '), false]));
  });

  it("the agent's ServiceAccount writes a Peer's status through /status, and cannot change its spec", async () => {
    const asAgent = `--as=${SA}`;
    const peer = {
      apiVersion: 'kilo.squat.ai/v1alpha1',
      kind: 'Peer',
      metadata: { name: 'squat' },
      spec: { allowedIPs: ['10.5.0.1/32'], publicKey: 'GY5aT1N9dTR/nJnT1N2f4ClZWVj0jOAld0r8ysWLyjg=' },
    };
    // The agent knows the Peer (and its resourceVersion) from its list and watch.
    const applied = JSON.parse(
      await cp.kubectlOk(['apply', '-f', '-', '-o', 'json'], { input: JSON.stringify(peer) }),
    ) as K8sObject & { metadata: { resourceVersion: string } };
    const status = {
      endpoint: '203.0.113.9:51820',
      latestHandshake: '2025-01-02T03:04:05Z',
      receiveBytes: 1234,
      transmitBytes: 5678,
      observedBy: 'node-a',
    };
    // An update (PUT) of /status, without reading it first: the agent may not get Peers.
    await cp.kubectlOk(['replace', asAgent, '--subresource=status', '-f', '-'], {
      input: JSON.stringify({ ...applied, status }),
    });
    const stored = JSON.parse(await cp.kubectlOk(['get', 'peer', 'squat', '-o', 'json'])) as K8sObject;
    expect(stored.status).toEqual(status);
    const wide = await cp.kubectlOk(['get', 'peer', 'squat', '-o', 'wide']);
    expect(wide.split('\n')[0]!.split(/\s{2,}/)).toEqual([
      'NAME',
      'ENDPOINT',
      'LATEST HANDSHAKE',
      'ALLOWED IPS',
      'OBSERVED BY',
      'AGE',
    ]);
    expect(wide).toContain('203.0.113.9:51820');
    // Its spec is the user's: an update of the main resource is refused.
    const spec = await cp.kubectl(['replace', asAgent, '-f', '-'], {
      input: JSON.stringify({ ...applied, spec: { ...peer.spec, persistentKeepalive: 25 } }),
    });
    expect([spec.exitCode, spec.stderr]).toEqual([
      1,
      expect.stringContaining('cannot update resource "peers" in API group "kilo.squat.ai"'),
    ]);
  });
});
