import type { Cluster } from '@knet/cluster-crd';
import { KubeApiError, isConflict, isNotFound, statusError } from '@knet/k8s';
import { desiredService } from '../core/plan';
import { FakeClusterStore } from './cluster-store';

const spec = { joinFederation: true, connection: { type: 'proxy' as const } };
/** mc-<cluster>, or as a LoadBalancer (what an older proxy applied): the store applies what it is given. */
const intent = (c: Cluster, type: 'ClusterIP' | 'LoadBalancer' = 'ClusterIP') => {
  const s = desiredService(
    c,
    { kubernetes: 6000, kubesphere: 16000 },
    { namespace: 'kubesphere-system', selector: { app: 'tower' } },
  );
  s.spec.type = type;
  return s;
};
const failure = async (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as KubeApiError,
  );

/** Collects the names `onChange` reports, after the calls that caused them have returned. */
const changes = (store: FakeClusterStore) => {
  const seen: string[] = [];
  store.onChange((c) => seen.push(c));
  return async () => {
    await new Promise((r) => setImmediate(r));
    return seen.splice(0);
  };
};

describe('FakeClusterStore', () => {
  it('stores Clusters with a resourceVersion that moves only when something changes', async () => {
    const store = new FakeClusterStore();
    const reported = changes(store);
    const a = store.put({ metadata: { name: 'a' }, spec });
    expect(a.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(store.put({ metadata: { name: 'a' }, spec }).metadata.resourceVersion).toBe(
      a.metadata.resourceVersion,
    );
    const patched = await store.patchConnection('a', { token: 't' });
    expect(Number(patched.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    expect(patched.spec?.connection).toEqual({ type: 'proxy', token: 't' });
    const again = await store.patchConnection('a', { token: 't' });
    expect(again.metadata.resourceVersion).toBe(patched.metadata.resourceVersion);
    expect(await reported()).toEqual(['a', 'a']); // the put and the first patch
    // Reads are copies, like objects decoded from the wire.
    store.cluster('a')!.spec!.connection!.token = 'changed';
    expect(store.cluster('a')?.spec?.connection?.token).toBe('t');
    store.remove('a');
    expect(store.clusters()).toEqual([]);
    expect(await reported()).toEqual(['a']);
  });

  it('writes conditions only on the current resourceVersion: 409 Conflict otherwise', async () => {
    const store = new FakeClusterStore();
    const old = store.put({ metadata: { name: 'a' }, spec });
    await store.patchConnection('a', { token: 't' });
    const e = await failure(store.writeConditions(old, [{ type: 'Initialized', status: 'True' }]));
    expect(isConflict(e)).toBe(true);
    expect(e.message).toBe(
      'merge patch Cluster a: 409 Conflict: Operation cannot be fulfilled on clusters.cluster.kubesphere.io "a": the object has been modified; please apply your changes to the latest version and try again',
    );
    const written = await store.writeConditions(store.cluster('a')!, [
      { type: 'Initialized', status: 'True' },
    ]);
    expect(written.status?.conditions).toEqual([{ type: 'Initialized', status: 'True' }]);
  });

  it('answers 404 for what does not exist, as the API server words it', async () => {
    const store = new FakeClusterStore();
    const gone = store.put({ metadata: { name: 'gone' }, spec });
    store.remove('gone');
    const errors = await Promise.all([
      failure(store.patchConnection('gone', { token: 't' })),
      failure(store.writeConditions(gone, [])),
    ]);
    expect(errors.every((e) => e instanceof KubeApiError && isNotFound(e))).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      'merge patch Cluster gone: 404 NotFound: clusters.cluster.kubesphere.io "gone" not found',
      'merge patch Cluster gone: 404 NotFound: clusters.cluster.kubesphere.io "gone" not found',
    ]);
    // Nothing of the proxy's to delete is not a failure.
    await expect(store.deleteService('gone', 'mc-gone')).resolves.toBe('none');
  });

  it('gives a new Service a ClusterIP, keeps it, and reports Service updates and deletions (not creations)', async () => {
    const store = new FakeClusterStore();
    const a = store.put({ metadata: { name: 'a' }, spec });
    const reported = changes(store);
    await reported();
    const first = await store.applyService(intent(a));
    expect(first).toEqual({ clusterIP: '10.96.0.10' });
    expect(await store.applyService(intent(a))).toEqual(first);
    expect(await reported()).toEqual([]);
    await store.applyService(intent(a, 'LoadBalancer'));
    expect(await reported()).toEqual(['a']);
    expect(store.service('a')?.spec).toMatchObject({ type: 'LoadBalancer', clusterIP: '10.96.0.10' });
    store.setIngress('a', '203.0.113.10', 'mc-a');
    expect(await store.applyService(intent(a, 'LoadBalancer'))).toEqual({
      clusterIP: '10.96.0.10',
      ingress: '203.0.113.10',
    });
    // Leaving type LoadBalancer clears the ingress at once.
    expect(await store.applyService(intent(a))).toEqual({ clusterIP: '10.96.0.10' });
    await reported();
    await expect(store.deleteService('a', 'mc-a')).resolves.toBe('deleted');
    expect(store.service('a')).toBeUndefined();
    expect(await reported()).toEqual(['a']);
  });

  it("neither applies over nor deletes a Service that is not the proxy's (its labels)", async () => {
    const store = new FakeClusterStore();
    const a = store.put({ metadata: { name: 'a' }, spec });
    const user = { metadata: { name: 'mc-a', labels: { app: 'mine' } }, spec: { ports: [{ port: 443 }] } };
    store.putService(user);
    const e = await failure(store.applyService(intent(a)));
    expect(isConflict(e)).toBe(true);
    expect(e.message).toBe(
      "apply patch Service kubesphere-system/mc-a: 409 Conflict: Service kubesphere-system/mc-a exists and is not tower-proxy's (it lacks the labels app.kubernetes.io/managed-by=tower-proxy, tower.knet.io/cluster=a); the proxy leaves it alone: delete or rename that Service to let the proxy create its own",
    );
    await expect(store.deleteService('a', 'mc-a')).resolves.toBe('none');
    expect(store.service('a')?.metadata?.labels).toEqual({ app: 'mine' });
    // One of the proxy's, relabelled for another cluster, is not the proxy's Service of this one.
    store.removeService('a');
    await store.applyService(intent(a));
    const ours = store.service('a')!;
    store.putService({
      ...ours,
      metadata: { ...ours.metadata, labels: { ...ours.metadata?.labels, 'tower.knet.io/cluster': 'b' } },
    });
    await expect(store.deleteService('a', 'mc-a')).resolves.toBe('none');
    expect(store.service('a')).toBeDefined();
  });

  it('fails the next call as told, once, with the operation named', async () => {
    const store = new FakeClusterStore();
    const a = store.put({ metadata: { name: 'a' }, spec });
    store.failNext('applyService', statusError(500, 'InternalError', 'etcdserver: request timed out'));
    const e = await failure(store.applyService(intent(a)));
    expect(e.message).toBe(
      'apply patch Service kubesphere-system/mc-a: 500 InternalError: etcdserver: request timed out',
    );
    expect(store.service('a')).toBeUndefined();
    await expect(store.applyService(intent(a))).resolves.toEqual({ clusterIP: '10.96.0.10' });
  });

  it('is synced until stopped, or until a test says its watches are refused', async () => {
    const store = new FakeClusterStore();
    await store.start();
    expect(store.synced).toBe(true);
    store.synced = false; // e.g. a watch refused with 429 'storage is (re)initializing'
    expect(store.synced).toBe(false);
    store.synced = true;
    await store.stop();
    expect(store.synced).toBe(false);
  });

  it('records events', () => {
    const store = new FakeClusterStore();
    const a = store.put({ metadata: { name: 'a' }, spec });
    store.record(a, { type: 'Warning', reason: 'R', message: 'm' });
    expect(store.events).toEqual([{ cluster: 'a', type: 'Warning', reason: 'R', message: 'm' }]);
  });
});
