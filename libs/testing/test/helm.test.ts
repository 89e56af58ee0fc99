import { join } from 'node:path';
import { ChartBed, ControlPlane, resourceName, serviceAccountUser, type KubeObject } from '../src';

jest.setTimeout(60_000);

// The fixture chart's objects name no namespace (the repository's charts do): they go to `demo`.
const chart = join(__dirname, 'fixtures/chart');
const NS = { namespace: 'demo' };
let cp: ControlPlane;
let bed: ChartBed;

beforeAll(async () => {
  cp = await ControlPlane.start();
  await cp.kubectlOk(['create', 'namespace', 'demo']);
  bed = new ChartBed(cp, { chart, release: 'demo', namespace: 'demo' });
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

interface Deployment extends KubeObject {
  spec: {
    replicas: number;
    strategy: { type: string };
    template: {
      spec: { restartPolicy: string; containers: { name: string; terminationMessagePath: string }[] };
    };
  };
}

describe('real helm against the real API server (ChartBed)', () => {
  it('lints the chart', async () => {
    const r = await bed.lint();
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.exitCode).toBe(0);
  });

  it('lintAll: the defaults, every values file in ci/ and more; what failed, named by its values', async () => {
    expect(await bed.lintAll([['--set', 'replicas=2']])).toEqual([]);
    const failed = await bed.lintAll([['--set', 'port=70000']]);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^--set port=70000: .*port: Must be less than or equal to 65535/s);
  });

  it('renders it, and the API server accepts and defaults every object without storing it (dryRun)', async () => {
    const objects = await bed.dryRun(await bed.render(), NS);
    expect(objects.map(resourceName).sort()).toEqual([
      'deployment.apps/demo',
      'role.rbac.authorization.k8s.io/demo',
      'rolebinding.rbac.authorization.k8s.io/demo',
      'serviceaccount/demo',
    ]);
    expect(objects.every((o) => o.metadata.namespace === 'demo')).toBe(true);
    // Defaulted by the API server, not written by the chart.
    const deployment = objects.find((o) => o.kind === 'Deployment') as Deployment;
    expect(deployment.spec.strategy.type).toBe('RollingUpdate');
    expect(deployment.spec.template.spec.restartPolicy).toBe('Always');
    expect(deployment.spec.template.spec.containers[0]?.terminationMessagePath).toBe('/dev/termination-log');
    // dry run: nothing was stored
    expect((await cp.kubectl(['get', 'deployment', 'demo', '-n', 'demo'])).exitCode).not.toBe(0);
  });

  it('renders values given as an object (a values file) under a release of another name', async () => {
    const yaml = await bed.render(['--show-only', 'templates/deployment.yaml'], {
      release: 'other',
      values: { replicas: 3, image: { tag: '9.9.9' } },
    });
    const [deployment] = await bed.dryRun<Deployment>(yaml, NS);
    expect(deployment?.metadata.name).toBe('other');
    expect(deployment?.spec.replicas).toBe(3);
    expect(yaml).toContain('image: "ghcr.io/knet/demo:9.9.9"');
  });

  it('refuses values that break values.schema.json, naming the value in one line', async () => {
    // `.` matches no newline and the pattern is anchored at both ends: the message is one line.
    await expect(bed.render(['--set', 'port=70000'])).rejects.toThrow(
      /^helm template demo \S+ failed \(exit 1\): .*port: Must be less than or equal to 65535.*$/,
    );
  });

  it('the API server rejects an object it finds invalid, even when helm renders it', async () => {
    const yaml = await bed.render(['--set', 'image.pullPolicy=Always', '--set', 'replicas=0']);
    const broken = yaml.replace('name: demo\n  labels', 'name: Not_A_DNS_Name\n  labels');
    await expect(bed.dryRun(broken, NS)).rejects.toThrow(
      /^kubectl apply --dry-run=server of \S+ failed \(exit 1\): .*Not_A_DNS_Name.*(invalid|a lowercase RFC 1123).*$/,
    );
  });

  it('applies the RBAC for real, and the ServiceAccount may do what its Role says and nothing more (canI)', async () => {
    const applied = await bed.apply(await bed.render(['--show-only', 'templates/rbac.yaml']), NS);
    expect(applied.map(resourceName).sort()).toEqual([
      'role.rbac.authorization.k8s.io/demo',
      'rolebinding.rbac.authorization.k8s.io/demo',
      'serviceaccount/demo',
    ]);
    expect((await cp.kubectl(['get', 'role', 'demo', '-n', 'demo'])).exitCode).toBe(0);
    const sa = serviceAccountUser('demo', 'demo');
    expect(sa).toBe('system:serviceaccount:demo:demo');
    expect(await bed.canI(sa, ['get', 'secrets/demo-state', '-n', 'demo'])).toBe(true);
    expect(await bed.canI(sa, ['update', 'secrets/demo-state', '-n', 'demo'])).toBe(true);
    expect(await bed.canI(sa, ['get', 'secrets/other', '-n', 'demo'])).toBe(false);
    expect(await bed.canI(sa, ['list', 'secrets', '-n', 'demo'])).toBe(false);
    expect(await bed.canI(sa, ['get', 'secrets/demo-state', '-n', 'default'])).toBe(false);
    expect(
      await bed.canI(serviceAccountUser('demo', 'other'), ['get', 'secrets/demo-state', '-n', 'demo']),
    ).toBe(false);
  });

  it('canI throws one line when kubectl answers neither yes nor no', async () => {
    await expect(bed.canI('someone', ['get'])).rejects.toThrow(/^kubectl auth can-i get --as=someone: .+/);
  });

  it('finds charts of the workspace by name and refuses a directory without Chart.yaml', () => {
    expect(new ChartBed(cp, { chart: 'tower-proxy', release: 'x', namespace: 'y' }).chart).toMatch(
      /\/charts\/tower-proxy$/,
    );
    expect(() => new ChartBed(cp, { chart: __dirname, release: 'x', namespace: 'y' })).toThrow(
      `ChartBed: ${__dirname} is not a chart (no Chart.yaml)`,
    );
  });
});
