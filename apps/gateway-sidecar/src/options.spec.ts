import { UsageError, parseOptions } from '@knet/runtime';
import { gatewayDefaults } from '@knet/podgw';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'gateway-sidecar', ...args];

describe('gateway-sidecar options', () => {
  it('defaults: the chart paths, DNS on 53, 12 h leases, the endpoint on 0.0.0.0:8080', () => {
    expect(parseOptions(program, argv(), {})).toEqual({
      ...gatewayDefaults,
      podInterface: 'eth0',
      dnsPort: 53,
      dnsUpstream: undefined,
      resyncInterval: 2000,
      leaseTime: 43_200_000,
      localDomain: undefined,
      shutdownTimeout: 25_000,
      metricsHost: '0.0.0.0',
      metricsPort: 8080,
    });
  });

  it.each([
    ['--metrics-port', argv('--metrics-port=9090'), {}],
    ['PODGW_METRICS_PORT', argv(), { PODGW_METRICS_PORT: '9090' }],
    ['--health-port (its former name, which the chart uses)', argv('--health-port=9090'), {}],
    ['PODGW_HEALTH_PORT (its former name)', argv(), { PODGW_HEALTH_PORT: '9090' }],
  ])('the endpoint port from %s', (_what, args, env) => {
    expect(parseOptions(program, args, env).metricsPort).toBe(9090);
  });

  it.each([
    ['--metrics-host', argv('--metrics-host=127.0.0.1'), {}],
    ['--health-host (its former name)', argv('--health-host=127.0.0.1'), {}],
    ['PODGW_HEALTH_HOST (its former name)', argv(), { PODGW_HEALTH_HOST: '127.0.0.1' }],
  ])('the endpoint address from %s', (_what, args, env) => {
    expect(parseOptions(program, args, env).metricsHost).toBe('127.0.0.1');
  });

  it('port 0 picks a free port', () => {
    expect(parseOptions(program, argv('--health-port=0'), {}).metricsPort).toBe(0);
  });

  it('takes explicit DNS upstreams from --dns-upstream or PODGW_DNS_UPSTREAM, and refuses bad ones', () => {
    expect(
      parseOptions(program, argv('--dns-upstream=203.0.113.1, 2001:db8::53#5353'), {}).dnsUpstream,
    ).toEqual(['203.0.113.1', '2001:db8::53#5353']);
    expect(parseOptions(program, argv(), { PODGW_DNS_UPSTREAM: '203.0.113.1' }).dnsUpstream).toEqual([
      '203.0.113.1',
    ]);
    expect(() => parseOptions(program, argv('--dns-upstream=vpn.example'), {})).toThrow(
      /^--dns-upstream \(PODGW_DNS_UPSTREAM\): "vpn.example" is not addr or addr#port/,
    );
    expect(() => parseOptions(program, argv('--dns-upstream=,'), {})).toThrow(
      /must name at least one nameserver/,
    );
  });

  it('refuses a bad value with one line naming the flag and its variable', () => {
    expect(() => parseOptions(program, argv('--lease-time=5s'), {})).toThrow(UsageError);
    expect(() => parseOptions(program, argv('--local-domain=-bad-'), {})).toThrow(
      /^--local-domain \(PODGW_LOCAL_DOMAIN\): must be a DNS domain/,
    );
  });
});
