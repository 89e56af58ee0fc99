import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane } from '../src';

jest.setTimeout(60_000);

const chart = join(__dirname, 'fixtures/chart');
let cp: ControlPlane;

beforeAll(async () => {
  cp = await ControlPlane.start();
  await cp.kubectlOk(['create', 'namespace', 'demo']);
}, 120_000);

afterAll(async () => {
  await cp?.stop();
});

describe('real helm against the real API server', () => {
  it('lints the chart', async () => {
    const r = await cp.helm(['lint', '--strict', chart]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.exitCode).toBe(0);
  });

  it('renders it, and the API server accepts every object (kubectl apply --dry-run=server)', async () => {
    const r = await cp.helm(['template', 'demo', chart, '--namespace', 'demo']);
    expect(r.exitCode).toBe(0);
    const file = join(cp.dir, 'rendered.yaml');
    writeFileSync(file, r.stdout);
    const applied = await cp.kubectlOk(['apply', '--dry-run=server', '-n', 'demo', '-f', file]);
    expect(applied.split('\n').sort()).toEqual([
      'deployment.apps/demo created (server dry run)',
      'role.rbac.authorization.k8s.io/demo created (server dry run)',
      'rolebinding.rbac.authorization.k8s.io/demo created (server dry run)',
      'serviceaccount/demo created (server dry run)',
    ]);
    // dry run: nothing was stored
    expect((await cp.kubectl(['get', 'deployment', 'demo', '-n', 'demo'])).exitCode).not.toBe(0);
  });

  it('refuses values that break values.schema.json, naming the value', async () => {
    const r = await cp.helm(['template', 'demo', chart, '--set', 'port=70000']);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/port: Must be less than or equal to 65535/);
  });

  it('the API server rejects an object it finds invalid, even when helm renders it', async () => {
    const r = await cp.helm([
      'template',
      'demo',
      chart,
      '--set',
      'image.pullPolicy=Always',
      '--set',
      'replicas=0',
    ]);
    expect(r.exitCode).toBe(0);
    const broken = r.stdout.replace('name: demo\n  labels', 'name: Not_A_DNS_Name\n  labels');
    const file = join(cp.dir, 'broken.yaml');
    writeFileSync(file, broken);
    const applied = await cp.kubectl(['apply', '--dry-run=server', '-n', 'demo', '-f', file]);
    expect(applied.exitCode).not.toBe(0);
    expect(applied.stderr).toMatch(/Not_A_DNS_Name.*(invalid|a lowercase RFC 1123)/);
  });
});
