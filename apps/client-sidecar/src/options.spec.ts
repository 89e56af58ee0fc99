import { UsageError, parseOptions } from '@knet/runtime';
import { clientDefaults } from '@knet/podgw';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'client-sidecar', ...args];

describe('client-sidecar options', () => {
  it('defaults: no endpoint, no pod to watch, the shared daemon options', () => {
    expect(parseOptions(program, argv(), {})).toEqual({
      ...clientDefaults,
      shutdownTimeout: 25_000,
      metricsHost: '0.0.0.0',
      metricsPort: undefined,
      checkInterval: 1000,
      retryInterval: 500,
      podName: undefined,
      podNamespace: undefined,
      containerName: 'gateway-sidecar',
      podPollInterval: 5000,
      kubeconfig: undefined,
    });
  });

  it.each([
    ['--metrics-port', argv('--metrics-port=9090'), {}],
    ['PODGW_METRICS_PORT', argv(), { PODGW_METRICS_PORT: '9090' }],
    ['--health-port (its former name)', argv('--health-port=9090'), {}],
    ['PODGW_HEALTH_PORT (its former name)', argv(), { PODGW_HEALTH_PORT: '9090' }],
  ])('the endpoint port from %s', (_what, args, env) => {
    expect(parseOptions(program, args, env).metricsPort).toBe(9090);
  });

  it('the pod to watch: name and namespace from the downward API, kubeconfig from KUBECONFIG', () => {
    const o = parseOptions(program, argv(), {
      POD_NAME: 'job-x7k2p',
      POD_NAMESPACE: 'jobs',
      KUBECONFIG: '/etc/kube/config',
    });
    expect([o.podName, o.podNamespace, o.kubeconfig]).toEqual(['job-x7k2p', 'jobs', '/etc/kube/config']);
  });

  it.each([
    ['a name without a namespace', argv('--pod-name=job-x7k2p'), {}],
    ['a namespace without a name', argv(), { POD_NAMESPACE: 'jobs' }],
  ])('refuses %s with one line', (_what, args, env) => {
    expect(() => parseOptions(program, args, env)).toThrow(UsageError);
    expect(() => parseOptions(program, args, env)).toThrow(
      '--pod-name (POD_NAME) and --pod-namespace (POD_NAMESPACE) go together: give both or neither',
    );
  });

  it('refuses a check interval below 100 ms', () => {
    expect(() => parseOptions(program, argv('--check-interval=10ms'), {})).toThrow(
      /^--check-interval \(PODGW_CHECK_INTERVAL\): /,
    );
  });
});
