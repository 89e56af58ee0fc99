import type { V1Pod } from '@kubernetes/client-node';
import { podProgress } from './pod-status';

const pod = (
  restartPolicy: string | undefined,
  states: Record<string, 'running' | number | undefined>,
  phase = 'Running',
): V1Pod => ({
  spec: { restartPolicy, containers: Object.keys(states).map((name) => ({ name })) },
  status: {
    phase,
    containerStatuses: Object.entries(states)
      .filter(([, s]) => s !== undefined)
      .map(([name, s]) => ({
        name,
        image: 'x',
        imageID: '',
        ready: s === 'running',
        restartCount: 0,
        state: s === 'running' ? { running: {} } : { terminated: { exitCode: s as number } },
      })),
  },
});

describe('podProgress', () => {
  it.each([
    ['Never, app done', pod('Never', { app: 0, 'gateway-sidecar': 'running' }), true, []],
    [
      'Never, app failed (the pod fails, the sidecar must still go)',
      pod('Never', { app: 1, 'gateway-sidecar': 'running' }),
      true,
      [],
    ],
    ['Never, app running', pod('Never', { app: 'running', 'gateway-sidecar': 'running' }), false, ['app']],
    [
      'Never, two apps, one done',
      pod('Never', { a: 0, b: 'running', 'gateway-sidecar': 'running' }),
      false,
      ['b'],
    ],
    [
      'Never, app not started yet',
      pod('Never', { app: undefined, 'gateway-sidecar': 'running' }),
      false,
      ['app'],
    ],
    [
      'OnFailure, app failed (will restart)',
      pod('OnFailure', { app: 2, 'gateway-sidecar': 'running' }),
      false,
      ['app'],
    ],
    ['OnFailure, app succeeded', pod('OnFailure', { app: 0, 'gateway-sidecar': 'running' }), true, []],
    [
      'Always (Deployment)',
      pod('Always', { app: 0, 'gateway-sidecar': 'running' }),
      false,
      ['restartPolicy Always'],
    ],
    [
      'default policy is Always',
      pod(undefined, { app: 0, 'gateway-sidecar': 'running' }),
      false,
      ['restartPolicy Always'],
    ],
    ['phase Succeeded', pod('Never', { app: 0 }, 'Succeeded'), true, []],
    [
      'only the sidecar',
      pod('Never', { 'gateway-sidecar': 'running' }),
      false,
      ['no other containers in the pod spec'],
    ],
  ])('%s', (_name, p, finished, waitingFor) => {
    expect(podProgress(p, 'gateway-sidecar')).toMatchObject({ finished, waitingFor });
  });

  it('says when the pod can never finish: restartPolicy Always, or a native sidecar', () => {
    expect(
      podProgress(pod('Always', { app: 0, 'gateway-sidecar': 'running' }), 'gateway-sidecar').never,
    ).toBe('restartPolicy Always: its containers are restarted, so it never finishes');
    expect(
      podProgress(pod('Never', { app: 'running', 'gateway-sidecar': 'running' }), 'gateway-sidecar').never,
    ).toBe(undefined);
    const native: V1Pod = {
      spec: {
        restartPolicy: 'Never',
        initContainers: [{ name: 'gateway-init' }, { name: 'gateway-sidecar', restartPolicy: 'Always' }],
        containers: [{ name: 'app' }],
      },
      status: { phase: 'Running' },
    };
    expect(podProgress(native, 'gateway-sidecar')).toEqual({
      finished: false,
      waitingFor: ['the kubelet'],
      never:
        'a native sidecar (an init container with restartPolicy Always): the kubelet stops it once the other containers are done',
    });
  });
});
