import type { Cluster, Connection } from '@knet/cluster-crd';
import { planCluster, planConnection, type PlanConfig, type ServePlan } from './cluster-plan';

const config: PlanConfig = {
  serviceNamespace: 'ks',
  serviceSelector: { app: 'tower' },
  portRange: { min: 6000, max: 6002, kubesphereOffset: 10_000 },
};
const LB = 'tower.kubesphere.io/external-lb-service-annoations';

const cluster = (
  name: string,
  connection: Connection = {},
  o: {
    external?: boolean;
    annotation?: string;
    deleting?: boolean;
    type?: 'proxy' | 'direct';
    join?: boolean;
  } = {},
): Cluster => ({
  apiVersion: 'cluster.kubesphere.io/v1alpha1',
  kind: 'Cluster',
  metadata: {
    name,
    uid: `uid-${name}`,
    ...(o.annotation ? { annotations: { [LB]: o.annotation } } : {}),
    ...(o.deleting ? { deletionTimestamp: new Date('2026-01-01T00:00:00Z') } : {}),
  },
  spec: {
    joinFederation: o.join ?? true,
    ...(o.external ? { externalKubeAPIEnabled: true } : {}),
    connection: { type: o.type ?? 'proxy', ...connection },
  },
});

const plan = (c: Cluster | undefined, others: Cluster[] = []) =>
  planCluster({ cluster: c, clusters: [...(c ? [c] : []), ...others], newToken: 'new-token' }, config);

const serve = (c: Cluster, others: Cluster[] = []): ServePlan => {
  const p = plan(c, others);
  if (p.action !== 'serve') throw new Error(`expected serve, got ${p.action}`);
  return p;
};

describe('planCluster', () => {
  it.each([
    ['a deleted cluster', undefined, { action: 'cleanup', why: 'deleted' }],
    [
      'a direct cluster being deleted',
      cluster('a', {}, { deleting: true, type: 'direct' }),
      { action: 'cleanup', why: 'no longer a proxy cluster' },
    ],
    [
      'a direct cluster',
      cluster('a', {}, { type: 'direct' }),
      { action: 'cleanup', why: 'no longer a proxy cluster' },
    ],
    [
      'a cluster outside the federation',
      cluster('a', {}, { join: false }),
      { action: 'cleanup', why: 'no longer a proxy cluster' },
    ],
  ])('%s is cleaned up', (_what, c, want) => {
    expect(plan(c)).toEqual(want);
  });

  it('a proxy cluster being deleted is held as it is until it is gone (KubeSphere unjoins it through the tunnel)', () => {
    const c = cluster('a', { token: 't', kubernetesAPIServerPort: 6000 }, { deleting: true });
    expect(plan(c)).toEqual({ action: 'hold', cluster: c });
  });

  it.each([
    ['a new cluster gets a token and the first ports', cluster('a'), [], 'new-token', 6000],
    ['a token is never replaced', cluster('a', { token: 'mine' }), [], undefined, 6000],
    [
      'its own ports are kept',
      cluster('a', { token: 't', kubernetesAPIServerPort: 6001 }),
      [],
      undefined,
      6001,
    ],
    [
      "another cluster's port is skipped",
      cluster('b', { token: 't' }),
      [cluster('a', { kubernetesAPIServerPort: 6000 })],
      undefined,
      6001,
    ],
  ])('%s', (_what, c, others, token, port) => {
    const p = serve(c, others);
    expect(p.token).toBe(token);
    expect(p.ports).toEqual({ kubernetes: port, kubesphere: port + 10_000 });
    expect(p.service.spec.ports.map((x) => x.targetPort)).toEqual([port, port + 10_000]);
    expect(p.service.metadata).toMatchObject({ name: `mc-${c.metadata.name}`, namespace: 'ks' });
    expect(p.events).toEqual([]);
  });

  it('fails with Initialized=False (NoFreePort) when the range is full', () => {
    const full = [
      cluster('a', { kubernetesAPIServerPort: 6000 }),
      cluster('b', { kubernetesAPIServerPort: 6001 }),
    ];
    expect(plan(cluster('c'), full)).toEqual({
      action: 'fail',
      cluster: cluster('c'),
      message: 'no free port left in [6000, 6002) for cluster c',
      status: {
        initialized: {
          ok: false,
          reason: 'NoFreePort',
          message: 'no free port left in [6000, 6002) for cluster c',
        },
      },
    });
  });

  it('a name too long for ext-mc-<name> (63 characters): served all the same, no LoadBalancer, and why', () => {
    const longest = 'a'.repeat(56); // ext-mc- + 56 = 63
    expect(serve(cluster(longest, { token: 't' }, { external: true })).external?.metadata.name).toBe(
      `ext-mc-${longest}`,
    );
    const name = 'b'.repeat(57);
    const p = serve(cluster(name, { token: 't' }, { external: true }));
    expect(p.service.metadata.name).toBe(`mc-${name}`);
    expect(p.external).toBeUndefined();
    const why = {
      reason: 'NameTooLong',
      message: `no LoadBalancer: its Service ext-mc-${name} would be longer than 63 characters; external access needs a Cluster name of at most 56`,
    };
    expect(p.externalUnavailable).toEqual(why);
    expect(p.events).toEqual([{ type: 'Warning', ...why }]);
    expect(planConnection(p, { clusterIP: '10.96.0.5' }, config).status.external).toEqual({
      enabled: true,
      unavailable: why,
    });
    // Without external access the name is no matter.
    expect(serve(cluster(name, { token: 't' })).externalUnavailable).toBeUndefined();
  });

  it.each([
    [
      'external access with valid annotations',
      { external: true, annotation: '{"lb/x":"y"}' },
      { 'lb/x': 'y' },
      [],
    ],
    ['annotations without external access', { annotation: '{"lb/x":"y"}' }, undefined, []],
    [
      'invalid annotations: none, and a warning',
      { external: true, annotation: 'nope' },
      {},
      [{ type: 'Warning', reason: 'InvalidAnnotation', message: `annotation ${LB} is not JSON` }],
    ],
  ] as const)('the Services with %s', (_what, o, annotations, events) => {
    const p = serve(cluster('a', { token: 't' }, o));
    // mc-<name> is the same either way: inside the host cluster, both ports, no annotations.
    expect(p.service.metadata.name).toBe('mc-a');
    expect(p.service.spec.type).toBe('ClusterIP');
    expect(p.service.metadata.annotations).toEqual({});
    if (annotations === undefined) expect(p.external).toBeUndefined();
    else {
      expect(p.external?.metadata.name).toBe('ext-mc-a');
      expect(p.external?.spec.type).toBe('LoadBalancer');
      expect(p.external?.spec.ports.map((x) => x.name)).toEqual(['kubernetes']);
      expect(p.external?.metadata.annotations).toEqual(annotations);
    }
    expect(p.events).toEqual(events);
    expect(p.annotationError).toBe(events.length ? `annotation ${LB} is not JSON` : undefined);
  });
});

describe('planConnection', () => {
  const ports = { kubernetesAPIServerPort: 6000, kubesphereAPIServerPort: 16000 };
  const done = {
    token: 't',
    ...ports,
    kubernetesAPIEndpoint: 'https://10.96.0.5:6443',
    kubesphereAPIEndpoint: 'http://10.96.0.5:80',
  };

  it.each([
    [
      'a new cluster: token, ports and endpoints',
      cluster('a'),
      { clusterIP: '10.96.0.5' },
      {
        token: 'new-token',
        ...ports,
        kubernetesAPIEndpoint: 'https://10.96.0.5:6443',
        kubesphereAPIEndpoint: 'http://10.96.0.5:80',
      },
      ['set kubernetesAPIServerPort, kubesphereAPIServerPort, kubernetesAPIEndpoint, kubesphereAPIEndpoint'],
    ],
    ['a served cluster: nothing', cluster('a', done), { clusterIP: '10.96.0.5' }, {}, []],
    [
      'a new ClusterIP: the endpoints',
      cluster('a', done),
      { clusterIP: '10.96.0.9' },
      { kubernetesAPIEndpoint: 'https://10.96.0.9:6443', kubesphereAPIEndpoint: 'http://10.96.0.9:80' },
      ['set kubernetesAPIEndpoint, kubesphereAPIEndpoint'],
    ],
    [
      'a LoadBalancer ingress: the external endpoint',
      cluster('a', done, { external: true }),
      { clusterIP: '10.96.0.5', ingress: '203.0.113.10' },
      { externalKubernetesAPIEndpoint: 'https://203.0.113.10:6443' },
      ['set externalKubernetesAPIEndpoint'],
    ],
    [
      'a Service without a ClusterIP yet: only the ports',
      cluster('a', { token: 't' }),
      {},
      ports,
      ['set kubernetesAPIServerPort, kubesphereAPIServerPort'],
    ],
  ])('%s', (_what, c, svc, connection, updated) => {
    const p = planConnection(serve(c), svc, config);
    expect(p.connection).toEqual(connection);
    expect(p.events).toEqual(
      updated.map((message) => ({ type: 'Normal', reason: 'ConnectionUpdated', message })),
    );
  });

  it('a token alone is written without an event (it is no news to anyone)', () => {
    const c = cluster('a', { ...done, token: undefined });
    expect(planConnection(serve(c), { clusterIP: '10.96.0.5' }, config)).toMatchObject({
      connection: { token: 'new-token' },
      events: [],
    });
  });

  it('the kubeconfig names the Kubernetes endpoint, or there is none yet', () => {
    expect(planConnection(serve(cluster('a')), { clusterIP: '10.96.0.5' }, config).kubeconfigServer).toBe(
      'https://10.96.0.5:6443',
    );
    expect(planConnection(serve(cluster('a')), {}, config).kubeconfigServer).toBeUndefined();
  });

  it('publishes the listener ports at --publish-service-address, which the certificate covers', () => {
    const p = planConnection(
      serve(cluster('a')),
      { clusterIP: '10.96.0.5' },
      { ...config, publishAddress: '127.0.0.1' },
    );
    expect(p.kubeconfigServer).toBe('https://127.0.0.1:6000');
    expect(p.connection.kubesphereAPIEndpoint).toBe('http://127.0.0.1:16000');
    expect(p.servingNames.ipAddresses).toEqual(['10.96.0.5', '127.0.0.1']);
    expect(p.servingNames.dnsNames).toContain('mc-a.ks.svc');
  });

  it.each([
    ['no external access', {}, {}, { enabled: false }],
    ['waiting for the load balancer', { external: true }, {}, { enabled: true }],
    [
      'reachable',
      { external: true },
      { ingress: 'lb.example.com' },
      { enabled: true, ingress: 'lb.example.com' },
    ],
    [
      'with an invalid annotation',
      { external: true, annotation: '[1]' },
      {},
      { enabled: true, annotationError: `annotation ${LB} must be a JSON object of strings` },
    ],
  ])('conditions: %s', (_what, o, svc, external) => {
    const p = planConnection(serve(cluster('a', done, o)), { clusterIP: '10.96.0.5', ...svc }, config);
    expect(p.status).toEqual({ initialized: { ok: true }, external });
  });
});
