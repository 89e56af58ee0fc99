import type { V1Pod } from '@kubernetes/client-node';
import { createFakeClientPod, discoverFacts, planClient } from '@knet/podgw';
import { RecordingLogger } from '@knet/runtime';
import { podFinished, superviseClient, type OwnPod } from './supervisor';
import { Watchdog } from './watchdog';

/** A Job's pod: the app container `app` in the given state, the sidecar running. */
const jobPod = (app: 'running' | number): V1Pod => ({
  spec: { restartPolicy: 'Never', containers: [{ name: 'app' }, { name: 'gateway-sidecar' }] },
  status: {
    phase: 'Running',
    containerStatuses: [
      {
        name: 'app',
        image: 'busybox',
        imageID: '',
        ready: app === 'running',
        restartCount: 0,
        state: app === 'running' ? { running: {} } : { terminated: { exitCode: app } },
      },
    ],
  },
});

/** An API error as @kubernetes/client-node throws it. */
const apiError = (code: number, message: string) => Object.assign(new Error(message), { code });

/** The pod as the API server answers it, one answer (or error) per read; the last one repeats. */
function ownPod(...answers: (V1Pod | Error)[]): OwnPod & { reads: number } {
  const pod = {
    id: 'jobs/job-x7k2p',
    containerName: 'gateway-sidecar',
    pollIntervalMs: 5,
    reads: 0,
    read: async () => {
      const a = answers[Math.min(pod.reads++, answers.length - 1)] as V1Pod | Error;
      if (a instanceof Error) throw a;
      return a;
    },
  };
  return pod;
}

/** A watchdog that runs until its signal aborts and records what happened to it. */
function fakeWatchdog() {
  const events: string[] = [];
  return {
    events,
    run: (signal: AbortSignal) =>
      new Promise<void>((resolve) => {
        events.push('run');
        signal.addEventListener('abort', () => {
          events.push('stopped');
          resolve();
        });
      }),
    release: async () => {
      events.push('released');
    },
  };
}

describe('podFinished', () => {
  it('polls until the other containers have terminated; a change of what it waits for is logged once', async () => {
    const pod = ownPod(jobPod('running'), jobPod('running'), jobPod('running'), jobPod(0));
    const logger = new RecordingLogger();
    expect(await podFinished(pod, logger, new AbortController().signal)).toBe(true);
    expect(pod.reads).toBe(4);
    expect(logger.lines).toEqual([
      { level: 'debug', msg: 'pod still working', fields: { waitingFor: ['app'] } },
    ]);
  });

  it('API errors are logged with the pod and retried: nothing is fatal', async () => {
    const pod = ownPod(
      apiError(
        403,
        'pods "job-x7k2p" is forbidden: User "system:serviceaccount:jobs:routed" cannot get resource "pods"',
      ),
      apiError(503, 'connect ECONNREFUSED 10.96.0.1:443'),
      jobPod(1),
    );
    const logger = new RecordingLogger();
    expect(await podFinished(pod, logger, new AbortController().signal)).toBe(true);
    expect(logger.lines).toEqual([
      {
        level: 'warn',
        msg: 'cannot read this pod',
        fields: {
          err: 'pods "job-x7k2p" is forbidden: User "system:serviceaccount:jobs:routed" cannot get resource "pods"',
          pod: 'jobs/job-x7k2p',
        },
      },
      {
        level: 'warn',
        msg: 'cannot read this pod',
        fields: { err: 'connect ECONNREFUSED 10.96.0.1:443', pod: 'jobs/job-x7k2p' },
      },
    ]);
  });

  it('a pod that never finishes (a Deployment) is read once, then only the signal is awaited', async () => {
    const deployment: V1Pod = {
      ...jobPod('running'),
      spec: { ...jobPod('running').spec!, restartPolicy: 'Always' },
    };
    const pod = ownPod(deployment);
    const logger = new RecordingLogger();
    const shutdown = new AbortController();
    const finished = podFinished(pod, logger, shutdown.signal);
    await new Promise((r) => setTimeout(r, 100)); // 20 poll intervals
    expect(pod.reads).toBe(1);
    shutdown.abort();
    expect(await finished).toBe(false);
    expect(logger.lines).toEqual([
      {
        level: 'info',
        msg: 'this pod never finishes by itself: no longer reading it',
        fields: {
          pod: 'jobs/job-x7k2p',
          reason: 'restartPolicy Always: its containers are restarted, so it never finishes',
        },
      },
    ]);
  });

  it('stops polling as soon as the signal aborts', async () => {
    const pod = { ...ownPod(jobPod('running')), pollIntervalMs: 60_000 };
    const shutdown = new AbortController();
    const finished = podFinished(pod, new RecordingLogger(), shutdown.signal);
    setTimeout(() => shutdown.abort(), 20);
    const started = Date.now();
    expect(await finished).toBe(false);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('superviseClient', () => {
  it('the pod finished: stops the watchdog, releases the lease, says why', async () => {
    const watchdog = fakeWatchdog();
    const logger = new RecordingLogger();
    const end = await superviseClient(
      watchdog,
      ownPod(jobPod('running'), jobPod(0)),
      logger,
      new AbortController().signal,
    );
    expect(end).toBe('pod finished');
    expect(watchdog.events).toEqual(['run', 'stopped', 'released']);
    expect(logger.lines).toContainEqual({
      level: 'info',
      msg: 'the other containers have finished: exiting',
      fields: { pod: 'jobs/job-x7k2p' },
    });
  });

  it.each([
    ['without a pod to watch', undefined],
    ['while the pod is still working', ownPod(jobPod('running'))],
  ])('shutdown %s: stops the watchdog and releases the lease', async (_what, pod) => {
    const watchdog = fakeWatchdog();
    const shutdown = new AbortController();
    setTimeout(() => shutdown.abort(), 20);
    expect(await superviseClient(watchdog, pod, new RecordingLogger(), shutdown.signal)).toBe('shutdown');
    expect(watchdog.events).toEqual(['run', 'stopped', 'released']);
  });

  it('with the real watchdog on a fake client pod: routed first, then gone when the Job is done', async () => {
    const { ctx, net } = await createFakeClientPod({ hostname: 'web-0', natConf: 'web 10' });
    const facts = await discoverFacts(ctx);
    const routed: boolean[] = [];
    const watchdog = new Watchdog(ctx, planClient(ctx.settings, ctx.nat, facts), facts, {
      intervalMs: 5,
      retryMs: 5,
      onRouted: (r) => routed.push(r),
    });
    const pod = ownPod(jobPod('running'), jobPod('running'), jobPod(0));
    expect(await superviseClient(watchdog, pod, new RecordingLogger(), new AbortController().signal)).toBe(
      'pod finished',
    );
    expect(routed).toEqual([true]);
    expect(net.ping.sent[0]).toEqual({ address: '172.16.0.1', device: 'vxlan0' });
    expect((await net.ip.listAddresses({ dev: 'vxlan0' })).map((a) => a.cidr)).toEqual(['172.16.0.10/24']);
  });
});
