import { UsageError, parseOptions } from '@knet/runtime';
import { clientDefaults } from '@knet/podgw';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'client-init', ...args];

describe('client-init options', () => {
  it('defaults and env fallbacks', () => {
    expect(parseOptions(program, argv(), {})).toEqual(clientDefaults);
    const o = parseOptions(program, argv('--hostname=web-0'), { PODGW_DHCP_TIMEOUT: '5s' });
    expect([o.hostname, o.dhcpTimeout]).toEqual(['web-0', 5000]);
  });

  it.each([
    [['--dhcp-timeout=soon'], '--dhcp-timeout (PODGW_DHCP_TIMEOUT): must be a duration'],
    [['--hostname=web_0'], '--hostname (PODGW_HOSTNAME): must be a host name'],
  ])('refuses %p with one line', (args, message) => {
    expect(() => parseOptions(program, argv(...args), {})).toThrow(UsageError);
    expect(() => parseOptions(program, argv(...args), {})).toThrow(message);
  });
});
