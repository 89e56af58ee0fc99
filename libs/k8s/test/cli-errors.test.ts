import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlPlaneBed } from './bed';

jest.setTimeout(60_000);

const bed = controlPlaneBed({ script: 'fixtures/check-cluster.ts' });

function runCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bed.script, ...args], {
    env: { PATH: process.env['PATH'], HOME: bed.cp.dir, ...env },
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('an app given bad input prints one clear line and exits non-zero', () => {
  it('works with a good kubeconfig', () => {
    expect(runCli(['--kubeconfig', bed.cp.kubeconfigPath])).toEqual({
      code: 0,
      stdout: 'v1.34.4\n',
      stderr: '',
    });
  });

  it('a kubeconfig that does not exist', () => {
    expect(runCli(['--kubeconfig', '/nonexistent'])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'check-cluster: kubeconfig /nonexistent (from --kubeconfig) cannot be read: no such file\n',
    });
  });

  it('no credentials at all', () => {
    const r = runCli([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'check-cluster: no Kubernetes credentials: not running in a cluster, $KUBECONFIG unset and ~/.kube/config missing; pass --kubeconfig\n',
    );
  });

  it('a kubeconfig whose user the API server rejects', () => {
    const file = join(bed.cp.dir, 'wrong-user.kubeconfig');
    writeFileSync(
      file,
      readFileSync(bed.cp.kubeconfigPath, 'utf8').replace(
        /client-certificate-data: .*\n\s*client-key-data: .*\n/,
        'token: "not-a-token"\n',
      ),
    );
    const r = runCli(['--kubeconfig', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^check-cluster: API server https:\/\/127\.0\.0\.1:\d+: 401 Unauthorized: .*credentials rejected.*\n$/,
    );
  });

  it('an unreachable API server', () => {
    const file = join(bed.cp.dir, 'unreachable.kubeconfig');
    writeFileSync(
      file,
      readFileSync(bed.cp.kubeconfigPath, 'utf8').replace(/127\.0\.0\.1:\d+/, '127.0.0.1:1'),
    );
    const r = runCli(['--kubeconfig', file]);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toHaveLength(2); // one line + the final newline
    expect(r.stderr).toMatch(
      /^check-cluster: API server https:\/\/127\.0\.0\.1:1: cannot reach the API server \(ECONNREFUSED/,
    );
  });

  it('an invalid flag value is a usage error (exit 2) naming the flag and env var', () => {
    const r = runCli(['--kubeconfig', bed.cp.kubeconfigPath, '--timeout', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^check-cluster: error: --timeout \(CHECK_TIMEOUT\): .*"soon"\n$/);
  });
});
