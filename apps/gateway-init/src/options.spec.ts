import { UsageError, parseOptions } from '@knet/runtime';
import { DEFAULT_POD_INTERFACE, gatewayDefaults } from '@knet/podgw';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'gateway-init', ...args];

describe('gateway-init options', () => {
  it('has pod-gateway paths by default, env fallbacks, and --dry-run', () => {
    expect(parseOptions(program, argv(), {})).toEqual({
      ...gatewayDefaults,
      podInterface: DEFAULT_POD_INTERFACE,
      dryRun: false,
    });
    const o = parseOptions(program, argv('--dry-run', '--settings=/a.sh,/b.sh'), { POD_INTERFACE: 'net1' });
    expect([o.dryRun, o.settings, o.podInterface]).toEqual([true, ['/a.sh', '/b.sh'], 'net1']);
  });

  it('refuses a bad interface name with one line naming flag and env var', () => {
    expect(() => parseOptions(program, argv('--pod-interface=this-name-is-too-long'), {})).toThrow(
      UsageError,
    );
    expect(() => parseOptions(program, argv('--pod-interface=this-name-is-too-long'), {})).toThrow(
      '--pod-interface (POD_INTERFACE): must be an interface name (1-15 characters), got "this-name-is-too-long"',
    );
  });

  it('lists every pod-gateway setting in --help', () => {
    let help = '';
    program.command.configureOutput({ writeOut: (s) => (help += s) });
    program.command.outputHelp();
    expect(help).toContain('--dry-run');
    expect(help).toContain('VXLAN_GATEWAY_FIRST_DYNAMIC_IP');
    expect(help).toContain('VXLAN_PORT unset or 0 means 4789');
  });
});
