import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError, createProgram, silentLogger, type OptionSpecs } from '@knet/runtime';
import { createClientContext } from './client-connect';
import { clientOptions, gatewayOptions, loadConfig } from './options';

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

describe('loadConfig and a bad nat.conf line', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'knet-natconf-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('skips the line with a warning; only the pod it names refuses to start', () => {
    const natConfig = join(dir, 'nat.conf');
    writeFileSync(natConfig, 'web 10 tcp:8080\nmedia 1000 tcp:9091\n');
    const config = loadConfig({ settings: [], natConfig }, {});
    expect(config.nat.map((e) => e.hostname)).toEqual(['web']);
    expect(config.warnings).toContainEqual(
      expect.stringMatching(
        /nat\.conf:2: static address "1000" must be the last octet.*\(line skipped: pod media will not start\)$/,
      ),
    );
    const client = (hostname: string) =>
      createClientContext(
        { hostname, podNamespace: 'apps', podInterface: 'eth0', dhcpTimeout: 1000 },
        config,
        silentLogger,
      );
    expect(() => client('media-7d9f8c6b5-x2x9z')).toThrow(UsageError);
    expect(() => client('media')).toThrow(
      /nat\.conf:2: .*\(this pod's line: fix it and the pod starts; other pods are not affected\)$/,
    );
    expect(client('web-0').nat?.octet).toBe(10);
    expect(client('other').nat).toBeUndefined();
  });

  it('a nat.conf that cannot be read stops every app (one line)', () => {
    mkdirSync(join(dir, 'nat.conf'));
    expect(() => loadConfig({ settings: [], natConfig: join(dir, 'nat.conf') }, {})).toThrow(
      /^nat\.conf .* cannot be read: EISDIR$/,
    );
  });
});
