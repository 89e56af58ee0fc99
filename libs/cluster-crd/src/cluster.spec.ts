import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setCondition } from '@knet/k8s';
import { clusterCrdPath, isProxyCluster, type Cluster, type ClusterCondition } from './cluster';

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

describe("KubeSphere's conditions through @knet/k8s setCondition (lastUpdateTime: true)", () => {
  const t0 = new Date('2026-01-01T00:00:00.500Z');
  const t1 = new Date('2026-01-01T01:00:00Z');
  const set = (
    list: ClusterCondition[],
    next: Omit<ClusterCondition, 'lastUpdateTime' | 'lastTransitionTime'>,
    now: Date,
  ) => setCondition(list, next, now, { lastUpdateTime: true });

  it('keeps both timestamps when nothing changes, moves lastUpdateTime on a new message, lastTransitionTime on a new status', () => {
    const a = set([], { type: 'AgentAvailable', status: 'False', reason: 'NoAgent', message: 'none' }, t0);
    expect(a).toEqual([
      {
        type: 'AgentAvailable',
        status: 'False',
        reason: 'NoAgent',
        message: 'none',
        lastUpdateTime: '2026-01-01T00:00:00Z',
        lastTransitionTime: '2026-01-01T00:00:00Z',
      },
    ]);
    expect(
      set(a, { type: 'AgentAvailable', status: 'False', reason: 'NoAgent', message: 'none' }, t1),
    ).toEqual(a);
    const b = set(
      a,
      { type: 'AgentAvailable', status: 'False', reason: 'NoAgent', message: 'still none' },
      t1,
    );
    expect(b[0]).toMatchObject({
      lastUpdateTime: '2026-01-01T01:00:00Z',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    });
    const d = set(b, { type: 'AgentAvailable', status: 'True', reason: 'Up', message: '1' }, t1);
    expect(d[0]).toMatchObject({ status: 'True', lastTransitionTime: '2026-01-01T01:00:00Z' });
  });
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
