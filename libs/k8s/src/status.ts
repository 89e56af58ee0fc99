import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { patchObject, type ObjectRef } from './patch';

/** A metav1.Condition. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/**
 * Returns `conditions` with `next` set (pure). lastTransitionTime changes only when the status
 * changes, as the API conventions require; reason/message/observedGeneration update in place.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now: Date = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  const merged: Condition = {
    ...next,
    lastTransitionTime:
      prev && prev.status === next.status
        ? prev.lastTransitionTime
        : now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  if (i >= 0) list[i] = merged;
  else list.push(merged);
  return list;
}

export function getCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

/**
 * Writes `status` through the status sub-resource (merge patch), which is the only way to change
 * status when the CRD enables `subresources.status` — and needs RBAC on `<plural>/status`.
 */
export async function patchStatus<T extends KubernetesObject>(
  kc: KubeConfig,
  ref: ObjectRef,
  status: Record<string, unknown>,
): Promise<T> {
  return patchObject<T>(kc, { ...ref, subresource: 'status' }, { status }, 'merge');
}
