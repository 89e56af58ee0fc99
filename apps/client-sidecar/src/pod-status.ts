import type { V1Pod } from '@kubernetes/client-node';

export interface PodProgress {
  /** True when every app container (all but this sidecar) has terminated for good. */
  finished: boolean;
  /** Why not yet: the containers still running, or the restart policy. */
  waitingFor: string[];
  /** Set when the pod can never finish in a way the sidecar must notice: why (stop reading it). */
  never?: string;
}

/**
 * Whether this pod's work is done, so the sidecar can exit 0 and let a Job complete
 * (pod-gateway#55). Pure. Containers other than `self` count; with restartPolicy `Always` they
 * are restarted and the pod never finishes; with `OnFailure` a container that failed will be
 * restarted, so only a zero exit counts. A native sidecar `self` never needs to exit by itself.
 */
export function podProgress(pod: V1Pod, self: string): PodProgress {
  if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed')
    return { finished: true, waitingFor: [] };
  const native = pod.spec?.initContainers?.find((c) => c.name === self)?.restartPolicy === 'Always';
  if (native) {
    return {
      finished: false,
      waitingFor: ['the kubelet'],
      never:
        'a native sidecar (an init container with restartPolicy Always): the kubelet stops it once the other containers are done',
    };
  }
  const policy = pod.spec?.restartPolicy ?? 'Always';
  if (policy === 'Always') {
    return {
      finished: false,
      waitingFor: ['restartPolicy Always'],
      never: 'restartPolicy Always: its containers are restarted, so it never finishes',
    };
  }
  const apps = (pod.spec?.containers ?? []).filter((c) => c.name !== self);
  if (apps.length === 0) return { finished: false, waitingFor: ['no other containers in the pod spec'] };
  const waitingFor = apps
    .filter((c) => {
      const terminated = pod.status?.containerStatuses?.find((s) => s.name === c.name)?.state?.terminated;
      if (!terminated) return true;
      return policy === 'OnFailure' && terminated.exitCode !== 0;
    })
    .map((c) => c.name);
  return { finished: waitingFor.length === 0, waitingFor };
}
