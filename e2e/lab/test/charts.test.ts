/**
 * Every chart of charts/ (each directory with a Chart.yaml), installed for real with the test bed's
 * helm into its API server: `helm install` (no --wait: there is no node) with the chart's defaults,
 * or once per values file in its ci/ (helm's convention, for charts that refuse to install without
 * some value), then the objects as stored: each object of `helm get manifest` exists where it was
 * meant to be, labelled and annotated as the release's; the workloads' containers are hardened
 * (as far as the chart documents exceptions); no ClusterRole grants `*`. A second release of the same
 * chart, with the same release name, in another namespace installs beside the first (the names of
 * objects outside the release namespace — cluster-scoped, or in a fixed one such as `default` — must
 * carry that namespace, not only the release name, or they collide), and `helm uninstall` of each
 * leaves nothing of it behind and the other release whole.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane, until, workspaceRoot, type KubeObject } from '@knet/testing';

jest.setTimeout(120_000);

const CHARTS_DIR = join(workspaceRoot(), 'charts');

/** The charts: every directory of charts/ with a Chart.yaml, by name. */
const CHARTS = readdirSync(CHARTS_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(CHARTS_DIR, d.name, 'Chart.yaml')))
  .map((d) => d.name)
  .sort();

/** What a chart is installed with: its ci/*-values.yaml files, each on its own, or else its defaults. */
interface Case {
  chart: string;
  /** A values file relative to the chart (`ci/install-values.yaml`), or null: the defaults. */
  values: string | null;
}
const CASES: Case[] = CHARTS.flatMap((chart): Case[] => {
  const ci = join(CHARTS_DIR, chart, 'ci');
  const files = existsSync(ci)
    ? readdirSync(ci)
        .filter((f) => f.endsWith('-values.yaml'))
        .sort()
    : [];
  return files.length === 0 ? [{ chart, values: null }] : files.map((f) => ({ chart, values: `ci/${f}` }));
});

/**
 * Containers that need more than the hardened securityContext, as their chart documents it (in its
 * values.yaml or README), by chart and container name. Any other container gets nothing: no
 * privilege, no added capability.
 */
const DOCUMENTED_PRIVILEGES: Record<string, Record<string, { privileged?: true; add?: string[] }>> = {
  'pod-gateway': {
    // values.yaml gatewayInit.ipForward: privileged (the default): gateway-init sets ip_forward itself,
    // "ipForward=privileged adds privileged: true (and drops allowPrivilegeEscalation)"; NET_ADMIN, NET_RAW.
    'gateway-init': { privileged: true, add: ['NET_ADMIN', 'NET_RAW'] },
    // values.yaml gatewaySidecar.securityContext: NET_ADMIN (fdb, iptables), NET_RAW, NET_BIND_SERVICE (53, 67).
    'gateway-sidecar': { add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'] },
  },
  'kilo-agent': {
    // charts/kilo-agent README "Security": NET_ADMIN (links, routes, rules, iptables, wg), NET_RAW
    // (iptables-legacy's raw socket, the leader probes' ICMP); not privileged, unlike Kilo's manifests.
    'kilo-agent': { add: ['NET_ADMIN', 'NET_RAW'] },
    // The optional wireguard-go sidecar creates the TUN device and configures it.
    'wireguard-go': { add: ['NET_ADMIN'] },
  },
};

interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
}
interface Container {
  name: string;
  securityContext?: SecurityContext;
}
interface Stored extends KubeObject {
  metadata: KubeObject['metadata'] & { uid?: string };
  spec?: { template?: { spec?: { initContainers?: Container[]; containers?: Container[] } } };
  rules?: { apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] }[];
}

/** One object of a release's manifest, as helm rendered it, and as the API server stores it. */
interface Entry {
  /** `Kind.version.group/name` (`Kind/name` for the core group), the reference kubectl gets it by. */
  ref: string;
  /** The manifest's metadata.namespace; absent for cluster-scoped objects and those helm puts in the release's. */
  namespace?: string;
}

interface Release {
  name: string;
  namespace: string;
}

/** A release's key: its namespace and name. */
const key = (r: Release) => `${r.namespace}/${r.name}`;

let cp: ControlPlane;

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true });
}, 240_000);

afterAll(async () => {
  await cp?.stop();
});

/** `helm <args>`, which must exit 0; its stdout. */
async function helmOk(args: string[]): Promise<string> {
  const r = await cp.helm(args);
  if (r.exitCode !== 0) throw new Error(`helm ${args.join(' ')} exited ${r.exitCode}: ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * The objects of YAML documents, read by kubectl (client side: nothing is created), as entries: what
 * kubectl needs to get each one from the API server.
 */
async function entriesOf(yaml: string, what: string): Promise<Entry[]> {
  if (yaml.trim() === '') return [];
  const file = join(cp.dir, `lab-charts-${what}-${Date.now()}.yaml`);
  writeFileSync(file, yaml);
  const template = '{.apiVersion}{"\\t"}{.kind}{"\\t"}{.metadata.namespace}{"\\t"}{.metadata.name}{"\\n"}';
  const out = await cp.kubectlOk(['create', '--dry-run=client', '-f', file, '-o', `jsonpath=${template}`]);
  return out
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [apiVersion = '', kind = '', namespace = '', name = ''] = line.split('\t');
      const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
      const type = group ? `${kind}.${version}.${group}` : kind;
      return { ref: `${type}/${name}`, ...(namespace ? { namespace } : {}) };
    });
}

/** The objects of the release's manifest (`helm get manifest`). */
async function manifest(r: Release): Promise<Entry[]> {
  return entriesOf(await helmOk(['get', 'manifest', r.name, '-n', r.namespace]), `${r.namespace}-${r.name}`);
}

/** The stored object, or null when the API server has none (a namespaced one looked up in its namespace). */
async function stored(e: Entry, r: Release): Promise<Stored | null> {
  const res = await cp.kubectl([
    'get',
    e.ref,
    '-n',
    e.namespace ?? r.namespace,
    '-o',
    'json',
    '--ignore-not-found',
  ]);
  if (res.exitCode !== 0) throw new Error(`kubectl get ${e.ref}: ${res.stderr.trim()}`);
  return res.stdout.trim() === '' ? null : (JSON.parse(res.stdout) as Stored);
}

const where = (o: Stored) => `${o.kind} ${o.metadata.namespace ?? '(cluster)'}/${o.metadata.name}`;

/** Each object of the manifest as stored; throws naming those the API server does not have. */
async function storedAll(entries: Entry[], r: Release): Promise<Stored[]> {
  const found = await Promise.all(entries.map((e) => stored(e, r)));
  const missing = entries
    .filter((_, i) => found[i] === null)
    .map((e) => `${e.ref} in ${e.namespace ?? r.namespace}`);
  expect(missing).toEqual([]);
  return found as Stored[];
}

/** What is wrong with a stored object of release r: where it is, its labels, helm's annotations. */
function ownershipProblems(o: Stored, e: Entry, r: Release): string[] {
  const problems: string[] = [];
  const labels = o.metadata.labels ?? {};
  const annotations = o.metadata.annotations ?? {};
  const ns = o.metadata.namespace;
  // Namespaced objects: in the namespace the manifest names, or else the release's.
  if (ns !== undefined && ns !== (e.namespace ?? r.namespace)) problems.push(`in namespace ${ns}`);
  if (ns === undefined && e.namespace !== undefined)
    problems.push(`cluster-scoped, but the manifest puts it in ${e.namespace}`);
  if (labels['app.kubernetes.io/instance'] !== r.name)
    problems.push(`label app.kubernetes.io/instance=${labels['app.kubernetes.io/instance']}`);
  if (labels['app.kubernetes.io/managed-by'] !== 'Helm')
    problems.push(`label app.kubernetes.io/managed-by=${labels['app.kubernetes.io/managed-by']}`);
  if (annotations['meta.helm.sh/release-name'] !== r.name)
    problems.push(`annotation meta.helm.sh/release-name=${annotations['meta.helm.sh/release-name']}`);
  if (annotations['meta.helm.sh/release-namespace'] !== r.namespace)
    problems.push(
      `annotation meta.helm.sh/release-namespace=${annotations['meta.helm.sh/release-namespace']}`,
    );
  return problems.map((p) => `${where(o)}: ${p}`);
}

/** What is wrong with a container's securityContext, against the hardened one and the chart's exceptions. */
function securityProblems(chart: string, o: Stored, c: Container): string[] {
  const allowed = DOCUMENTED_PRIVILEGES[chart]?.[c.name] ?? {};
  const sc = c.securityContext ?? {};
  const problems: string[] = [];
  if (sc.readOnlyRootFilesystem !== true)
    problems.push(`readOnlyRootFilesystem ${sc.readOnlyRootFilesystem}`);
  if (!(sc.capabilities?.drop ?? []).includes('ALL'))
    problems.push(`capabilities.drop ${JSON.stringify(sc.capabilities?.drop)}`);
  const added = [...(sc.capabilities?.add ?? [])].sort();
  if (JSON.stringify(added) !== JSON.stringify([...(allowed.add ?? [])].sort()))
    problems.push(`capabilities.add ${JSON.stringify(added)}`);
  if ((sc.privileged === true) !== (allowed.privileged === true))
    problems.push(`privileged ${sc.privileged}`);
  // The API server refuses allowPrivilegeEscalation false together with privileged.
  if (allowed.privileged !== true && sc.allowPrivilegeEscalation !== false)
    problems.push(`allowPrivilegeEscalation ${sc.allowPrivilegeEscalation}`);
  return problems.map((p) => `${where(o)} container ${c.name}: ${p}`);
}

/** The NOTES helm printed after `helm install` (what follows the "NOTES:" line). */
function notesOf(installOutput: string): string {
  const at = installOutput.indexOf('\nNOTES:\n');
  return at < 0 ? '' : installOutput.slice(at + '\nNOTES:\n'.length);
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet']);

it('finds the charts by listing charts/: pod-gateway, tower-proxy and tower-agent among them', () => {
  expect(CHARTS).toEqual(expect.arrayContaining(['pod-gateway', 'tower-agent', 'tower-proxy']));
  expect(CASES.map((c) => c.chart)).toEqual(expect.arrayContaining(CHARTS));
});

describe.each(CASES)('$chart installed for real (values: $values)', ({ chart, values }) => {
  const path = join(CHARTS_DIR, chart);
  const valuesArgs = values === null ? [] : ['-f', join(path, values)];
  // The chart's name as release (its objects are then named after the chart alone), and a second
  // release of the same name in another namespace: only the namespace tells them apart.
  const first: Release = { name: chart, namespace: `lab-${chart}-a` };
  const second: Release = { name: chart, namespace: `lab-${chart}-b` };
  const installed = new Map<string, { notes: string; entries: Entry[]; objects: Stored[] }>();
  /** The CRDs of the chart's crds/ (helm installs them before the templates, and never deletes them). */
  let crds: Entry[] = [];

  const install = async (r: Release) => {
    const out = await helmOk([
      'install',
      r.name,
      path,
      '-n',
      r.namespace,
      '--create-namespace',
      ...valuesArgs,
    ]);
    const status = JSON.parse(await helmOk(['status', r.name, '-n', r.namespace, '-o', 'json'])) as {
      info: { status: string };
    };
    expect(status.info.status).toBe('deployed');
    const entries = await manifest(r);
    expect(entries.length).toBeGreaterThan(0);
    installed.set(key(r), { notes: notesOf(out), entries, objects: await storedAll(entries, r) });
    return installed.get(key(r))!;
  };

  const checkOwnership = (r: Release) => {
    const { entries, objects } = installed.get(key(r))!;
    expect(objects.flatMap((o, i) => ownershipProblems(o, entries[i]!, r))).toEqual([]);
  };

  /** Waits until no object of r's manifest is left (deletion of some may take a moment: finalizers, GC). */
  const gone = async (r: Release) => {
    const { entries } = installed.get(key(r))!;
    let left: string[] = [];
    await until(
      () => `the objects of ${r.name} to be deleted; left: ${left.join(', ')}`,
      async () => {
        const found = await Promise.all(entries.map((e) => stored(e, r)));
        left = found.filter((o): o is Stored => o !== null).map(where);
        return left.length === 0;
      },
      30_000,
    );
  };

  it(`helm install ${first.name} -n ${first.namespace} exits 0 and the release is deployed, with NOTES that name it`, async () => {
    const { notes } = await install(first);
    expect(notes.trim()).not.toBe('');
    expect(notes).toContain(first.name);
  });

  it('every object of its manifest is stored where it belongs, labelled and annotated as the release’s', () => {
    const { objects } = installed.get(key(first))!;
    expect(objects.length).toBeGreaterThan(0);
    checkOwnership(first);
  });

  it('the CRDs of crds/ are installed, and not part of the release (helm neither labels nor deletes them)', async () => {
    crds = await entriesOf(await helmOk(['show', 'crds', path]), `${chart}-crds`);
    expect(crds.every((e) => e.ref.startsWith('CustomResourceDefinition.'))).toBe(true);
    // helm show crds reads crds/: a chart has CRDs exactly when it has that folder.
    expect(crds.length > 0).toBe(existsSync(join(path, 'crds')));
    const found = await Promise.all(crds.map((e) => stored(e, first)));
    expect(crds.filter((_, i) => found[i] === null).map((e) => e.ref)).toEqual([]);
    // Not in the manifest: uninstall does not take them.
    const inManifest = new Set(installed.get(key(first))!.entries.map((e) => e.ref));
    expect(crds.filter((e) => inManifest.has(e.ref)).map((e) => e.ref)).toEqual([]);
  });

  it('its Deployments, StatefulSets and DaemonSets run hardened containers; no ClusterRole grants *', () => {
    const { objects } = installed.get(key(first))!;
    const workloads = objects.filter((o) => WORKLOADS.has(o.kind));
    const problems = workloads.flatMap((o) => {
      const pod = o.spec?.template?.spec;
      const containers = [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
      expect([where(o), containers.length > 0]).toEqual([where(o), true]);
      return containers.flatMap((c) => securityProblems(chart, o, c));
    });
    const wildcards = objects
      .filter((o) => o.kind === 'ClusterRole')
      .flatMap((o) =>
        (o.rules ?? [])
          .filter((rule) => rule.verbs.includes('*') || (rule.resources ?? []).includes('*'))
          .map((rule) => `${where(o)}: ${JSON.stringify(rule)}`),
      );
    expect({ problems, wildcards }).toEqual({ problems: [], wildcards: [] });
    // A chart without a workload would pass the first half vacuously: every chart here runs an app.
    expect(workloads.length).toBeGreaterThan(0);
  });

  it(`a second release ${second.name} -n ${second.namespace} (same name) installs beside it; the first stays whole and its own`, async () => {
    const { notes, objects } = await install(second);
    expect(notes.trim()).not.toBe('');
    expect(notes).toContain(second.name);
    checkOwnership(second);
    // No object of one is an object of the other (names outside the release namespace carry it).
    const uids = new Set(installed.get(key(first))!.objects.map((o) => o.metadata.uid));
    expect(objects.filter((o) => uids.has(o.metadata.uid)).map(where)).toEqual([]);
    const again = await storedAll(installed.get(key(first))!.entries, first);
    installed.set(key(first), { ...installed.get(key(first))!, objects: again });
    checkOwnership(first);
  });

  it(`helm uninstall ${second.name} -n ${second.namespace} exits 0, leaves nothing of it and all of ${first.name} -n ${first.namespace}`, async () => {
    await helmOk(['uninstall', second.name, '-n', second.namespace]);
    await gone(second);
    await storedAll(installed.get(key(first))!.entries, first);
    expect((await cp.helm(['status', second.name, '-n', second.namespace])).exitCode).not.toBe(0);
  });

  it(`helm uninstall ${first.name} -n ${first.namespace} exits 0 and leaves nothing of it but the CRDs`, async () => {
    await helmOk(['uninstall', first.name, '-n', first.namespace]);
    await gone(first);
    expect((await cp.helm(['status', first.name, '-n', first.namespace])).exitCode).not.toBe(0);
    const found = await Promise.all(crds.map((e) => stored(e, first)));
    expect(crds.filter((_, i) => found[i] === null).map((e) => e.ref)).toEqual([]);
  });
});
