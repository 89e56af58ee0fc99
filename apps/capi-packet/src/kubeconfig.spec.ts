import { KubeConfig } from '@kubernetes/client-node';
import {
  KubeconfigError,
  contextNamespace,
  readClusterKubeconfig,
  type KubeconfigErrorKind,
  type SecretReader,
} from './kubeconfig';

const KUBECONFIG = 'apiVersion: v1\nkind: Config\nclusters: []\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** Secrets by namespace/name, as the API server would return them (data base64). */
class FakeSecrets implements SecretReader {
  readonly reads: string[] = [];
  constructor(private readonly secrets: Record<string, Record<string, string>>) {}
  async get(namespace: string, name: string) {
    this.reads.push(`${namespace}/${name}`);
    const data = this.secrets[`${namespace}/${name}`];
    return data ? { data } : undefined;
  }
}

describe('readClusterKubeconfig', () => {
  it('reads key value of <cluster>-kubeconfig in the namespace, decoded', async () => {
    const secrets = new FakeSecrets({ 'clusters/c1-kubeconfig': { value: b64(KUBECONFIG) } });
    expect(await readClusterKubeconfig(secrets, 'clusters', 'c1')).toBe(KUBECONFIG);
    expect(secrets.reads).toEqual(['clusters/c1-kubeconfig']);
  });

  it.each<[string, Record<string, Record<string, string>>, KubeconfigErrorKind, string]>([
    [
      'no Secret',
      { 'other/c1-kubeconfig': { value: b64(KUBECONFIG) } },
      'no-secret',
      'no Secret clusters/c1-kubeconfig: Cluster c1 is not in namespace clusters (kubectl get clusters -A), or its control plane is not initialized yet',
    ],
    [
      'a Secret without value',
      { 'clusters/c1-kubeconfig': { kubeconfig: b64(KUBECONFIG) } },
      'no-key',
      'Secret clusters/c1-kubeconfig has no key "value": it is not a Cluster API kubeconfig Secret',
    ],
  ])('%s: a typed error, one line', async (_what, data, kind, message) => {
    const e = await readClusterKubeconfig(new FakeSecrets(data), 'clusters', 'c1').catch(
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(KubeconfigError);
    expect([(e as KubeconfigError).kind, (e as KubeconfigError).message]).toEqual([kind, message]);
  });
});

describe('contextNamespace', () => {
  const kc = (namespace?: string) => {
    const k = new KubeConfig();
    k.loadFromOptions({
      clusters: [{ name: 'm', server: 'https://127.0.0.1:6443' }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'ctx', cluster: 'm', user: 'u', ...(namespace ? { namespace } : {}) }],
      currentContext: 'ctx',
    });
    return k;
  };
  it.each<[string | undefined, string]>([
    ['clusters', 'clusters'],
    [undefined, 'default'],
  ])('context namespace %s → %s', (ns, want) => {
    expect(contextNamespace(kc(ns))).toBe(want);
  });
});
