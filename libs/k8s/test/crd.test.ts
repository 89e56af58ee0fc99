import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, type KubernetesObject } from '@kubernetes/client-node';
import { errorMessage } from '@knet/runtime';
import {
  EventRecorder,
  addFinalizer,
  checkApiServer,
  decodeApiError,
  hasFinalizer,
  isConditionTrue,
  kubeRequest,
  loadKubeConfig,
  patchObject,
  patchStatus,
  removeFinalizer,
  resourcePath,
  setCondition,
  type Condition,
} from '../src';
import { controlPlaneBed } from './bed';

jest.setTimeout(60_000);

interface Widget extends KubernetesObject {
  spec: { port: number; mode?: string };
  status?: { conditions?: Condition[] };
}

const widgets = '/apis/test.knet.io/v1/widgets';
const bed = controlPlaneBed({
  async setUp({ cp }) {
    await cp.kubectlOk(['apply', '-f', join(__dirname, 'fixtures/widget-crd.yaml')]);
    await cp.kubectlOk(['wait', '--for=condition=Established', 'crd/widgets.test.knet.io', '--timeout=30s']);
  },
});

const widget = (name: string, spec: object): object => ({
  apiVersion: 'test.knet.io/v1',
  kind: 'Widget',
  metadata: { name },
  spec,
});

describe('a CRD on the real API server', () => {
  it('rejects input that breaks the schema with 422 Invalid naming the field', async () => {
    const err = await kubeRequest(bed.kc, {
      method: 'POST',
      path: widgets,
      body: widget('bad', { port: 70000, mode: 'tunnel' }),
    }).catch((e: unknown) => e);
    const d = decodeApiError(err);
    expect(d.code).toBe(422);
    expect(d.reason).toBe('Invalid');
    expect(d.causes.map((c) => c.field).sort()).toEqual(['spec.mode', 'spec.port']);
    expect(d.message).toMatch(
      /spec.port: Invalid value: 70000: spec.port in body should be less than or equal to 65535/,
    );

    const missing = decodeApiError(
      await kubeRequest(bed.kc, { method: 'POST', path: widgets, body: widget('bad2', {}) }).catch(
        (e: unknown) => e,
      ),
    );
    expect(missing.code).toBe(422);
    expect(missing.message).toMatch(/spec.port: Required value/);
  });

  it('resolves the plural through discovery', async () => {
    expect(
      await resourcePath(bed.kc, {
        apiVersion: 'test.knet.io/v1',
        kind: 'Widget',
        name: 'w',
        subresource: 'status',
      }),
    ).toBe('/apis/test.knet.io/v1/widgets/w/status');
    expect(await resourcePath(bed.kc, { apiVersion: 'v1', kind: 'Secret', name: 's', namespace: 'n' })).toBe(
      '/api/v1/namespaces/n/secrets/s',
    );
    await expect(resourcePath(bed.kc, { apiVersion: 'v1', kind: 'Secret', name: 's' })).rejects.toThrow(
      /is namespaced/,
    );
  });

  it('writes status only through the status sub-resource, keeps conditions, and manages finalizers', async () => {
    const created = await kubeRequest<Widget>(bed.kc, {
      method: 'POST',
      path: widgets,
      body: widget('w1', { port: 443 }),
    });
    // status in a main-resource write is ignored when the status sub-resource is on
    const ref = { apiVersion: 'test.knet.io/v1', kind: 'Widget', name: 'w1' };
    await patchObject(bed.kc, ref, { status: { conditions: [] } }, 'merge');
    expect(
      (await kubeRequest<Widget>(bed.kc, { method: 'GET', path: `${widgets}/w1` })).status,
    ).toBeUndefined();

    const t0 = new Date('2026-01-01T00:00:00Z');
    let conditions = setCondition(
      undefined,
      { type: 'Ready', status: 'False', reason: 'Pending', message: 'waiting' },
      t0,
    );
    await patchStatus(bed.kc, ref, { conditions });
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'False', reason: 'StillPending', message: 'still' },
      new Date(),
    );
    expect(conditions[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    conditions = setCondition(
      conditions,
      { type: 'Ready', status: 'True', reason: 'Up', message: 'ok' },
      new Date('2026-02-01T00:00:00Z'),
    );
    const after = await patchStatus<Widget>(bed.kc, ref, { conditions });
    expect(isConditionTrue(after.status?.conditions, 'Ready')).toBe(true);
    expect(after.status?.conditions?.[0]?.lastTransitionTime).toBe('2026-02-01T00:00:00Z');
    expect(after.spec.port).toBe(443);

    const withF = await addFinalizer(bed.kc, created, 'test.knet.io/cleanup');
    expect(hasFinalizer(withF, 'test.knet.io/cleanup')).toBe(true);
    expect(await addFinalizer(bed.kc, withF, 'test.knet.io/cleanup')).toBe(withF); // idempotent, no write
    const withTwo = await addFinalizer(bed.kc, withF, 'test.knet.io/other');
    // a stale copy cannot clobber a concurrent change: the guarded JSON patch is refused
    await expect(removeFinalizer(bed.kc, withF, 'test.knet.io/cleanup')).rejects.toThrow(/422|test/i);

    await kubeRequest(bed.kc, { method: 'DELETE', path: `${widgets}/w1` });
    const deleting = await kubeRequest<Widget>(bed.kc, { method: 'GET', path: `${widgets}/w1` });
    expect(deleting.metadata?.deletionTimestamp).toBeTruthy();
    const one = await removeFinalizer(
      bed.kc,
      { ...withTwo, metadata: deleting.metadata },
      'test.knet.io/other',
    );
    expect(await removeFinalizer(bed.kc, one!, 'test.knet.io/cleanup')).toBeDefined();
    const gone = await kubeRequest(bed.kc, { method: 'GET', path: `${widgets}/w1` }).catch(
      (e: unknown) => decodeApiError(e).code,
    );
    expect(gone).toBe(404);
  });

  it('records Events that kubectl describe shows, aggregating repeats', async () => {
    const w = await kubeRequest<Widget>(bed.kc, {
      method: 'POST',
      path: widgets,
      body: widget('w2', { port: 80 }),
    });
    const rec = new EventRecorder(bed.kc, 'knet-test', { host: 'node-a' });
    await rec.normal(w, 'Provisioned', 'port 80 allocated');
    await rec.warning(w, 'AgentDown', 'agent did not answer');
    await rec.warning(w, 'AgentDown', 'agent did not answer');
    const core = bed.kc.makeApiClient(CoreV1Api);
    const list = await core.listNamespacedEvent({
      namespace: 'default',
      fieldSelector: 'involvedObject.name=w2',
    });
    const byReason = Object.fromEntries(list.items.map((e) => [e.reason, e]));
    expect(byReason['Provisioned']?.type).toBe('Normal');
    expect(byReason['AgentDown']?.count).toBe(2);
    expect(byReason['AgentDown']?.source?.component).toBe('knet-test');
    expect(list.items).toHaveLength(2);
  });
});

describe('bad credentials and addresses give one clear line', () => {
  it('a missing, unreadable or invalid kubeconfig', () => {
    expect(() => loadKubeConfig({ kubeconfig: '/nonexistent/kubeconfig' })).toThrow(
      'kubeconfig /nonexistent/kubeconfig (from --kubeconfig) cannot be read: no such file',
    );
    const bad = join(bed.cp.dir, 'bad.kubeconfig');
    writeFileSync(bad, 'apiVersion: v1\nclusters: [oops\n');
    expect(() => loadKubeConfig({ kubeconfig: bad })).toThrow(
      /^kubeconfig .*bad.kubeconfig \(from --kubeconfig\) is not a valid kubeconfig: /,
    );
    expect(() => loadKubeConfig({ kubeconfig: bed.cp.kubeconfigPath, context: 'nope' })).toThrow(
      'context "nope" not in kubeconfig (has: testbed)',
    );
    expect(() => loadKubeConfig({ env: { KUBECONFIG: '/a:/b' } })).toThrow(
      'kubeconfig from $KUBECONFIG not found: /a, /b; fix KUBECONFIG or pass --kubeconfig',
    );
  });

  it('an unreachable API server', async () => {
    const text = readFileSync(bed.cp.kubeconfigPath, 'utf8').replace(
      /https:\/\/127\.0\.0\.1:\d+/,
      'https://127.0.0.1:1',
    );
    const file = join(bed.cp.dir, 'unreachable.kubeconfig');
    writeFileSync(file, text);
    const err = errorMessage(
      await checkApiServer(loadKubeConfig({ kubeconfig: file }).kc, 5000).catch((e: unknown) => e),
    );
    expect(err).toMatch(
      /^API server https:\/\/127.0.0.1:1: cannot reach the API server \(ECONNREFUSED: .*\); check the kubeconfig/,
    );
    expect(err).not.toContain('\n');
    expect((await checkApiServer(bed.kc)).gitVersion).toBe('v1.34.4');
  });

  it('a ServiceAccount without RBAC gets a 403 that names RBAC', async () => {
    const file = await bed.cp.serviceAccountKubeconfig('rbac-test', 'nobody');
    const sa = loadKubeConfig({ kubeconfig: file }).kc;
    const err: unknown = await sa
      .makeApiClient(CoreV1Api)
      .listNamespacedSecret({ namespace: 'rbac-test' })
      .catch((e: unknown) => e);
    expect(decodeApiError(err).code).toBe(403);
    const wrapped = errorMessage(
      await patchObject(
        sa,
        { apiVersion: 'v1', kind: 'Secret', name: 'x', namespace: 'rbac-test' },
        {},
        'merge',
      ).catch((e: unknown) => e),
    );
    expect(wrapped).toMatch(
      /^merge patch Secret rbac-test\/x: 403 Forbidden: secrets "x" is forbidden: User "system:serviceaccount:rbac-test:nobody" .*\(RBAC: grant/,
    );
  });
});
