import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { ControlPlane, KubectlResult } from './controlplane';
import { describeExit, oneLine } from './exec';
import { workspaceRoot } from './workspace';

/** An object as the API server returns it; narrow it with your own interface (`dryRun<Deployment>`). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface ChartBedOptions {
  /** A chart of the workspace (`tower-proxy` → `charts/tower-proxy`) or a path to a chart directory. */
  chart: string;
  /** Release name `render` uses unless told otherwise. */
  release: string;
  /** Namespace of the release. */
  namespace: string;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** Values as users write them, passed to helm as a values file (`-f`) before `args`. */
  values?: unknown;
}

/**
 * A helm chart against a real control plane: render it, have the API server validate and default
 * every object without storing it, apply it, and check what a ServiceAccount may do.
 *
 * ```ts
 * const proxy = new ChartBed(host, { chart: 'tower-proxy', release: 'tower-proxy', namespace: NS });
 * const objects = await proxy.dryRun(await proxy.render(['--set', 'replicas=2']));
 * expect(objects.map(resourceName)).toContain('deployment.apps/tower-proxy');
 * await proxy.apply(await proxy.render(['--show-only', 'templates/rbac.yaml']));
 * expect(await proxy.canI(serviceAccountUser(NS, 'tower-proxy'), ['list', 'services', '-n', NS])).toBe(true);
 * ```
 */
export class ChartBed {
  /** Absolute path of the chart directory. */
  readonly chart: string;
  readonly release: string;
  readonly namespace: string;
  private files = 0;

  constructor(
    readonly cp: ControlPlane,
    options: ChartBedOptions,
  ) {
    this.chart = isAbsolute(options.chart) ? options.chart : join(workspaceRoot(), 'charts', options.chart);
    if (!existsSync(join(this.chart, 'Chart.yaml'))) {
      throw new Error(`ChartBed: ${this.chart} is not a chart (no Chart.yaml)`);
    }
    this.release = options.release;
    this.namespace = options.namespace;
  }

  /** `helm lint --strict` of the chart with `args` (values); the result as helm printed it. */
  lint(args: readonly string[] = []): Promise<KubectlResult> {
    return this.cp.helm(['lint', '--strict', this.chart, '--namespace', this.namespace, ...args]);
  }

  /**
   * `helm lint --strict` with the chart's defaults, with each values file in its `ci/` directory
   * (found, so a new one is linted without a test change) and with each of `more` (helm args).
   * Returns what failed, one `<values>: <helm's output>` each; empty when every lint passed.
   */
  async lintAll(more: readonly (readonly string[])[] = []): Promise<string[]> {
    const ciDir = join(this.chart, 'ci');
    const ci = existsSync(ciDir)
      ? readdirSync(ciDir)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => ['-f', join(ciDir, f)])
      : [];
    const failed: string[] = [];
    for (const args of [[], ...ci, ...more]) {
      const r = await this.lint(args);
      if (r.exitCode !== 0 || !r.stdout.includes('1 chart(s) linted, 0 chart(s) failed'))
        failed.push(`${args.join(' ') || '(defaults)'}: ${(r.stdout + r.stderr).trim()}`);
    }
    return failed;
  }

  /**
   * `helm template` of the release: the rendered YAML. `args` are helm's (`--set k=v`,
   * `--show-only templates/x.yaml`, `-f file`). Throws one line with helm's error when it refuses.
   */
  async render(args: readonly string[] = [], options: RenderOptions = {}): Promise<string> {
    const release = options.release ?? this.release;
    const values =
      options.values === undefined ? [] : ['-f', this.file('values', JSON.stringify(options.values))];
    const r = await this.cp.helm([
      'template',
      release,
      this.chart,
      '--namespace',
      options.namespace ?? this.namespace,
      ...values,
      ...args,
    ]);
    if (r.exitCode !== 0)
      throw new Error(
        `helm template ${release} ${this.chart} failed (${describeExit(r)}): ${oneLine(r.stderr)}`,
      );
    return r.stdout;
  }

  /**
   * Server-side dry run of rendered YAML (`kubectl apply --dry-run=server`): the API server
   * validates and defaults every object, admission included, and stores nothing. Resolves to the
   * objects as it would store them; throws one line with the API server's refusal. Objects go to
   * their own `metadata.namespace` (the charts write it); `namespace` is for those without one.
   */
  dryRun<T extends KubeObject = KubeObject>(
    yaml: string,
    options: { namespace?: string } = {},
  ): Promise<T[]> {
    return this.kubectlApply<T>(yaml, ['--dry-run=server'], options.namespace);
  }

  /** `kubectl apply` of rendered YAML, for real; resolves to the stored objects. */
  apply<T extends KubeObject = KubeObject>(yaml: string, options: { namespace?: string } = {}): Promise<T[]> {
    return this.kubectlApply<T>(yaml, [], options.namespace);
  }

  /**
   * `kubectl auth can-i <args> --as=<user>`: may `user` (e.g. `serviceAccountUser(ns, name)`) do
   * it? `args` as kubectl takes them: `['list', 'services', '-n', 'x']`, `['get', 'pods/p']`.
   * Throws one line when kubectl answers neither yes nor no (a typo in the resource, say).
   */
  async canI(user: string, args: readonly string[]): Promise<boolean> {
    const r = await this.cp.kubectl(['auth', 'can-i', ...args, `--as=${user}`]);
    const answer = r.stdout.trim();
    if (answer === 'yes' || answer === 'no') return answer === 'yes';
    throw new Error(
      `kubectl auth can-i ${args.join(' ')} --as=${user}: ${oneLine(r.stderr) || `answered "${answer}"`}`,
    );
  }

  private async kubectlApply<T extends KubeObject>(
    yaml: string,
    flags: string[],
    namespace?: string,
  ): Promise<T[]> {
    const file = this.file('rendered', yaml);
    const ns = namespace === undefined ? [] : ['--namespace', namespace];
    const r = await this.cp.kubectl(['apply', ...flags, ...ns, '-o', 'json', '-f', file]);
    if (r.exitCode !== 0) {
      throw new Error(
        `kubectl apply ${flags.join(' ')} of ${file} failed (${describeExit(r)}): ${oneLine(r.stderr)}`,
      );
    }
    if (r.stdout.trim() === '') return [];
    const out = JSON.parse(r.stdout) as T & { items?: T[] };
    return out.kind === 'List' ? (out.items ?? []) : [out];
  }

  /** A file in the control plane's temp dir (removed with it). */
  private file(kind: string, content: string): string {
    const path = join(this.cp.dir, `chart-${this.release}-${kind}-${++this.files}.yaml`);
    writeFileSync(path, content);
    return path;
  }
}

/** The user a ServiceAccount authenticates as: `system:serviceaccount:<namespace>:<name>`. */
export function serviceAccountUser(namespace: string, name: string): string {
  return `system:serviceaccount:${namespace}:${name}`;
}

/** `kind.group/name` as kubectl names objects (`deployment.apps/x`, `service/y`), to compare lists. */
export function resourceName(o: KubeObject): string {
  const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
  return `${o.kind.toLowerCase()}${group}/${o.metadata.name}`;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string } };
}

interface RenderedContainer {
  name: string;
  args?: string[];
  env?: EnvVar[];
}

/** A rendered Deployment or StatefulSet: its containers and init containers (native sidecars). */
interface RenderedDeployment extends KubeObject {
  spec?: { template?: { spec?: { containers?: RenderedContainer[]; initContainers?: RenderedContainer[] } } };
}

/** What a container of a chart's Deployment is started with, its env resolved as the kubelet would. */
export interface ChartContainer {
  args: string[];
  env: Record<string, string>;
}

/**
 * Renders `templates/<template>` (a Deployment or StatefulSet) of `chart` with `values`, has the API
 * server default it (dry run), and returns container (or init container) `container`'s args and env. An env var from the downward API
 * takes its value from `fields` (`metadata.name` → the pod's name), one from a Secret from
 * `secrets` (`<secret>/<key>`); any other is an error, so a chart change cannot go unnoticed.
 */
export async function chartContainer(
  chart: ChartBed,
  template: string,
  container: string,
  opts: { values?: unknown; fields?: Record<string, string>; secrets?: Record<string, string> } = {},
): Promise<ChartContainer> {
  const [deployment] = await chart.dryRun<RenderedDeployment>(
    await chart.render(['--show-only', `templates/${template}`], { values: opts.values }),
  );
  const pod = deployment?.spec?.template?.spec;
  const c = [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])].find((x) => x.name === container);
  if (!c?.args)
    throw new Error(`${chart.chart}: templates/${template} rendered no container ${container} with args`);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const secret = e.valueFrom?.secretKeyRef;
    const value =
      e.value ??
      (field !== undefined ? opts.fields?.[field] : undefined) ??
      (secret ? opts.secrets?.[`${secret.name}/${secret.key}`] : undefined);
    if (value === undefined) throw new Error(`${chart.chart}: no value for env ${e.name} of ${container}`);
    env[e.name] = value;
  }
  return { args: c.args, env };
}

/** `args` without the flags named in `replaced` (`--port`), then those flags with their new values. */
export function replaceFlags(args: readonly string[], replaced: Record<string, string | number>): string[] {
  const names = Object.keys(replaced);
  return [
    ...args.filter((a) => !names.some((n) => a === n || a.startsWith(`${n}=`))),
    ...Object.entries(replaced).map(([n, v]) => `${n}=${v}`),
  ];
}
