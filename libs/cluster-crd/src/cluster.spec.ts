import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterCrdPath, isProxyCluster, type Cluster } from './cluster';

const c = (spec: Cluster['spec']): Cluster => ({
  apiVersion: 'cluster.kubesphere.io/v1alpha1',
  kind: 'Cluster',
  metadata: { name: 'a' },
  ...(spec ? { spec } : {}),
});

describe('isProxyCluster', () => {
  it.each([
    [{ joinFederation: true, connection: { type: 'proxy' as const } }, true],
    [{ joinFederation: false, connection: { type: 'proxy' as const } }, false],
    [{ joinFederation: true, connection: { type: 'direct' as const } }, false],
    [{ joinFederation: true }, false],
    [undefined, false],
  ])('%j → %p', (spec, want) => expect(isProxyCluster(c(spec))).toBe(want));
});

describe('the shipped CRD', () => {
  it('names every field tower reads and writes, without a status sub-resource (KubeSphere updates status in place)', () => {
    const yaml = readFileSync(clusterCrdPath(join(__dirname, '../../..')), 'utf8');
    for (const field of [
      'joinFederation',
      'externalKubeAPIEnabled',
      'kubesphereAPIEndpoint',
      'kubernetesAPIEndpoint',
      'externalKubernetesAPIEndpoint',
      'kubeconfig',
      'token',
      'kubernetesAPIServerPort',
      'kubesphereAPIServerPort',
      'lastUpdateTime',
      'lastTransitionTime',
    ]) {
      expect(yaml).toContain(`${field}:`);
    }
    expect(yaml).toContain('subresources: {}');
    expect(yaml).toContain('name: clusters.cluster.kubesphere.io');
  });
});
