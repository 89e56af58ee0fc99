import { createCertificateAuthority } from '@knet/crypto';
import { loadKubeConfig } from '@knet/k8s';
import { ControlPlane } from '@knet/testing';
import { generateHostKey } from '@knet/tunnel';
import { loadOrCreateCa, loadOrCreateHostKey, publishProxyInfo } from '../src/state';

jest.setTimeout(120_000);

let cp: ControlPlane | undefined;
afterAll(async () => {
  await cp?.stop();
});

it('a missing namespace is one line saying what, where and how to fix it (host key, CA, info ConfigMap)', async () => {
  cp = await ControlPlane.start();
  const { kc } = loadKubeConfig({ kubeconfig: cp.kubeconfigPath });
  const fix = 'create it (kubectl create namespace nowhere) or choose an existing one with --namespace';
  const ca = await createCertificateAuthority('test-ca');
  const failures = await Promise.all(
    [
      loadOrCreateHostKey(kc, 'nowhere', 'tower-proxy-host-key'),
      loadOrCreateCa(kc, 'nowhere', 'tower-proxy-ca'),
      publishProxyInfo(kc, 'nowhere', 'tower-proxy', { hostKey: generateHostKey(), ca, version: 't' }),
    ].map((p) =>
      p.then(
        () => 'no error',
        (e: unknown) => (e instanceof Error ? e.message : String(e)),
      ),
    ),
  );
  expect(failures).toEqual([
    `namespace nowhere does not exist: tower-proxy keeps its SSH host key (Secret tower-proxy-host-key) there; ${fix}`,
    `namespace nowhere does not exist: tower-proxy keeps its CA (Secret tower-proxy-ca) there; ${fix}`,
    `namespace nowhere does not exist: tower-proxy keeps its info ConfigMap tower-proxy there; ${fix}`,
  ]);
  // Once it exists, the same calls succeed.
  await cp.kubectlOk(['create', 'namespace', 'nowhere']);
  const hostKey = await loadOrCreateHostKey(kc, 'nowhere', 'tower-proxy-host-key');
  expect(hostKey.fingerprint).toMatch(/^SHA256:/);
  await publishProxyInfo(kc, 'nowhere', 'tower-proxy', { hostKey, ca, version: 't' });
  const published = await cp.kubectlOk([
    '-n',
    'nowhere',
    'get',
    'configmap',
    'tower-proxy',
    '-o',
    "jsonpath={.data.fingerprint} {.metadata.labels['app\\.kubernetes\\.io/managed-by']}",
  ]);
  expect(published).toBe(`${hostKey.fingerprint} tower-proxy`);
});
