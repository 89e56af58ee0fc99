import { createProgram, type OptionSpecs } from '@knet/runtime';
import { clientOptions, gatewayOptions } from './options';

/** `--help` of a program with these options, on one line. */
function help(options: OptionSpecs): string {
  const program = createProgram({ name: 'x', version: '0', description: 'x', options });
  let text = '';
  program.command.configureOutput({ writeOut: (s) => (text += s) });
  program.command.outputHelp();
  return text.replace(/\s+/g, ' ');
}

describe('shared option groups', () => {
  it('--help shows the declared defaults the way a user types them', () => {
    expect(help(clientOptions)).toContain(
      '(env: PODGW_SETTINGS, default: "/default_config/settings.sh,/config/settings.sh")',
    );
    expect(help(clientOptions)).toContain('(env: PODGW_DHCP_TIMEOUT, default: "30s")');
    expect(help(gatewayOptions)).toContain('(env: PODGW_STATE_DIR, default: "/var/lib/pod-gateway")');
    expect(help(gatewayOptions)).toContain('(env: PODGW_RESOLV_CONF, default: "/etc/resolv.conf")');
  });
});
