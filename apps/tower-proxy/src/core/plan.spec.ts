import type { Cluster } from '@knet/cluster-crd';
import {
  allocatePorts,
  conditionsUpdate,
  desiredConditions,
  desiredExternalService,
  desiredService,
  externalServiceName,
  endpoints,
  lbAnnotations,
  servingNames,
  withoutTunnelConditions,
} from './plan';

const cluster = (name: string, port?: number, extra: Partial<Cluster> = {}): Cluster => ({
  apiVersion: 'cluster.kubesphere.io/v1alpha1',
  kind: 'Cluster',
  metadata: { name, uid: `uid-${name}` },
  spec: {
    joinFederation: true,
    connection: { type: 'proxy', ...(port ? { kubernetesAPIServerPort: port } : {}) },
  },
  ...extra,
});
const range = { min: 6000, max: 6003, kubesphereOffset: 10_000 };

describe('allocatePorts', () => {
  it.each([
    ['a fresh cluster gets the lowest free port', cluster('a'), [], 6000],
    ['keeps its own valid port', cluster('a', 6002), [cluster('b', 6000)], 6002],
    ['skips ports of others', cluster('c'), [cluster('a', 6000), cluster('b', 6001)], 6002],
    ['a port outside the range is replaced', cluster('a', 80), [], 6000],
    ['on a duplicate the name that sorts first keeps it', cluster('a', 6000), [cluster('b', 6000)], 6000],
    ['and the other moves', cluster('b', 6000), [cluster('a', 6000)], 6001],
    ['itself in the list does not count', cluster('a', 6001), [cluster('a', 6001)], 6001],
    [
      'three on one port: only the first name keeps it',
      cluster('b', 6000),
      [cluster('a', 6000), cluster('c', 6000)],
      6001,
    ],
    ['the last of three moves too', cluster('c', 6000), [cluster('a', 6000), cluster('b', 6000)], 6001],
    [
      "a direct cluster's leftover port is not taken: the cluster keeps it",
      cluster('b', 6000),
      [cluster('a', 6000, { spec: { connection: { type: 'direct', kubernetesAPIServerPort: 6000 } } })],
      6000,
    ],
    [
      'nor is the port of a cluster that left the federation',
      cluster('c'),
      [
        cluster('a', 6000, {
          spec: { joinFederation: false, connection: { type: 'proxy', kubernetesAPIServerPort: 6000 } },
        }),
      ],
      6000,
    ],
    [
      'a Cluster being deleted keeps its port (it is still served)',
      cluster('b', 6000),
      [cluster('a', 6000, { metadata: { name: 'a', deletionTimestamp: new Date(0) } })],
      6001,
    ],
  ])('%s', (_what, c, others, want) => {
    expect(allocatePorts(c, others, range)).toEqual({ kubernetes: want, kubesphere: want + 10_000 });
  });

  it('fails with a clear message when the range is full', () => {
    expect(() =>
      allocatePorts(cluster('d'), [cluster('a', 6000), cluster('b', 6001), cluster('c', 6002)], range),
    ).toThrow('no free port left in [6000, 6003) for cluster d');
  });
});

describe('Service, endpoints, names', () => {
  it('renders mc-<name> as ClusterIP with both ports, ext-mc-<name> as a LoadBalancer of the kubernetes port only', () => {
    const o = { namespace: 'ks', selector: { app: 'tower' } };
    expect(desiredService(cluster('a'), { kubernetes: 6000, kubesphere: 16000 }, o)).toMatchSnapshot();
    const ext = cluster('b', 6001, {});
    ext.spec!.externalKubeAPIEnabled = true;
    const ports = { kubernetes: 6001, kubesphere: 16001 };
    // External access changes nothing inside: same Service, same endpoints.
    const internal = desiredService(ext, ports, o);
    expect(internal.metadata.name).toBe('mc-b');
    expect(internal.spec.type).toBe('ClusterIP');
    expect(internal.metadata.annotations).toEqual({});
    expect(internal.spec.ports.map((p) => p.name)).toEqual(['kubernetes', 'kubesphere']);
    const lb = desiredExternalService(ext, ports, o, { 'lb/x': 'y' });
    expect(lb).toMatchSnapshot();
    // The kubesphere port (plain HTTP, no authentication) is never on the LoadBalancer.
    expect(lb.spec.ports).toEqual([{ name: 'kubernetes', protocol: 'TCP', port: 6443, targetPort: 6001 }]);
    expect(lb.metadata.labels).toEqual(internal.metadata.labels);
    expect(lb.metadata.ownerReferences).toEqual(internal.metadata.ownerReferences);
  });

  it("names the LoadBalancer so that no cluster name makes it another cluster's mc- Service", () => {
    for (const name of ['a', 'a-external', 'ext', 'mc-a', 'ext-mc-a'])
      expect(externalServiceName(name).startsWith('mc-')).toBe(false);
    expect(externalServiceName('a')).toBe('ext-mc-a');
  });

  it.each([
    [undefined, { ok: true, annotations: {} }],
    ['{"a":"b"}', { ok: true, annotations: { a: 'b' } }],
    [
      'nope',
      { ok: false, message: 'annotation tower.kubesphere.io/external-lb-service-annoations is not JSON' },
    ],
    [
      '{"a":1}',
      {
        ok: false,
        message:
          'annotation tower.kubesphere.io/external-lb-service-annoations must be a JSON object of strings',
      },
    ],
  ])('lb annotations %p', (raw, want) => {
    const c = cluster('a');
    if (raw) c.metadata.annotations = { 'tower.kubesphere.io/external-lb-service-annoations': raw };
    expect(lbAnnotations(c)).toEqual(want);
  });

  it.each([
    [
      { clusterIP: '10.0.0.5' },
      undefined,
      { kubernetesAPIEndpoint: 'https://10.0.0.5:6443', kubesphereAPIEndpoint: 'http://10.0.0.5:80' },
    ],
    [
      { clusterIP: 'fd00::5' },
      undefined,
      { kubernetesAPIEndpoint: 'https://[fd00::5]:6443', kubesphereAPIEndpoint: 'http://[fd00::5]:80' },
    ],
    [
      { clusterIP: '10.0.0.5' },
      '127.0.0.1',
      { kubernetesAPIEndpoint: 'https://127.0.0.1:6000', kubesphereAPIEndpoint: 'http://127.0.0.1:16000' },
    ],
    [
      { clusterIP: '10.0.0.5', ingress: 'lb.example.com' },
      undefined,
      {
        kubernetesAPIEndpoint: 'https://10.0.0.5:6443',
        kubesphereAPIEndpoint: 'http://10.0.0.5:80',
        externalKubernetesAPIEndpoint: 'https://lb.example.com:6443',
      },
    ],
    [{}, undefined, {}],
  ])('endpoints for %p published at %p', (svc, publish, want) => {
    expect(endpoints({ kubernetes: 6000, kubesphere: 16000 }, svc, publish)).toEqual(want);
  });

  it('covers the Service names, the ClusterIP, the published address and the LB in the serving certificate', () => {
    expect(
      servingNames('a', 'ks', { clusterIP: '10.0.0.5', ingress: 'lb.example.com' }, '127.0.0.1'),
    ).toEqual({
      dnsNames: [
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'mc-a',
        'mc-a.ks',
        'mc-a.ks.svc',
        'lb.example.com',
      ],
      ipAddresses: ['10.0.0.5', '127.0.0.1'],
    });
  });
});

describe('desiredConditions', () => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:05:00Z');

  it('reports Initialized and AgentAvailable, moving lastTransitionTime only on a change of status', () => {
    const c = cluster('a');
    c.status = { conditions: desiredConditions(c, { initialized: { ok: true }, agents: 0 }, t0) };
    expect(c.status.conditions).toMatchSnapshot();
    const later = desiredConditions(c, { initialized: { ok: true }, agents: 2 }, t1);
    const agent = later.find((x) => x.type === 'AgentAvailable')!;
    expect(agent).toMatchObject({
      status: 'True',
      message: 'an agent is connected to the proxy',
      lastTransitionTime: '2026-01-01T00:05:00Z',
    });
    expect(later.find((x) => x.type === 'Initialized')!.lastUpdateTime).toBe('2026-01-01T00:00:00Z'); // untouched
  });

  it('a second or third agent changes nothing: no write at each agent connection, no stale count', () => {
    const c = cluster('a');
    c.status = { conditions: desiredConditions(c, { initialized: { ok: true }, agents: 1 }, t0) };
    for (const agents of [2, 3, 1])
      expect(conditionsUpdate(c, { initialized: { ok: true }, agents }, t1)).toBeUndefined();
  });

  it.each([
    ['no conditions', [], undefined],
    ['only conditions it does not own, and Initialized', [['Ready'], ['Initialized']], undefined],
    [
      "a served cluster's",
      [['Ready'], ['Initialized'], ['AgentAvailable'], ['ExternalAccessReady']],
      ['Ready', 'Initialized'],
    ],
  ])('a Cluster no longer served loses the tunnel conditions: %s', (_what, types, want) => {
    const c = cluster('a');
    c.status = { conditions: types.map(([type]) => ({ type: type!, status: 'True' })) };
    expect(withoutTunnelConditions(c)?.map((x) => x.type)).toEqual(want);
  });

  it('tracks external access only while it is enabled, and keeps conditions it does not own', () => {
    const c = cluster('a');
    c.status = { conditions: [{ type: 'Ready', status: 'True' }] };
    const waiting = desiredConditions(
      c,
      { initialized: { ok: true }, agents: 0, external: { enabled: true } },
      t0,
    );
    expect(waiting.map((x) => [x.type, x.status, x.reason])).toEqual([
      ['Ready', 'True', undefined],
      ['Initialized', 'True', 'Initialized'],
      ['AgentAvailable', 'False', 'NoAgent'],
      ['ExternalAccessReady', 'False', 'WaitingForLoadBalancer'],
    ]);
    c.status.conditions = waiting;
    const off = desiredConditions(
      c,
      { initialized: { ok: true }, agents: 0, external: { enabled: false } },
      t1,
    );
    expect(off.map((x) => x.type)).toEqual(['Ready', 'Initialized', 'AgentAvailable']);
  });

  it('says why there is no LoadBalancer at all, over the annotation and the ingress', () => {
    const c = desiredConditions(
      cluster('a'),
      {
        initialized: { ok: true },
        agents: 1,
        external: {
          enabled: true,
          ingress: '203.0.113.1',
          annotationError: 'bad',
          unavailable: { reason: 'NameTooLong', message: 'too long' },
        },
      },
      t0,
    );
    expect(c.find((x) => x.type === 'ExternalAccessReady')).toMatchObject({
      status: 'False',
      reason: 'NameTooLong',
      message: 'too long',
    });
  });
});
