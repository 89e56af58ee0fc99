import { X509Certificate, createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { KubeConfig } from '@kubernetes/client-node';
import type { Cluster } from '@knet/cluster-crd';
import {
  createCertificateAuthority,
  issueCertificate,
  renderKubeconfig,
  type CertificateAuthority,
} from '@knet/crypto';
import { getCondition, kubeconfigTls, statusError } from '@knet/k8s';
import { RecordingLogger, createMetricsRegistry, type Registry } from '@knet/runtime';
import { sleep, until } from '@knet/testing';
import { ClusterController, sessionBinding } from './controller';
import { FakeClusterStore } from './fakes/cluster-store';
import type { ListenerSpec } from './listeners';
import { createProxyMetrics } from './metrics';
import { SessionRegistry, type AgentSession } from './sessions';

jest.setTimeout(30_000);

const NS = 'kubesphere-system';
const LB = 'tower.kubesphere.io/external-lb-service-annoations';

/** Records what the controller asks of the per-cluster listeners; `failNext` makes one `ensure` fail. */
class FakeListeners {
  readonly ensured: ListenerSpec[] = [];
  readonly removed: string[] = [];
  readonly running = new Map<string, ListenerSpec>();
  private failure: Error | undefined;
  onEnsure: (() => void) | undefined;

  ensure(spec: ListenerSpec): Promise<void> {
    const f = this.failure;
    this.failure = undefined;
    if (f) return Promise.reject(f);
    this.ensured.push(spec);
    this.running.set(spec.cluster, spec);
    this.onEnsure?.();
    return Promise.resolve();
  }

  remove(cluster: string): Promise<void> {
    this.removed.push(cluster);
    this.running.delete(cluster);
    return Promise.resolve();
  }

  failNext(e: Error): void {
    this.failure = e;
  }
}

type FakeSession = AgentSession & { closedWith?: string };

/**
 * An agent of `cluster` connects: admitted against the Cluster as the store has it now (as the
 * tunnel server does with `authorize`); closing it drops it from the registry, as a real one does.
 */
function connect(b: Bed, cluster: string, id = 'session-1'): FakeSession {
  const c = b.store.cluster(cluster);
  if (!c) throw new Error(`no Cluster ${cluster}`);
  const s: FakeSession = {
    id,
    cluster,
    agent: 'pod-1',
    remoteAddress: '127.0.0.1',
    connectedAt: new Date(),
    binding: sessionBinding(c),
    targets: new Set(['kubernetes']),
    openChannels: 0,
    openChannel: () => Promise.reject(new Error('not in this test')) as Promise<Duplex>,
    close: (reason) => {
      s.closedWith = reason;
      b.registry.remove(s);
    },
  };
  b.registry.add(s);
  return s;
}

const proxyCluster = (
  name: string,
  spec: Partial<NonNullable<Cluster['spec']>> = {},
  annotations?: object,
) => ({
  metadata: { name, ...(annotations ? { annotations: annotations as Record<string, string> } : {}) },
  spec: { joinFederation: true, connection: { type: 'proxy' as const }, ...spec },
});

const condition = (c: Cluster | undefined, type: string) => getCondition(c?.status?.conditions, type);

let ca: CertificateAuthority;
beforeAll(async () => {
  ca = await createCertificateAuthority('test-ca');
});

interface Bed {
  store: FakeClusterStore;
  listeners: FakeListeners;
  registry: SessionRegistry;
  controller: ClusterController;
  metrics: Registry;
  logger: RecordingLogger;
  clock: { now: Date };
  /** What the controller scheduled (its renewal requeues), in order; `fire` runs one. */
  timers: Timer[];
  reconciles(result: 'ok' | 'error'): Promise<number>;
}

interface Timer {
  delayMs: number;
  state: 'pending' | 'fired' | 'cancelled';
  fire(): void;
}

function bed(
  o: {
    portRange?: { min: number; max: number };
    publishAddress?: string;
    concurrency?: number;
    /** 0 unless a test is about it: AgentAvailable follows the agents at once. */
    agentGracePeriodMs?: number;
  } = {},
): Bed {
  const store = new FakeClusterStore({ serviceNamespace: NS });
  const listeners = new FakeListeners();
  const registry = new SessionRegistry();
  const metrics = createMetricsRegistry({ defaultMetrics: false });
  const logger = new RecordingLogger();
  const clock = { now: new Date() };
  const timers: Timer[] = [];
  const controller = new ClusterController({
    store,
    ca,
    registry,
    listeners,
    metrics: createProxyMetrics(metrics),
    logger,
    serviceNamespace: NS,
    serviceSelector: { app: 'tower' },
    portRange: { min: 6000, max: 6010, kubesphereOffset: 10_000, ...o.portRange },
    ...(o.publishAddress ? { publishAddress: o.publishAddress } : {}),
    ...(o.concurrency ? { concurrency: o.concurrency } : {}),
    agentGracePeriodMs: o.agentGracePeriodMs ?? 0,
    now: () => clock.now,
    schedule: (fn, delayMs) => {
      const t: Timer = {
        delayMs,
        state: 'pending',
        fire: () => {
          t.state = 'fired';
          fn();
        },
      };
      timers.push(t);
      return () => {
        if (t.state === 'pending') t.state = 'cancelled';
      };
    },
  });
  const reconciles = async (result: 'ok' | 'error') =>
    (await metrics.getSingleMetric('tower_proxy_reconciles_total')!.get()).values.find(
      (v) => v.labels['result'] === result,
    )?.value ?? 0;
  return { store, listeners, registry, controller, metrics, logger, clock, timers, reconciles };
}

describe('ClusterController.reconcile on a fake store', () => {
  it('serves a new proxy Cluster: token, ports, Service, endpoints, kubeconfig, listeners, conditions, events', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');

    const c = b.store.cluster('alpha')!;
    const conn = c.spec!.connection!;
    expect(conn.token).toMatch(/^[0-9a-f]{64}$/);
    expect(conn).toMatchObject({
      kubernetesAPIServerPort: 6000,
      kubesphereAPIServerPort: 16000,
      kubernetesAPIEndpoint: 'https://10.96.0.10:6443',
      kubesphereAPIEndpoint: 'http://10.96.0.10:80',
    });
    const kc = new KubeConfig();
    kc.loadFromString(Buffer.from(conn.kubeconfig!, 'base64').toString());
    expect(kc.getCurrentCluster()?.server).toBe('https://10.96.0.10:6443');
    expect(b.store.service('alpha')?.spec).toMatchObject({ type: 'ClusterIP', selector: { app: 'tower' } });
    expect(b.store.service('alpha')?.metadata?.ownerReferences).toEqual([
      { apiVersion: 'cluster.kubesphere.io/v1alpha1', kind: 'Cluster', name: 'alpha', uid: c.metadata.uid },
    ]);
    expect(b.listeners.ensured).toHaveLength(1);
    expect(b.listeners.ensured[0]).toMatchObject({
      cluster: 'alpha',
      kubernetesPort: 6000,
      kubespherePort: 16000,
    });
    expect(b.listeners.ensured[0]?.caPem).toBe(ca.certPem);
    expect(c.status?.conditions?.map((x) => [x.type, x.status, x.reason])).toEqual([
      ['Initialized', 'True', 'Initialized'],
      ['AgentAvailable', 'False', 'NoAgent'],
    ]);
    expect(b.store.events.map((e) => [e.type, e.reason, e.message])).toEqual([
      ['Normal', 'KubeconfigIssued', 'kubeconfig for https://10.96.0.10:6443 issued'],
      [
        'Normal',
        'ConnectionUpdated',
        'set kubernetesAPIServerPort, kubesphereAPIServerPort, kubernetesAPIEndpoint, kubesphereAPIEndpoint',
      ],
    ]);
    expect(await b.reconciles('ok')).toBe(1);
    expect(b.logger.text()).not.toContain(conn.token); // the token is never logged
  });

  it('writes nothing on the next pass when all is right: no new kubeconfig, certificate or event', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const before = b.store.cluster('alpha')!;
    const events = b.store.events.length;
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')).toEqual(before);
    expect(b.store.events).toHaveLength(events);
    expect(b.listeners.ensured[1]?.serving).toBe(b.listeners.ensured[0]?.serving);
  });

  it('follows the agents: AgentAvailable turns True with the first and False after the last', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    connect(b, 'alpha');
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'AgentAvailable')).toMatchObject({
      status: 'True',
      message: 'an agent is connected to the proxy',
    });
    b.registry.remove(b.registry.sessions('alpha')[0]!);
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'AgentAvailable')?.status).toBe('False');
  });

  it('external access: a LoadBalancer ext-mc-<name> of the kubernetes port, with the annotated annotations, the ingress as endpoint, and back', async () => {
    const b = bed();
    b.store.put(
      proxyCluster(
        'alpha',
        { externalKubeAPIEnabled: true },
        { [LB]: '{"lb.example.com/scheme":"internal"}' },
      ),
    );
    await b.controller.reconcile('alpha');
    const lb = b.store.service('alpha', 'ext-mc-alpha');
    expect(lb?.spec?.type).toBe('LoadBalancer');
    expect(lb?.metadata?.annotations).toEqual({ 'lb.example.com/scheme': 'internal' });
    // The kubesphere port (plain HTTP, no authentication) stays inside the host cluster.
    expect(lb?.spec?.ports?.map((p) => [p.port, p.targetPort])).toEqual([[6443, 6000]]);
    const internal = b.store.service('alpha');
    expect(internal?.spec?.type).toBe('ClusterIP');
    expect(internal?.spec?.ports?.map((p) => [p.port, p.targetPort])).toEqual([
      [6443, 6000],
      [80, 16000],
    ]);
    expect(b.store.cluster('alpha')?.spec?.connection?.kubesphereAPIEndpoint).toBe(
      `http://${internal?.spec?.clusterIP}:80`,
    );
    expect(condition(b.store.cluster('alpha'), 'ExternalAccessReady')?.reason).toBe('WaitingForLoadBalancer');

    b.store.setIngress('alpha', '203.0.113.10');
    await b.controller.reconcile('alpha');
    const ready = b.store.cluster('alpha')!;
    expect(ready.spec?.connection?.externalKubernetesAPIEndpoint).toBe('https://203.0.113.10:6443');
    expect(condition(ready, 'ExternalAccessReady')).toMatchObject({
      status: 'True',
      message: 'reachable at 203.0.113.10',
    });
    expect(b.listeners.ensured.at(-1)?.serving).not.toBe(b.listeners.ensured[0]?.serving); // the LB is in the certificate

    b.store.put({ ...ready, spec: { ...ready.spec, externalKubeAPIEnabled: false } });
    await b.controller.reconcile('alpha');
    expect(b.store.service('alpha', 'ext-mc-alpha')).toBeUndefined();
    expect(b.store.service('alpha')?.spec?.clusterIP).toBe(internal?.spec?.clusterIP);
    expect(condition(b.store.cluster('alpha'), 'ExternalAccessReady')).toBeUndefined();
  });

  it("upgrading from Tower's layout: a LoadBalancer mc-<name> of both ports becomes ClusterIP (same ClusterIP), ext-mc-<name> the LoadBalancer", async () => {
    const b = bed();
    const c = b.store.put(proxyCluster('alpha', { externalKubeAPIEnabled: true }));
    const old = b.store.putService({
      metadata: {
        name: 'mc-alpha',
        labels: { 'app.kubernetes.io/managed-by': 'tower-proxy', 'tower.knet.io/cluster': 'alpha' },
        ownerReferences: [{ apiVersion: c.apiVersion, kind: 'Cluster', name: 'alpha', uid: c.metadata.uid! }],
      },
      spec: {
        type: 'LoadBalancer',
        selector: { app: 'tower' },
        ports: [
          { name: 'kubernetes', protocol: 'TCP', port: 6443, targetPort: 6000 },
          { name: 'kubesphere', protocol: 'TCP', port: 80, targetPort: 16000 },
        ],
      },
    });
    b.store.setIngress('alpha', '203.0.113.10', 'mc-alpha');
    await b.controller.reconcile('alpha');
    const internal = b.store.service('alpha');
    expect(internal?.spec?.type).toBe('ClusterIP');
    expect(internal?.spec?.clusterIP).toBe(old.spec?.clusterIP);
    expect(internal?.status?.loadBalancer?.ingress).toBeUndefined();
    expect(b.store.service('alpha', 'ext-mc-alpha')?.spec?.ports?.map((p) => p.port)).toEqual([6443]);
    expect(b.store.cluster('alpha')?.spec?.connection?.kubesphereAPIEndpoint).toBe(
      `http://${old.spec?.clusterIP}:80`,
    );
  });

  it('an invalid annotation: no annotations, a Warning, and ExternalAccessReady=False saying why', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha', { externalKubeAPIEnabled: true }, { [LB]: 'not json' }));
    await b.controller.reconcile('alpha');
    expect(b.store.service('alpha', 'ext-mc-alpha')?.metadata?.annotations).toEqual({});
    expect(b.store.events[0]).toEqual({
      cluster: 'alpha',
      type: 'Warning',
      reason: 'InvalidAnnotation',
      message: `annotation ${LB} is not JSON`,
    });
    expect(condition(b.store.cluster('alpha'), 'ExternalAccessReady')).toMatchObject({
      status: 'False',
      reason: 'InvalidAnnotation',
    });
  });

  it('publishes the listener ports at --publish-service-address', async () => {
    const b = bed({ publishAddress: '127.0.0.1' });
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')?.spec?.connection?.kubernetesAPIEndpoint).toBe('https://127.0.0.1:6000');
  });

  it('cleans up a deleted Cluster: agents dropped, listeners stopped, Service deleted; again is a no-op', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const s = connect(b, 'alpha');
    b.store.remove('alpha');
    await b.controller.reconcile('alpha');
    expect(b.store.service('alpha')).toBeUndefined();
    expect(b.listeners.removed).toEqual(['alpha']);
    expect(s.closedWith).toBe('deleted');
    expect(b.logger.messages('info')).toContain('cluster cleaned up');
    await b.controller.reconcile('alpha'); // the Service is gone already: 404 is fine
    expect(await b.reconciles('error')).toBe(0);
  });

  it("a Cluster being deleted keeps its agents, listeners and Service while KubeSphere's finalizer runs, and is cleaned up once gone", async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const s = connect(b, 'alpha');
    const c = b.store.cluster('alpha')!;
    const deleting = b.store.put({
      ...c,
      metadata: {
        ...c.metadata,
        deletionTimestamp: new Date(),
        finalizers: ['finalizer.cluster.kubesphere.io'],
      },
    });
    const ensured = b.listeners.ensured.length;
    await b.controller.reconcile('alpha');
    expect(s.closedWith).toBeUndefined();
    expect(b.listeners.running.has('alpha')).toBe(true);
    expect(b.listeners.ensured).toHaveLength(ensured);
    expect(b.store.service('alpha')).toBeDefined();
    expect(b.store.cluster('alpha')).toEqual(deleting); // nothing written

    b.store.remove('alpha'); // the finalizer is done
    await b.controller.reconcile('alpha');
    expect(s.closedWith).toBe('deleted');
    expect(b.listeners.running.has('alpha')).toBe(false);
    expect(b.store.service('alpha')).toBeUndefined();
  });

  it('a Cluster that stops being a proxy cluster is cleaned up the same way, and loses the tunnel conditions', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha', { externalKubeAPIEnabled: true }));
    await b.controller.reconcile('alpha');
    connect(b, 'alpha');
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'AgentAvailable')?.status).toBe('True');
    const c = b.store.cluster('alpha')!;
    b.store.put({ ...c, spec: { ...c.spec, connection: { ...c.spec?.connection, type: 'direct' } } });
    await b.controller.reconcile('alpha');
    expect(b.store.service('alpha')).toBeUndefined();
    expect(b.store.service('alpha', 'ext-mc-alpha')).toBeUndefined();
    expect(b.listeners.running.has('alpha')).toBe(false);
    expect(b.registry.count('alpha')).toBe(0);
    // Nobody keeps AgentAvailable or ExternalAccessReady true to anything now: they go.
    expect(b.store.cluster('alpha')?.status?.conditions?.map((x) => x.type)).toEqual(['Initialized']);
  });

  it('no free port: Initialized=False (NoFreePort) is written and the reconcile fails', async () => {
    const b = bed({ portRange: { min: 6000, max: 6001 } });
    b.store.put(proxyCluster('a', { connection: { type: 'proxy', kubernetesAPIServerPort: 6000 } }));
    b.store.put(proxyCluster('b'));
    await expect(b.controller.reconcile('b')).rejects.toThrow(
      'no free port left in [6000, 6001) for cluster b',
    );
    expect(condition(b.store.cluster('b'), 'Initialized')).toMatchObject({
      status: 'False',
      reason: 'NoFreePort',
    });
    expect(b.store.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'ReconcileFailed' });
    expect(await b.reconciles('error')).toBe(1);
  });

  it('a conflict on the conditions (the Cluster changed meanwhile) is left to the next pass', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    // An agent arrives, and while the controller works a user edits the Cluster.
    connect(b, 'alpha');
    b.listeners.onEnsure = () => {
      b.listeners.onEnsure = undefined;
      const cur = b.store.cluster('alpha')!;
      b.store.put({ ...cur, metadata: { ...cur.metadata, labels: { edited: 'yes' } } });
    };
    await b.controller.reconcile('alpha');
    expect(await b.reconciles('error')).toBe(0);
    expect(condition(b.store.cluster('alpha'), 'AgentAvailable')?.status).toBe('False'); // not written
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'AgentAvailable')?.status).toBe('True');
  });

  it('a conflict on the connection patch (the Cluster changed since it was planned) is left to the next pass', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.store.failNext(
      'patchConnection',
      statusError(
        409,
        'Conflict',
        'Operation cannot be fulfilled on clusters.cluster.kubesphere.io "alpha": the object has been modified; please apply your changes to the latest version and try again',
      ),
    );
    await b.controller.reconcile('alpha');
    expect(await b.reconciles('error')).toBe(0);
    expect(b.store.events).toEqual([]); // neither ReconcileFailed nor KubeconfigIssued
    expect(b.store.cluster('alpha')?.spec?.connection?.kubeconfig).toBeUndefined();
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')?.spec?.connection?.kubeconfig).toBeDefined();
    expect(condition(b.store.cluster('alpha'), 'Initialized')?.status).toBe('True');
  });

  it('a Cluster edited while a pass runs keeps the edit: the connection patch is conditional on the version it was planned from', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha', { connection: { type: 'proxy', token: 'first-token-0123456789' } }));
    const apply = b.store.applyService.bind(b.store);
    let edited = false;
    b.store.applyService = async (svc) => {
      const applied = await apply(svc);
      if (!edited) {
        edited = true; // a user rotates the token while the pass waits for the API server
        b.store.put(
          proxyCluster('alpha', { connection: { type: 'proxy', token: 'rotated-token-0123456789' } }),
        );
      }
      return applied;
    };
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')?.spec?.connection?.token).toBe('rotated-token-0123456789');
    expect(b.store.cluster('alpha')?.spec?.connection?.kubeconfig).toBeUndefined();
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')?.spec?.connection?.token).toBe('rotated-token-0123456789');
    expect(b.store.cluster('alpha')?.spec?.connection?.kubeconfig).toBeDefined();
  });

  it("a Service mc-<name> that is not the proxy's is not taken over: the pass fails with one line and a Warning", async () => {
    const b = bed();
    b.store.putService({
      metadata: { name: 'mc-alpha', namespace: NS, labels: { app: 'theirs' } },
      spec: {},
    });
    b.store.put(proxyCluster('alpha'));
    await expect(b.controller.reconcile('alpha')).rejects.toThrow(/exists and is not tower-proxy's/);
    expect(b.store.events.map((e) => e.reason)).toContain('ReconcileFailed');
    expect(b.store.service('alpha')?.metadata?.labels).toEqual({ app: 'theirs' });
  });

  it.each([
    [
      'the Service apply',
      'applyService',
      statusError(500, 'InternalError', 'etcdserver: request timed out'),
      'apply patch Service kubesphere-system/mc-alpha: 500 InternalError: etcdserver: request timed out',
    ],
    [
      'the connection patch',
      'patchConnection',
      statusError(403, 'Forbidden', 'no'),
      'merge patch Cluster alpha: 403 Forbidden: no (RBAC: grant the missing verb/resource to this identity)',
    ],
    [
      'the conditions',
      'writeConditions',
      statusError(422, 'Invalid', 'bad'),
      'merge patch Cluster alpha: 422 Invalid: bad',
    ],
  ] as const)(
    'a failure of %s fails the reconcile with one line, a Warning and the error metric',
    async (_what, call, error, message) => {
      const b = bed();
      b.store.put(proxyCluster('alpha'));
      b.store.failNext(call, error);
      await expect(b.controller.reconcile('alpha')).rejects.toThrow(message);
      expect(b.store.events.at(-1)).toEqual({
        cluster: 'alpha',
        type: 'Warning',
        reason: 'ReconcileFailed',
        message,
      });
      expect(await b.reconciles('error')).toBe(1);
      await b.controller.reconcile('alpha'); // and the next pass succeeds
      expect(condition(b.store.cluster('alpha'), 'Initialized')?.status).toBe('True');
    },
  );

  it('a listener that cannot start fails the reconcile, and Initialized says so until it runs', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'Initialized')?.status).toBe('True');
    const message = 'cluster alpha: cannot listen on ports 6000/16000: listen EADDRINUSE';
    b.listeners.failNext(new Error(message));
    await expect(b.controller.reconcile('alpha')).rejects.toThrow('EADDRINUSE');
    expect(b.store.events.at(-1)?.reason).toBe('ReconcileFailed');
    expect(condition(b.store.cluster('alpha'), 'Initialized')).toMatchObject({
      status: 'False',
      reason: 'ListenerFailed',
      message,
    });
    await b.controller.reconcile('alpha');
    expect(condition(b.store.cluster('alpha'), 'Initialized')?.status).toBe('True');
  });

  it('a failed Service deletion fails the cleanup (to be retried)', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    b.store.remove('alpha');
    b.store.failNext('deleteService', statusError(503, 'ServiceUnavailable', 'try later'));
    await expect(b.controller.reconcile('alpha')).rejects.toThrow(
      'delete Service kubesphere-system/mc-alpha: 503 ServiceUnavailable: try later',
    );
  });
});

describe('ClusterController: an agent holds only what the Cluster grants now', () => {
  const evictions = (b: Bed) => b.store.events.filter((e) => e.reason === 'AgentsEvicted');

  it('rotating the token evicts the agents admitted with the old one, and only them', async () => {
    const b = bed();
    const c = b.store.put(proxyCluster('alpha', { connection: { type: 'proxy', token: 'leaked' } }));
    await b.controller.reconcile('alpha');
    const old = connect(b, 'alpha', 'old');
    b.store.put({ ...c, spec: { ...c.spec, connection: { ...c.spec?.connection, token: 'rotated' } } });
    const fresh = connect(b, 'alpha', 'fresh');
    await b.controller.reconcile('alpha');

    expect(old.closedWith).toBe('the token was rotated or the Cluster re-created');
    expect(fresh.closedWith).toBeUndefined();
    expect(b.registry.sessions('alpha').map((s) => s.id)).toEqual(['fresh']);
    expect(evictions(b)).toEqual([
      {
        cluster: 'alpha',
        type: 'Normal',
        reason: 'AgentsEvicted',
        message:
          'closed 1 agent session(s) admitted with an earlier token or an earlier Cluster of this name',
      },
    ]);
    expect(b.logger.lines.find((e) => e.msg.startsWith('agents evicted'))?.fields).toMatchObject({
      cluster: 'alpha',
      evicted: 1,
    });
    expect(b.logger.text()).not.toContain('leaked');
    expect(b.logger.text()).not.toContain('rotated');
  });

  it('a Cluster deleted and re-created under the same name (same token) evicts the old agents', async () => {
    const b = bed();
    const spec = { connection: { type: 'proxy' as const, token: 'sesame' } };
    b.store.put(proxyCluster('alpha', spec));
    await b.controller.reconcile('alpha');
    const old = connect(b, 'alpha');
    // Both changes reach the controller as one pass: it never sees the Cluster gone.
    b.store.remove('alpha');
    b.store.put(proxyCluster('alpha', spec));
    await b.controller.reconcile('alpha');
    expect(old.closedWith).toBe('the token was rotated or the Cluster re-created');
    expect(b.registry.count('alpha')).toBe(0);
    expect(evictions(b)).toHaveLength(1);
  });

  it('a Cluster whose token is emptied gets a new one, and the agents of the old one go', async () => {
    const b = bed();
    const c = b.store.put(proxyCluster('alpha', { connection: { type: 'proxy', token: 'old' } }));
    await b.controller.reconcile('alpha');
    const old = connect(b, 'alpha');
    b.store.put({ ...c, spec: { ...c.spec, connection: { type: 'proxy' } } });
    await b.controller.reconcile('alpha');
    expect(old.closedWith).toBeDefined();
    expect(b.store.cluster('alpha')?.spec?.connection?.token).toMatch(/^[0-9a-f]{64}$/);
  });

  it('an unchanged Cluster evicts nothing, pass after pass', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha', { connection: { type: 'proxy', token: 'sesame' } }));
    await b.controller.reconcile('alpha');
    const sessions = [connect(b, 'alpha', 'one'), connect(b, 'alpha', 'two')];
    const c = b.store.cluster('alpha')!;
    b.store.put({ ...c, metadata: { ...c.metadata, labels: { edited: 'yes' } } }); // not the token
    await b.controller.reconcile('alpha');
    await b.controller.reconcile('alpha');
    expect(sessions.map((s) => s.closedWith)).toEqual([undefined, undefined]);
    expect(b.registry.count('alpha')).toBe(2);
    expect(evictions(b)).toEqual([]);
  });
});

const DAY = 86_400_000;
const later = (b: Bed, ms: number) => (b.clock.now = new Date(b.clock.now.getTime() + ms));
/** The client certificate of a Cluster's kubeconfig, as the listener sees it. */
const clientCert = (c: Cluster | undefined) =>
  new X509Certificate(kubeconfigTls(Buffer.from(c!.spec!.connection!.kubeconfig!, 'base64').toString()).cert);
const servingCert = (spec: ListenerSpec | undefined) => new X509Certificate(spec!.serving.certPem);

describe('ClusterController: short-lived certificates, renewed on time; only the current kubeconfig opens the listener', () => {
  it("a kubeconfig not issued by this proxy for this cluster is replaced (another CA's certificate, another cluster's)", async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.store.put(proxyCluster('beta'));
    await b.controller.reconcile('alpha');
    await b.controller.reconcile('beta');
    const alpha = b.store.cluster('alpha')!;
    const server = kubeconfigTls(
      Buffer.from(alpha.spec!.connection!.kubeconfig!, 'base64').toString(),
    ).server;
    const other = await createCertificateAuthority('other-ca');
    const forged = await issueCertificate(other, {
      commonName: 'knet-tower:alpha',
      organizations: ['knet-tower'],
      usage: 'client',
      validityDays: 30,
    });
    const betas = kubeconfigTls(
      Buffer.from(b.store.cluster('beta')!.spec!.connection!.kubeconfig!, 'base64').toString(),
    );
    for (const credentials of [
      // the right names and our CA in the kubeconfig, but signed by another CA
      { clientCertificatePem: forged.certPem, clientKeyPem: forged.keyPem },
      // ours, but beta's
      { clientCertificatePem: betas.cert!, clientKeyPem: betas.key! },
    ]) {
      const kubeconfig = Buffer.from(
        renderKubeconfig({ name: 'alpha', server, caPem: ca.certPem, credentials }),
      ).toString('base64');
      const c = b.store.cluster('alpha')!;
      b.store.put({ ...c, spec: { ...c.spec, connection: { ...c.spec!.connection, kubeconfig } } });
      const planted = clientCert(b.store.cluster('alpha')).fingerprint256;
      await b.controller.reconcile('alpha');
      const now = clientCert(b.store.cluster('alpha'));
      expect(now.fingerprint256).not.toBe(planted);
      expect(now.subject).toBe('CN=knet-tower:alpha\nO=knet-tower');
      expect(now.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
      expect(b.listeners.running.get('alpha')?.clientCertificates).toEqual([now.fingerprint256]);
    }
    // A kubeconfig it did issue is kept, pass after pass.
    const kept = b.store.cluster('alpha')!.spec!.connection!.kubeconfig;
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')!.spec!.connection!.kubeconfig).toBe(kept);
  });

  it('the listener accepts the client certificate of the kubeconfig in the Cluster, and no other', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const fingerprint = clientCert(b.store.cluster('alpha')).fingerprint256;
    expect(b.listeners.ensured[0]?.clientCertificates).toEqual([fingerprint]);
    await b.controller.reconcile('alpha');
    expect(b.listeners.ensured[1]?.clientCertificates).toEqual([fingerprint]);
  });

  it("a Cluster re-created under the same name gets a new kubeconfig, and the old one's certificate is refused", async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const old = clientCert(b.store.cluster('alpha')).fingerprint256;
    b.store.remove('alpha');
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const now = clientCert(b.store.cluster('alpha')).fingerprint256;
    expect(now).not.toBe(old);
    expect(b.listeners.running.get('alpha')?.clientCertificates).toEqual([now]);
  });

  it('removing the kubeconfig from the Cluster revokes it at once (a new one is issued, no overlap)', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const old = clientCert(b.store.cluster('alpha')).fingerprint256;
    const c = b.store.cluster('alpha')!;
    const { kubeconfig: _leaked, ...rest } = c.spec!.connection!;
    b.store.put({ ...c, spec: { ...c.spec, connection: rest } });
    await b.controller.reconcile('alpha');
    const now = clientCert(b.store.cluster('alpha')).fingerprint256;
    expect(now).not.toBe(old);
    expect(b.listeners.running.get('alpha')?.clientCertificates).toEqual([now]);
  });

  it('certificates last 30 days and are renewed 10 days before they expire; the replaced kubeconfig works for 10 more minutes', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    const first = b.store.cluster('alpha')!.spec!.connection!.kubeconfig;
    const client = clientCert(b.store.cluster('alpha'));
    const serving = servingCert(b.listeners.ensured[0]);
    for (const cert of [client, serving]) {
      expect(new Date(cert.validTo).getTime() - b.clock.now.getTime()).toBeGreaterThan(30 * DAY - 60_000);
      expect(new Date(cert.validTo).getTime() - b.clock.now.getTime()).toBeLessThan(30 * DAY + 60_000);
    }

    later(b, 19 * DAY);
    await b.controller.reconcile('alpha');
    expect(b.store.cluster('alpha')!.spec!.connection!.kubeconfig).toBe(first);
    expect(b.listeners.ensured.at(-1)?.serving).toBe(b.listeners.ensured[0]?.serving);

    later(b, 2 * DAY); // 9 days left
    await b.controller.reconcile('alpha');
    const renewed = clientCert(b.store.cluster('alpha'));
    expect(renewed.fingerprint256).not.toBe(client.fingerprint256);
    expect(b.store.events.at(-1)?.reason).toBe('KubeconfigIssued');
    expect(servingCert(b.listeners.ensured.at(-1)).fingerprint256).not.toBe(serving.fingerprint256);
    expect(b.listeners.ensured.at(-1)?.clientCertificates).toEqual([
      renewed.fingerprint256,
      client.fingerprint256,
    ]);

    later(b, 9 * 60_000);
    await b.controller.reconcile('alpha');
    expect(b.listeners.ensured.at(-1)?.clientCertificates).toHaveLength(2);
    later(b, 60_000);
    await b.controller.reconcile('alpha');
    expect(b.listeners.ensured.at(-1)?.clientCertificates).toEqual([renewed.fingerprint256]);
  });

  it('reads a kubeconfig once: passes over the same kubeconfig do not parse and verify it again', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha'); // issues the kubeconfig: nothing to read yet
    const verify = jest.spyOn(X509Certificate.prototype, 'verify');
    try {
      await b.controller.reconcile('alpha');
      expect(verify).toHaveBeenCalledTimes(1);
      connect(b, 'alpha');
      await b.controller.reconcile('alpha');
      await b.controller.reconcile('alpha');
      expect(verify).toHaveBeenCalledTimes(1);
      // Another kubeconfig (here: removed, so a new one is issued) is read again.
      const c = b.store.cluster('alpha')!;
      b.store.put({ ...c, spec: { ...c.spec, connection: { ...c.spec?.connection, kubeconfig: '' } } });
      await b.controller.reconcile('alpha');
      await b.controller.reconcile('alpha');
      expect(verify).toHaveBeenCalledTimes(2);
    } finally {
      verify.mockRestore();
    }
  });

  it('the serving certificate is renewed when due even though its names did not change', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    later(b, 21 * DAY);
    await b.controller.reconcile('alpha');
    expect(b.listeners.ensured[1]?.serving).not.toBe(b.listeners.ensured[0]?.serving);
    expect(servingCert(b.listeners.ensured[1]).subjectAltName).toBe(
      servingCert(b.listeners.ensured[0]).subjectAltName,
    );
  });

  it('each Cluster is requeued when its first certificate comes due, and the timers stop with leadership', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.controller.setLeading(true);
    await until('alpha to be served', () => b.store.cluster('alpha')?.spec?.connection?.kubeconfig);
    await until('a renewal to be scheduled', () => b.timers.some((t) => t.state === 'pending'));
    const pending = () => b.timers.filter((t) => t.state === 'pending');
    expect(pending()).toHaveLength(1);
    // Both certificates were issued now: due in 30 - 10 days.
    expect(Math.abs(pending()[0]!.delayMs - 20 * DAY)).toBeLessThan(60_000);

    const first = b.store.cluster('alpha')!.spec!.connection!.kubeconfig;
    const ensured = b.listeners.ensured.length;
    later(b, 20 * DAY + 1000);
    pending()[0]!.fire(); // nothing else happens to alpha: only the timer brings it back
    await until(
      'the kubeconfig to be renewed',
      () => b.store.cluster('alpha')!.spec!.connection!.kubeconfig !== first,
    );
    expect(b.listeners.ensured.length).toBeGreaterThan(ensured);
    await until('the end of the overlap to be scheduled', () => pending().length === 1);
    expect(pending()[0]!.delayMs).toBeLessThanOrEqual(10 * 60_000);

    b.controller.setLeading(false);
    expect(pending()).toEqual([]);
    b.controller.setLeading(true);
    await until('a renewal to be scheduled again', () => pending().length === 1);
    await b.controller.stop();
    expect(pending()).toEqual([]);
  });

  it.each([
    ['renewed before they are issued', { renewBeforeMs: 30 * DAY }],
    ['valid no time at all', { certificateValidityDays: 0 }],
  ])('refuses certificates %s (they would be re-issued at every pass)', (_what, o) => {
    const b = bed();
    expect(
      () =>
        new ClusterController({
          store: b.store,
          ca,
          registry: b.registry,
          listeners: b.listeners,
          metrics: createProxyMetrics(createMetricsRegistry({ defaultMetrics: false })),
          logger: b.logger,
          serviceNamespace: NS,
          serviceSelector: {},
          portRange: { min: 6000, max: 6010, kubesphereOffset: 10_000 },
          ...o,
        }),
    ).toThrow(/^certificates must be renewed \(\d+ ms before expiry\) sooner than they expire \(\d+ days\)$/);
  });

  it('a deleted Cluster leaves no timer behind', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    await b.controller.reconcile('alpha');
    expect(b.timers.filter((t) => t.state === 'pending')).toHaveLength(1);
    b.store.remove('alpha');
    await b.controller.reconcile('alpha');
    expect(b.timers.filter((t) => t.state === 'pending')).toEqual([]);
  });
});

describe('ClusterController leading the work queue', () => {
  it('a follower writes nothing; once leading, every cluster is reconciled, then each change', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.store.put(proxyCluster('beta'));
    await sleep(300); // the store reported both; a follower ignores it
    expect(b.store.service('alpha')).toBeUndefined();
    expect(await b.reconciles('ok')).toBe(0);

    b.controller.setLeading(true);
    await until('both clusters to be served', () =>
      ['alpha', 'beta'].every((c) => condition(b.store.cluster(c), 'Initialized')?.status === 'True'),
    );
    // A change the store reports (a cloud's LoadBalancer ingress) is reconciled…
    const alpha = b.store.cluster('alpha')!;
    b.store.put({ ...alpha, spec: { ...alpha.spec, externalKubeAPIEnabled: true } });
    await until('alpha to wait for its load balancer', () =>
      condition(b.store.cluster('alpha'), 'ExternalAccessReady'),
    );
    b.store.setIngress('alpha', '203.0.113.10');
    await until(
      'alpha to be reachable',
      () => condition(b.store.cluster('alpha'), 'ExternalAccessReady')?.status === 'True',
    );
    // …and so is an agent coming and going.
    connect(b, 'beta');
    await until(
      'beta to have an agent',
      () => condition(b.store.cluster('beta'), 'AgentAvailable')?.status === 'True',
    );

    b.controller.setLeading(false);
    b.store.remove('beta');
    await sleep(300);
    expect(b.store.service('beta')).toBeDefined(); // not leading: not cleaned up
    await b.controller.stop();
  });

  it('a pass under way when leadership is lost writes nothing more (no stale AgentAvailable)', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.controller.setLeading(true);
    await until(
      'alpha to be served',
      () => condition(b.store.cluster('alpha'), 'Initialized')?.status === 'True',
    );
    const before = b.store.cluster('alpha');
    const ensured = b.listeners.ensured.length;
    // An agent arrives; while its pass runs, the Lease is lost (Serving then closes the agents,
    // whose sessions leave the registry when their sockets have closed: later).
    b.listeners.onEnsure = () => {
      b.listeners.onEnsure = undefined;
      b.controller.setLeading(false);
    };
    connect(b, 'alpha');
    await until('the pass to be abandoned', () =>
      b.logger.messages('info').includes('reconcile abandoned: this replica stopped leading'),
    );
    expect(b.store.cluster('alpha')).toEqual(before); // no AgentAvailable=True left behind
    expect(b.listeners.ensured).toHaveLength(ensured + 1);
    expect(b.store.events.filter((e) => e.reason === 'ReconcileFailed')).toEqual([]);
    await b.controller.stop();
  });

  it('after taking over, AgentAvailable waits for the agents redialling: True kept, then False only for the one not back when the grace period ends', async () => {
    const b = bed({ agentGracePeriodMs: 30_000 });
    b.store.put(proxyCluster('alpha'));
    b.store.put(proxyCluster('beta'));
    b.controller.setLeading(true);
    const available = (c: string) => condition(b.store.cluster(c), 'AgentAvailable')?.status;
    // The first term: no agent has come yet, and none is expected: nothing is said about them.
    await until('both to be served', () =>
      ['alpha', 'beta'].every((c) => condition(b.store.cluster(c), 'Initialized')?.status === 'True'),
    );
    expect([available('alpha'), available('beta')]).toEqual([undefined, undefined]);
    const alpha1 = connect(b, 'alpha', 'a1');
    const beta1 = connect(b, 'beta', 'b1');
    await until('both True', () => available('alpha') === 'True' && available('beta') === 'True');

    // Failover: this replica loses the Lease (its agents go), then leads again (a new term).
    b.controller.setLeading(false);
    for (const s of [alpha1, beta1]) b.registry.remove(s);
    const versions = () => ['alpha', 'beta'].map((c) => b.store.cluster(c)?.metadata.resourceVersion);
    const before = versions();
    const passes = await b.reconciles('ok');
    b.controller.setLeading(true);
    await until('both to be reconciled again', async () => (await b.reconciles('ok')) >= passes + 2);
    expect(versions()).toEqual(before); // nothing written: both still True
    connect(b, 'alpha', 'a2'); // alpha's agent is back; beta's is not
    await until('alpha reconciled', async () => (await b.reconciles('ok')) >= passes + 3);
    expect([available('alpha'), available('beta')]).toEqual(['True', 'True']);

    // The grace period ends: beta, still without an agent, is reconciled once more and goes False.
    const graceEnd = b.timers.filter((t) => t.state === 'pending' && t.delayMs <= 30_000);
    expect(graceEnd.map((t) => t.delayMs)).toEqual([30_000]);
    later(b, 30_000);
    graceEnd[0]!.fire();
    await until('beta False', () => available('beta') === 'False');
    expect(available('alpha')).toBe('True');
    expect(condition(b.store.cluster('beta'), 'AgentAvailable')?.reason).toBe('NoAgent');
    await b.controller.stop();
  });

  it('retries a failed reconcile with backoff until it succeeds', async () => {
    const b = bed();
    b.store.put(proxyCluster('alpha'));
    b.store.failNext('applyService', statusError(503, 'ServiceUnavailable', 'etcd is starting'));
    b.controller.setLeading(true);
    await until(
      'alpha to be served after the failure',
      () => condition(b.store.cluster('alpha'), 'Initialized')?.status === 'True',
    );
    expect(await b.reconciles('error')).toBe(1);
    expect(b.logger.messages('warn')).toContain('reconcile failed; will retry');
    await b.controller.stop();
  });
});

describe('ClusterController: clusters reconciled in parallel', () => {
  /** Makes every Service apply take `ms`, counting the applies in flight (in all and per cluster). */
  function slowApplies(b: Bed, ms: number): { max: number; maxPerCluster: number } {
    const seen = { max: 0, maxPerCluster: 0 };
    const inFlight = new Map<string, number>();
    const apply = b.store.applyService.bind(b.store);
    b.store.applyService = async (intent) => {
      const name = intent.metadata.name;
      inFlight.set(name, (inFlight.get(name) ?? 0) + 1);
      seen.max = Math.max(
        seen.max,
        [...inFlight.values()].reduce((a, x) => a + x, 0),
      );
      seen.maxPerCluster = Math.max(seen.maxPerCluster, inFlight.get(name) ?? 0);
      try {
        await sleep(ms);
        return await apply(intent);
      } finally {
        inFlight.set(name, (inFlight.get(name) ?? 1) - 1);
      }
    };
    return seen;
  }

  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const served = (b: Bed) => () =>
    names.every((n) => condition(b.store.cluster(n), 'Initialized')?.status === 'True');

  it('several clusters are reconciled at once, never one cluster twice at once', async () => {
    const b = bed({ concurrency: 4 });
    // With their tokens (as after a restart), so the agents admitted now stay admitted.
    for (const n of names)
      b.store.put(proxyCluster(n, { connection: { type: 'proxy', token: `token-${n}` } }));
    const seen = slowApplies(b, 50);
    b.controller.setLeading(true);
    // Agents arrive while the first passes run: their clusters are reconciled again, after.
    for (const n of names) connect(b, n, `session-${n}`);
    await until('every cluster to be served', served(b));
    await until('every cluster to show its agent', () =>
      names.every((n) => condition(b.store.cluster(n), 'AgentAvailable')?.status === 'True'),
    );
    expect(seen.max).toBe(4);
    expect(seen.maxPerCluster).toBe(1);
    await b.controller.stop();
  });

  it('clusters planned at the same time get different ports at once: no listener starts on a port it must leave', async () => {
    const b = bed({ concurrency: 6 });
    for (const n of names) b.store.put(proxyCluster(n));
    slowApplies(b, 30);
    b.controller.setLeading(true);
    await until('every cluster to be served', served(b));
    const ports = names.map((n) => b.store.cluster(n)!.spec!.connection!.kubernetesAPIServerPort);
    expect(new Set(ports).size).toBe(names.length);
    // Each cluster's listeners only ever ran on the port it keeps.
    for (const [i, n] of names.entries()) {
      const used = b.listeners.ensured.filter((l) => l.cluster === n).map((l) => l.kubernetesPort);
      expect(new Set(used)).toEqual(new Set([ports[i]]));
    }
    expect(await b.reconciles('error')).toBe(0);
    await b.controller.stop();
  });
});

describe('ClusterController.authorize', () => {
  it.each([
    [
      'an unknown cluster',
      'nope',
      'x',
      { ok: false, reason: 'unknown-cluster', message: 'no Cluster named nope on the host cluster' },
    ],
    [
      'a direct cluster',
      'direct',
      'x',
      {
        ok: false,
        reason: 'not-a-proxy-cluster',
        message: 'Cluster direct is not of connection type proxy with joinFederation=true',
      },
    ],
    [
      'a cluster without a token yet',
      'fresh',
      '',
      {
        ok: false,
        reason: 'bad-token',
        message: "the token does not match Cluster fresh's spec.connection.token",
      },
    ],
    [
      'a wrong token',
      'alpha',
      'wrong',
      {
        ok: false,
        reason: 'bad-token',
        message: "the token does not match Cluster alpha's spec.connection.token",
      },
    ],
    [
      'the right token',
      'alpha',
      'sesame',
      {
        ok: true,
        binding: `00000000-0000-4000-8000-000000000001/${createHash('sha256').update('sesame').digest('hex')}`,
      },
    ],
  ])('%s', (_what, cluster, token, want) => {
    const b = bed();
    b.store.put(proxyCluster('alpha', { connection: { type: 'proxy', token: 'sesame' } }));
    b.store.put(proxyCluster('fresh'));
    b.store.put(proxyCluster('direct', { connection: { type: 'direct', token: 'x' } }));
    expect(b.controller.authorize({ version: 1, cluster, token, agent: 'a' })).toEqual(want);
  });
});
