import { UsageError, parseOptions } from '@knet/runtime';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'capi-packet-manager', ...args];
const KEY = { PACKET_API_KEY: 'secret-token-value' };

describe('capi-packet-manager options', () => {
  it('has CAPEM-like defaults and takes the API key from PACKET_API_KEY', () => {
    expect(parseOptions(program, argv(), KEY)).toMatchObject({
      apiKey: 'secret-token-value',
      apiUrl: 'https://api.equinix.com/metal/v1',
      syncPeriod: 600_000,
      devicePollInterval: 15_000,
      clusterConcurrency: 10,
      machineConcurrency: 10,
      leaderElect: false,
      metricsPort: 8080,
      logLevel: 'info',
    });
  });

  it('takes another Metal API endpoint (trailing slash dropped) and a namespace', () => {
    const o = parseOptions(
      program,
      argv('--api-url=http://127.0.0.1:8080/metal/v1/', '--namespace=capi'),
      KEY,
    );
    expect(o.apiUrl).toBe('http://127.0.0.1:8080/metal/v1');
    expect(o.namespace).toBe('capi');
  });

  it.each([
    [[], {}, /--api-key \(PACKET_API_KEY\): required/],
    [['--api-url=ftp://example.com'], KEY, /--api-url \(METAL_API_URL\)/],
    [['--sync-period=1s'], KEY, /--sync-period/],
    [['--leader-elect'], KEY, /--leader-elect .* needs --leader-election-namespace/],
    [['--device-poll-interval=20m'], KEY, /--device-poll-interval .* cannot be longer than --sync-period/],
    [['--packetmachine-concurrency=0'], KEY, /--packetmachine-concurrency/],
    [['--watch-filter=a b'], KEY, /--watch-filter/],
  ])('refuses %j with one line', (args, env, message) => {
    const e = (() => {
      try {
        parseOptions(program, argv(...(args as string[])), env);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(UsageError);
    expect(String((e as UsageError).message)).toMatch(message);
    expect(String((e as UsageError).message)).not.toContain('\n');
    expect(String((e as UsageError).message)).not.toContain('secret-token-value');
  });
});
