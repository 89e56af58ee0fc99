import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { errorMessage } from '@knet/runtime';
import { isConflict, isNotFound } from './errors';
import { patchObject, type JsonPatchOp, type ObjectRef } from './patch';

/** True when the object carries the finalizer. */
export function hasFinalizer(obj: KubernetesObject, finalizer: string): boolean {
  return (obj.metadata?.finalizers ?? []).includes(finalizer);
}

/** True when deletion was requested (deletionTimestamp set); clean up, then remove the finalizer. */
export function isBeingDeleted(obj: KubernetesObject): boolean {
  return Boolean(obj.metadata?.deletionTimestamp);
}

function refOf(obj: KubernetesObject): ObjectRef {
  const md = obj.metadata ?? {};
  if (!obj.apiVersion || !obj.kind || !md.name)
    throw new Error('finalizers: object needs apiVersion, kind and metadata.name');
  return {
    apiVersion: obj.apiVersion,
    kind: obj.kind,
    name: md.name,
    ...(md.namespace ? { namespace: md.namespace } : {}),
  };
}

/**
 * Adds `finalizer` with a JSON patch guarded by a `test` of the finalizer list, so a concurrent
 * change is never overwritten; on a lost race it re-reads nothing and reports `conflict` for the
 * caller's next reconcile. Returns the patched object, or the input when already present.
 */
export async function addFinalizer<T extends KubernetesObject>(
  kc: KubeConfig,
  obj: T,
  finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  const list = obj.metadata?.finalizers;
  const ops: JsonPatchOp[] = list
    ? [
        { op: 'test', path: '/metadata/finalizers', value: list },
        { op: 'add', path: '/metadata/finalizers/-', value: finalizer },
      ]
    : [{ op: 'add', path: '/metadata/finalizers', value: [finalizer] }];
  return patchObject<T>(kc, refOf(obj), ops, 'json');
}

/**
 * Removes `finalizer` (JSON patch guarded by a `test` of the list). A missing object counts as done.
 * Returns undefined when the object is gone afterwards.
 */
export async function removeFinalizer<T extends KubernetesObject>(
  kc: KubeConfig,
  obj: T,
  finalizer: string,
): Promise<T | undefined> {
  const list = obj.metadata?.finalizers ?? [];
  const i = list.indexOf(finalizer);
  if (i < 0) return obj;
  const ops: JsonPatchOp[] = [
    { op: 'test', path: '/metadata/finalizers', value: list },
    { op: 'remove', path: `/metadata/finalizers/${i}` },
  ];
  try {
    return await patchObject<T>(kc, refOf(obj), ops, 'json');
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** True when a finalizer patch failed because the object changed meanwhile (retry on the next reconcile). */
export function isPatchRace(e: unknown): boolean {
  return isConflict(e) || /test operation failed|testing value/i.test(errorMessage(e));
}
