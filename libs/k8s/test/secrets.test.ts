import { CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { errorMessage } from '@knet/runtime';
import { until } from '@knet/testing';
import {
  KubeApiError,
  ResilientInformer,
  Secrets,
  decodeApiError,
  encodeSecretData,
  patchObject,
  secretData,
} from '../src';
import { controlPlaneBed } from './bed';

jest.setTimeout(60_000);

const ns = 'secrets-test';
const bed = controlPlaneBed({
  async setUp({ cp }) {
    await cp.kubectlOk(['create', 'namespace', ns]);
  },
});

describe('Secrets against the real API server', () => {
  it('creates, reads, updates and deletes; a missing Secret is undefined', async () => {
    const s = new Secrets(bed.kc);
    expect(await s.get(ns, 'nope')).toBeUndefined();
    await s.create(ns, { metadata: { name: 'a' }, data: encodeSecretData({ token: 'abc' }) });
    const got = await s.get(ns, 'a');
    expect(secretData(got)['token']?.toString()).toBe('abc');
    got!.data = encodeSecretData({ token: 'def' });
    await s.update(ns, got!);
    expect(secretData(await s.get(ns, 'a'))['token']?.toString()).toBe('def');
    // the API server confirms with kubectl too
    expect(
      Buffer.from(
        await bed.cp.kubectlOk(['get', 'secret', 'a', '-n', ns, '-o', 'jsonpath={.data.token}']),
        'base64',
      ).toString(),
    ).toBe('def');
    expect(await s.delete(ns, 'a')).toBe(true);
    expect(await s.delete(ns, 'a')).toBe(false);
  });

  it('a stale update gets a real 409 that decodes to Conflict', async () => {
    const s = new Secrets(bed.kc);
    const created = await s.create(ns, { metadata: { name: 'stale' }, stringData: { v: '1' } });
    await s.update(ns, { ...created, stringData: { v: '2' } });
    const err = await s.update(ns, { ...created, stringData: { v: '3' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).decoded.code).toBe(409);
    expect((err as KubeApiError).message).toMatch(
      /^update Secret secrets-test\/stale: 409 Conflict: .*modified/,
    );
    expect(errorMessage(err)).not.toContain('\n');
  });

  it('upsert survives concurrent writers: 20 parallel increments all land', async () => {
    const s = new Secrets(bed.kc, 50);
    const bump = (cur: V1Secret | undefined): V1Secret => {
      const n = Number(secretData(cur)['n']?.toString() ?? '0');
      return { ...(cur ?? { metadata: { name: 'counter' } }), data: encodeSecretData({ n: String(n + 1) }) };
    };
    const results = await Promise.all(Array.from({ length: 20 }, () => s.upsert(ns, 'counter', bump)));
    expect(results.every((r) => r.changed)).toBe(true);
    expect(secretData(await s.get(ns, 'counter'))['n']?.toString()).toBe('20');
    // a no-op mutation does not write
    const again = await s.upsert(ns, 'counter', (cur) => cur!);
    expect(again.changed).toBe(false);
  });

  it('patches with merge, JSON, strategic and server-side apply content types', async () => {
    const s = new Secrets(bed.kc);
    await s.create(ns, { metadata: { name: 'p', labels: { a: '1' } }, stringData: { k: 'v' } });
    const ref = { apiVersion: 'v1', kind: 'Secret', name: 'p', namespace: ns };

    await patchObject(bed.kc, ref, { metadata: { labels: { b: '2' } } }, 'merge');
    await patchObject(bed.kc, ref, [{ op: 'add', path: '/metadata/labels/c', value: '3' }], 'json');
    await patchObject(bed.kc, ref, { metadata: { labels: { d: '4' } } }, 'strategic');
    await patchObject(
      bed.kc,
      ref,
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'p', namespace: ns, labels: { e: '5' } } },
      'apply',
      { fieldManager: 'knet-test' },
    );
    const got = await s.get(ns, 'p');
    expect(got?.metadata?.labels).toEqual({ a: '1', b: '2', c: '3', d: '4', e: '5' });
    expect(
      got?.metadata?.managedFields?.some((f) => f.manager === 'knet-test' && f.operation === 'Apply'),
    ).toBe(true);

    // a failed JSON-patch test op is refused by the server, not silently applied
    const err = await patchObject(
      bed.kc,
      ref,
      [{ op: 'test', path: '/metadata/labels/a', value: 'x' }],
      'json',
    ).catch((e: unknown) => e);
    expect(decodeApiError(err).code).toBe(422);
    // strategic merge is refused for what it cannot handle (a CRD-less unknown kind is a 404 from discovery)
    await expect(patchObject(bed.kc, { ...ref, kind: 'NoSuchKind' }, {}, 'merge')).rejects.toThrow(
      /has no kind NoSuchKind/,
    );
  });

  it('an informer sees add, update and delete, and restarts after the API server goes away', async () => {
    const core = bed.kc.makeApiClient(CoreV1Api);
    const seen: string[] = [];
    const informer = new ResilientInformer<V1Secret>({
      kc: bed.kc,
      path: `/api/v1/namespaces/${ns}/secrets`,
      list: () => core.listNamespacedSecret({ namespace: ns, labelSelector: 'watch=me' }),
      labelSelector: 'watch=me',
      onAdd: (o) => seen.push(`add:${o.metadata?.name}`),
      onUpdate: (o) => seen.push(`update:${o.metadata?.name}`),
      onDelete: (o) => seen.push(`delete:${o.metadata?.name}`),
      minBackoffMs: 200,
      maxBackoffMs: 1000,
    });
    try {
      await informer.start();
      await informer.synced;
      expect(informer.watching).toBe(true);
      const s = new Secrets(bed.kc);
      await s.create(ns, { metadata: { name: 'w1', labels: { watch: 'me' } }, stringData: { a: '1' } });
      await until('the informer to see add:w1', () => seen.includes('add:w1'));
      await patchObject(
        bed.kc,
        { apiVersion: 'v1', kind: 'Secret', name: 'w1', namespace: ns },
        { stringData: { a: '2' } },
        'merge',
      );
      await until('the informer to see update:w1', () => seen.includes('update:w1'));
      await s.delete(ns, 'w1');
      await until('the informer to see delete:w1', () => seen.includes('delete:w1'));
      expect(informer.list(ns)).toHaveLength(0);

      // Crash the API server: client-node's informer would stop for good; ours restarts.
      await bed.cp.restart('kube-apiserver', { crash: true, downMs: 1500 });
      await s.create(ns, { metadata: { name: 'w2', labels: { watch: 'me' } }, stringData: { a: '1' } });
      await until('the informer to see add:w2', () => seen.includes('add:w2'), 30_000);
      expect(informer.restarts).toBeGreaterThan(0);
      expect(informer.get('w2', ns)?.metadata?.name).toBe('w2');
      expect(informer.watching).toBe(true);
    } finally {
      await informer.stop();
    }
    expect(informer.watching).toBe(false);
  });
});
