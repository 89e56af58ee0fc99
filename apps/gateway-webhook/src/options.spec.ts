import { UsageError, parseOptions } from '@knet/runtime';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'gateway-webhook', ...args];
const SELF = ['--ca-secret=wh-ca', '--namespace=vpn', '--tls-hosts=wh.vpn.svc'];

describe('gateway-webhook options', () => {
  it("keeps gateway-admision-controller's flag names, with env fallbacks", () => {
    expect(
      parseOptions(
        program,
        argv(
          ...SELF,
          '--setGatewayDefault',
          '--setGatewayLabel=setGateway',
          '--DNS=172.16.0.1',
          '--DNSPolicy=None',
          '--sidecarAsInit=true',
        ),
        {
          PODGW_WEBHOOK_INIT_IMAGE: 'registry.example/client-init:1',
          PODGW_WEBHOOK_SET_GATEWAY_ANNOTATION: 'setGateway',
        },
      ),
    ).toMatchObject({
      setGatewayDefault: true,
      setGatewayLabel: 'setGateway',
      setGatewayAnnotation: 'setGateway',
      dns: ['172.16.0.1'],
      dnsPolicy: 'None',
      sidecarAsInit: true,
      initImage: 'registry.example/client-init:1',
      sidecarImage: 'ghcr.io/knet/client-sidecar',
      listen: { host: '0.0.0.0', port: 8443 },
      metricsPort: 8080,
      configmapName: 'pod-gateway',
      certValidity: 90 * 86_400_000,
    });
  });

  it('takes files instead of the CA Secret', () => {
    expect(
      parseOptions(program, argv('--tls-cert-file-path=/c', '--tls-key-file-path=/k'), {}),
    ).toMatchObject({
      tlsCertFile: '/c',
      tlsKeyFile: '/k',
      caSecret: undefined,
    });
  });

  it.each([
    [[], /no serving certificate: give --ca-secret/],
    [['--tls-cert-file-path=/c'], /--tls-cert-file-path .* and --tls-key-file-path .* go together/],
    [[...SELF, '--tls-cert-file-path=/c', '--tls-key-file-path=/k'], /exclude each other/],
    [['--ca-secret=x', '--tls-hosts=a'], /--ca-secret .* needs --namespace/],
    [['--ca-secret=x', '--namespace=vpn'], /needs --tls-hosts/],
    [[...SELF, '--DNSPolicy=None'], /--DNSPolicy .*=None needs --DNS/],
    [
      [...SELF, '--DNSPolicy=Sometimes'],
      /--DNSPolicy \(PODGW_WEBHOOK_DNS_POLICY\): must be None, ClusterFirst/,
    ],
    [[...SELF, '--setGatewayLabelValue=b'], /--setGatewayLabelValue .* needs --setGatewayLabel/],
    [[...SELF, '--setGatewayLabel=bad key!'], /--setGatewayLabel .*must be a label key/],
    [[...SELF, '--setGatewayDefault=perhaps'], /--setGatewayDefault .*must be true or false/],
    [[...SELF, '--initImagePullPol=Sometimes'], /must be Always, IfNotPresent or Never/],
    [[...SELF, '--webhook-listen-address=:99999'], /--webhook-listen-address/],
  ])('refuses %j with one line', (args, message) => {
    let error: unknown;
    try {
      parseOptions(program, argv(...args), {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toMatch(message);
    expect((error as UsageError).message).not.toContain('\n');
  });
});
