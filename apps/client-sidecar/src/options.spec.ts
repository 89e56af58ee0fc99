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

  it('refuses a name without a namespace with one line', () => {
    const args = argv('--pod-name=job-x7k2p');
    expect(() => parseOptions(program, args, {})).toThrow(UsageError);
    expect(() => parseOptions(program, args, {})).toThrow(
      '--pod-name (POD_NAME) needs --pod-namespace (POD_NAMESPACE): give both or neither',
    );
  });

  it('takes a namespace without a name: the DHCP client id uses it, no pod is watched', () => {
    const o = parseOptions(program, argv(), { POD_NAMESPACE: 'jobs' });
    expect([o.podName, o.podNamespace]).toEqual([undefined, 'jobs']);
  });

  it('refuses a check interval below 100 ms', () => {
    expect(() => parseOptions(program, argv('--check-interval=10ms'), {})).toThrow(
      /^--check-interval \(PODGW_CHECK_INTERVAL\): /,
    );
  });
});
