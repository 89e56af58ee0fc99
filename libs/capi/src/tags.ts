/**
 * Device and IP tags: how the provider finds what it created without any state outside the API
 * objects (a crash between the create call and the status write, or `clusterctl move`, leaves only
 * the tags to go by). The names are CAPEM's, so devices and elastic IPs it created are found too.
 */

/** A device belongs to this cluster. */
export const clusterTag = (cluster: string): string => `capp:cluster-id:${cluster}`;
/** A device is this Machine's (CAPEM keys it by the Machine's name). */
export const machineTag = (machine: string): string => `capp:machine-uid:${machine}`;
/** …in this namespace (names repeat across namespaces). */
export const namespaceTag = (namespace: string): string => `capp:namespace:${namespace}`;
/** The control-plane elastic IP of a cluster (CAPEM's older, longer prefix, kept by it too). */
export const eipTag = (cluster: string): string => `cluster-api-provider-packet:cluster-id:${cluster}`;
export const CONTROL_PLANE_ROLE_TAG = 'kubernetes.io/role:master';
export const WORKER_ROLE_TAG = 'kubernetes.io/role:node';

/** The tags a Machine's device is created with: identity tags, role, then the user's extra tags. */
export function deviceTags(opts: {
  cluster: string;
  namespace: string;
  machine: string;
  controlPlane: boolean;
  extra?: readonly string[];
}): string[] {
  const tags = [
    clusterTag(opts.cluster),
    machineTag(opts.machine),
    namespaceTag(opts.namespace),
    opts.controlPlane ? CONTROL_PLANE_ROLE_TAG : WORKER_ROLE_TAG,
  ];
  for (const t of opts.extra ?? []) if (!tags.includes(t)) tags.push(t);
  return tags;
}

/** The tags that identify a Machine's device: all must be present. */
export const identityTags = (cluster: string, namespace: string, machine: string): string[] => [
  clusterTag(cluster),
  machineTag(machine),
  namespaceTag(namespace),
];

export const hasAllTags = (tags: readonly string[] | undefined, wanted: readonly string[]): boolean =>
  wanted.every((t) => tags?.includes(t) === true);
