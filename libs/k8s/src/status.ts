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

/** What `setCondition` needs of a condition: metav1.Condition, or a CRD's own kind (KubeSphere's has `lastUpdateTime`). */
export interface ConditionLike {
  type: string;
  status: string;
  lastTransitionTime?: string;
  lastUpdateTime?: string;
}

type Timestamps = 'lastTransitionTime' | 'lastUpdateTime';

/**
 * Returns `conditions` with `next` set (pure). lastTransitionTime changes only when the status
 * changes, as the API conventions require; reason/message/observedGeneration update in place; a
 * condition that does not change at all is kept as it was. With `lastUpdateTime: true` (a CRD's
 * own conditions that carry one, like KubeSphere's) that timestamp moves whenever anything changes.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: Omit<Condition, 'lastTransitionTime'>,
  now?: Date,
): Condition[];
export function setCondition<C extends ConditionLike>(
  conditions: readonly C[] | undefined,
  next: Omit<C, Timestamps>,
  now: Date,
  opts: { lastUpdateTime: boolean },
): C[];
export function setCondition<C extends ConditionLike>(
  conditions: readonly C[] | undefined,
  next: Omit<C, Timestamps>,
  now: Date = new Date(),
  opts: { lastUpdateTime?: boolean } = {},
): C[] {
  const ts = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === next.type);
  const prev = i >= 0 ? list[i] : undefined;
  if (prev && sameFields(prev, next)) return list;
  const merged = {
    ...next,
    ...(opts.lastUpdateTime ? { lastUpdateTime: ts } : {}),
    lastTransitionTime: prev && prev.status === next.status ? (prev.lastTransitionTime ?? ts) : ts,
  } as unknown as C;
  if (i >= 0) list[i] = merged;
  else list.push(merged);
  return list;
}

/** True when `prev` holds exactly the fields of `next`, timestamps aside. */
function sameFields(prev: ConditionLike, next: object): boolean {
  const fields = (o: object) =>
    Object.entries(o).filter(
      ([k, v]) => v !== undefined && k !== 'lastTransitionTime' && k !== 'lastUpdateTime',
    );
  const a = fields(prev);
  const b = fields(next);
  const get = new Map(a);
  return a.length === b.length && b.every(([k, v]) => get.has(k) && get.get(k) === v);
}

export function getCondition<C extends ConditionLike = Condition>(
  conditions: readonly C[] | undefined,
  type: string,
): C | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly ConditionLike[] | undefined, type: string): boolean {
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
