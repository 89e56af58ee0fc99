import { existsSync, readFileSync } from 'node:fs';
import { ControlPlane } from '../src';

jest.setTimeout(60_000);

describe('the control plane of the test bed', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start({ controllerManager: true });
  }, 120_000);

  afterAll(async () => {
    await cp?.stop();
  });

  it('is a real kube-apiserver of the pinned version with RBAC on and an admin in system:masters', async () => {
    const v = JSON.parse(await cp.kubectlOk(['version', '-o', 'json'])) as {
      serverVersion: { gitVersion: string; major: string; minor: string };
    };
    expect(v.serverVersion).toMatchObject({ gitVersion: 'v1.34.4', major: '1', minor: '34' });
    const who = await cp.kubectlOk(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.groups}']);
    expect(who).toContain('system:masters');
    expect(await cp.kubectlOk(['api-versions'])).toContain('rbac.authorization.k8s.io/v1');
  });

  it('runs kube-controller-manager: a deleted namespace is finalized and a Deployment gets a ReplicaSet', async () => {
    await cp.kubectlOk(['create', 'namespace', 'gone']);
    await cp.kubectlOk(['create', 'deployment', 'web', '--image=registry.invalid/web:1', '-n', 'gone']);
    await cp.kubectlOk([
      'wait',
      '--for=create',
      'replicaset',
      '-l',
      'app=web',
      '-n',
      'gone',
      '--timeout=30s',
    ]);
    await cp.kubectlOk(['delete', 'namespace', 'gone', '--wait=true', '--timeout=60s']);
    expect((await cp.kubectl(['get', 'namespace', 'gone'])).stderr).toContain('NotFound');
  });

  it('gives a ServiceAccount kubeconfig whose rights are exactly its RBAC', async () => {
    const file = await cp.serviceAccountKubeconfig('app', 'runner');
    const can = (verb: string, res: string) =>
      cp.kubectl(['auth', 'can-i', verb, res, '-n', 'app'], { kubeconfig: file });
    expect((await can('get', 'secrets')).stdout).toBe('no');
    await cp.grant('app', 'runner', { verbs: ['get'], resources: ['secrets'], role: 'read-secrets' });
    expect((await can('get', 'secrets')).stdout).toBe('yes');
    expect((await can('list', 'secrets')).stdout).toBe('no');
    const who = await cp.kubectlOk(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], {
      kubeconfig: file,
    });
    expect(who).toBe('system:serviceaccount:app:runner');
  });

  it('survives an API server crash with its data (etcd keeps state)', async () => {
    await cp.kubectlOk(['create', 'configmap', 'keep', '--from-literal=a=1']);
    await cp.restart('kube-apiserver', { crash: true });
    expect(await cp.kubectlOk(['get', 'configmap', 'keep', '-o', 'jsonpath={.data.a}'])).toBe('1');
  });
});

describe('tear-down', () => {
  it('stops every process and removes its files, also when asked twice', async () => {
    const cp = await ControlPlane.start();
    const pids = ['etcd', 'kube-apiserver'].map((n) => cp.process(n)!.pid);
    const dir = cp.dir;
    expect(readFileSync(cp.kubeconfigPath, 'utf8')).toContain('certificate-authority-data');
    await cp.stop();
    await cp.stop();
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
    expect(existsSync(dir)).toBe(false);
  }, 120_000);
});
