import type { V1Pod } from '@kubernetes/client-node';
import { errorMessage, sleep, type Logger } from '@knet/runtime';
import { podProgress } from './pod-status';
import type { Watchdog } from './watchdog';

/** This pod as the sidecar watches it, to exit once the other containers have finished. */
export interface OwnPod {
  /** `namespace/name`, for logs. */
  id: string;
  /** Reads the pod (`GET` on the pod: all the RBAC the sidecar needs). */
  read(): Promise<V1Pod>;
  /** This sidecar's container name in the pod spec (it does not wait for itself). */
  containerName: string;
  pollIntervalMs: number;
}

/**
 * Reads the pod every `pollIntervalMs` until every other container has terminated for good (true)
 * or `signal` aborts (false). A pod that can never finish (restartPolicy Always, or this container
 * a native sidecar) is read once, then only `signal` is awaited. Nothing is fatal: an API error (RBAC not there yet, the API server
 * restarting) is logged and the next poll tries again.
 */
export async function podFinished(pod: OwnPod, logger: Logger, signal: AbortSignal): Promise<boolean> {
  let lastWaiting = '';
  do {
    try {
      const progress = podProgress(await pod.read(), pod.containerName);
      if (progress.finished) return true;
      if (progress.never) {
        logger.info(
          { pod: pod.id, reason: progress.never },
          'this pod never finishes by itself: no longer reading it',
        );
        if (!signal.aborted)
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
        return false;
      }
      const waiting = progress.waitingFor.join(', ');
      if (waiting !== lastWaiting) logger.debug({ waitingFor: progress.waitingFor }, 'pod still working');
      lastWaiting = waiting;
    } catch (e) {
      logger.warn({ err: errorMessage(e), pod: pod.id }, 'cannot read this pod');
    }
  } while (await sleep(pod.pollIntervalMs, signal));
  return false;
}

/** Why the sidecar stopped. */
export type SidecarEnd = 'pod finished' | 'shutdown';

/**
 * client-sidecar's life: the watchdog keeps the pod routed until shutdown or, with `pod`, until
 * the pod's other containers have finished (so a Job completes); then the lease is released.
 */
export async function superviseClient(
  watchdog: Pick<Watchdog, 'run' | 'release'>,
  pod: OwnPod | undefined,
  logger: Logger,
  shutdown: AbortSignal,
): Promise<SidecarEnd> {
  const done = new AbortController();
  const watching = watchdog.run(AbortSignal.any([shutdown, done.signal]));
  const finished = pod ? await podFinished(pod, logger, shutdown) : false;
  if (finished) {
    logger.info({ pod: pod?.id }, 'the other containers have finished: exiting');
    done.abort();
  }
  await watching;
  await watchdog.release();
  return finished ? 'pod finished' : 'shutdown';
}
