import { CleanExit, UsageError, parseCommand } from '@knet/runtime';
import { cli } from './options';

const argv = (...args: string[]) => ['node', 'connector-init', ...args];
const ENV = {
  TWINGATE_API_KEY: 'tg-secret-key',
  TWINGATE_ACCOUNT: 'acme',
  TWINGATE_NETWORK: 'lab',
  CONNECTOR_RELEASE: 'edge',
  POD_NAME: 'edge-3',
};

function usageError(args: string[], env: NodeJS.ProcessEnv): string {
  try {
    parseCommand(cli, argv(...args), env, { write: () => true });
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    const message = (e as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('no error');
}

describe('connector-init options', () => {
  it('provision: env fallbacks, the ordinal from the pod name, the release as name prefix, safe defaults', () => {
    expect(parseCommand(cli, argv('provision', '--launcher-shell', '/bin/sh'), ENV)).toEqual({
      command: 'provision',
      opts: expect.objectContaining({
        apiKey: 'tg-secret-key',
        account: 'acme',
        network: 'lab',
        release: 'edge',
        namePrefix: 'edge',
        ordinal: 3,
        reuseOffline: true,
        reuseMinAge: 600_000,
        handoffDir: '/run/knet/connector',
        once: false,
        statusNotifications: false,
        apiDeadline: 300_000,
        metricsPort: 9090,
      }),
    });
    const o = parseCommand(
      cli,
      argv('provision', '--launcher-shell', '/bin/sh', '--ordinal', '7', '--name-prefix', 'x'),
      ENV,
    );
    expect(o.opts).toMatchObject({ ordinal: 7, namePrefix: 'x' });
  });

  it('gc and status take the same tenant and release flags', () => {
    expect(parseCommand(cli, argv('gc', '--replicas', '0'), ENV)).toMatchObject({
      command: 'gc',
      opts: { replicas: 0, deleteAdopted: false, namePrefix: 'edge' },
    });
    expect(
      parseCommand(cli, argv('status', '-o', 'json', '--api-url', 'http://127.0.0.1:8080'), ENV),
    ).toMatchObject({
      command: 'status',
      opts: { output: 'json', apiUrl: 'http://127.0.0.1:8080' },
    });
  });

  it.each([
    [
      ['provision', '--launcher-shell', '/bin/sh'],
      { POD_NAME: 'edge' },
      '--pod-name (POD_NAME): "edge" does not end in -<ordinal>; pass --ordinal (CONNECTOR_ORDINAL)',
    ],
    [
      ['provision', '--launcher-shell', '/bin/sh'],
      { POD_NAME: '' },
      '--ordinal (CONNECTOR_ORDINAL): required (or --pod-name (POD_NAME) ending in -<ordinal>)',
    ],
    [
      ['gc', '--replicas', '1'],
      { TWINGATE_ACCOUNT: '' },
      '--account (TWINGATE_ACCOUNT): required (or --api-url (TWINGATE_API_URL))',
    ],
    [
      ['gc', '--replicas', '1'],
      { TWINGATE_API_URL: 'http://tenant.example.com' },
      '--api-url (TWINGATE_API_URL):',
    ],
    [['gc'], {}, '--replicas (CONNECTOR_REPLICAS): required'],
    [
      ['gc', '--replicas', '1'],
      { CONNECTOR_RELEASE: 'Edge_1' },
      '--release (CONNECTOR_RELEASE): must be lowercase letters',
    ],
    [['status'], { TWINGATE_API_KEY: '' }, '--api-key (TWINGATE_API_KEY): required'],
    [['status', '-o', 'yaml'], {}, '--output:'],
    [
      ['provision', '--launcher-shell', '/nonexistent/busybox'],
      {},
      '--launcher-shell (CONNECTOR_LAUNCHER_SHELL)',
    ],
  ])('%j with %j → one line', (args, env, message) => {
    expect(usageError(args, { ...ENV, ...env })).toContain(message);
  });

  it('never echoes the API key in an error', () => {
    const message = usageError(['status', '--api-key', ' '], ENV);
    expect(message).toContain('--api-key');
    expect(usageError(['gc', '--replicas', 'x', '--api-key', 'leaky-key-123'], ENV)).not.toContain(
      'leaky-key-123',
    );
  });

  it('--help lists every command, and each command its flags with env vars and exit codes', () => {
    let top = '';
    expect(() => parseCommand(cli, argv('--help'), {}, { write: (s: string) => (top += s) })).toThrow(
      CleanExit,
    );
    expect(top).toMatch(/provision +claim this pod's connector/);
    expect(top).toMatch(/gc +delete the connectors/);
    expect(top).toMatch(/status +print the release's connectors/);
    expect(top).toContain('API key refused or missing a scope');
    const help = cli.commands.provision.command.helpInformation();
    for (const env of [
      'TWINGATE_API_KEY',
      'TWINGATE_ACCOUNT',
      'TWINGATE_NETWORK',
      'TWINGATE_API_URL',
      'CONNECTOR_RELEASE',
      'POD_NAME',
      'POD_NAMESPACE',
      'CONNECTOR_HANDOFF_DIR',
      'CONNECTOR_REUSE_OFFLINE',
      'CONNECTOR_INIT_METRICS_PORT',
    ]) {
      expect(help).toContain(env);
    }
    expect(help).toContain('Usage: connector-init provision [options]');
  });
});
