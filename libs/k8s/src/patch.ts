import { PatchStrategy, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { resourcePath, type ResourceRef } from './discovery';
import { wrapApiError } from './errors';
import { kubeRequest } from './request';

/** The four ways to change an object in place, each with its own Content-Type. */
export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

export const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: PatchStrategy.MergePatch,
  json: PatchStrategy.JsonPatch,
  strategic: PatchStrategy.StrategicMergePatch,
  apply: PatchStrategy.ServerSideApply,
};

export interface ObjectRef extends ResourceRef {
  name: string;
}

export interface PatchOptions {
  /** Required for 'apply' (server-side apply); recorded in managedFields. */
  fieldManager?: string;
  /** Server-side apply only: take ownership of conflicting fields. */
  force?: boolean;
  dryRun?: boolean;
}

/** One RFC 6902 operation. */
export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/**
 * Patches any object (built-in or custom, or a sub-resource such as `status`) with the right
 * Content-Type for the patch type:
 * - merge: RFC 7386 JSON merge patch (lists are replaced; `null` deletes a key);
 * - json: RFC 6902 operations; a `test` op on /metadata/resourceVersion gives optimistic locking;
 * - strategic: Kubernetes strategic merge (built-in kinds only; lists merge by key);
 * - apply: server-side apply of a full intent object (needs fieldManager, may `force`).
 */
export async function patchObject<T extends KubernetesObject = KubernetesObject>(
  kc: KubeConfig,
  ref: ObjectRef,
  patch: object | JsonPatchOp[],
  type: PatchType,
  opts: PatchOptions = {},
): Promise<T> {
  if (type === 'apply' && !opts.fieldManager)
    throw new Error('patchObject: server-side apply needs a fieldManager');
  if (type !== 'apply' && opts.force)
    throw new Error('patchObject: force is only valid for server-side apply');
  if (type === 'json' && !Array.isArray(patch))
    throw new Error('patchObject: a JSON patch is an array of operations');
  try {
    return await kubeRequest<T>(kc, {
      method: 'PATCH',
      path: await resourcePath(kc, ref),
      query: {
        fieldManager: opts.fieldManager,
        force: type === 'apply' && opts.force ? 'true' : undefined,
        dryRun: opts.dryRun ? 'All' : undefined,
      },
      body: patch,
      contentType: PATCH_CONTENT_TYPES[type],
    });
  } catch (e) {
    throw wrapApiError(`${type} patch ${describeRef(ref)}`, e);
  }
}

/** "Secret ns/name", "Cluster name/status", for messages. */
export function describeRef(ref: ResourceRef): string {
  const name = ref.name ? ` ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}` : '';
  return `${ref.kind}${name}${ref.subresource ? `/${ref.subresource}` : ''}`;
}
