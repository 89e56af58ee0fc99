import { spawnSync } from 'node:child_process';
import { appBundle } from '@knet/testing';

jest.setTimeout(60_000);

let bundles: { proxy: string; agent: string };
beforeAll(async () => {
  const [proxy, agent] = await Promise.all([appBundle('tower-proxy'), appBundle('tower-agent')]);
  bundles = { proxy, agent };
});

const run = (bundle: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
  const r = spawnSync(process.execPath, [bundle, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'], HOME: '/nonexistent', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

describe('--help explains every flag with its env var', () => {
  it.each([
    [
      'proxy',
      [
        '--kubeconfig',
        '--host',
        '--port',
        '--listen-address',
        '--port-range',
        '--publish-service-address',
        '--ca-cert',
        '--ca-key',
        '--namespace',
        '--service-namespace',
        '--service-selector',
        '--host-key-secret',
        '--ca-secret',
        '--info-configmap',
        '--keepalive',
        '--handshake-timeout',
        '--max-handshakes',
        '--max-handshakes-per-source',
        '--metrics-port',
        '--listener-max-connections',
        '--listener-max-connections-per-source',
        '--listener-idle-timeout',
        '--listener-handshake-timeout',
        '--leader-elect',
        '--lease-name',
        '--identity',
        '--log-level',
        '--shutdown-timeout',
      ],
    ],
    [
      'agent',
      [
        '--name',
        '--token',
        '--proxy-server',
        '--fingerprint',
        '--proxy-ca',
        '--kubeconfig',
        '--service-account-dir',
        '--kubernetes-service',
        '--kubesphere-service',
        '--keepalive',
        '--max-retry',
        '--max-retry-interval',
        '--liveness-timeout',
        '--agent-id',
        '--metrics-port',
        '--metrics-host',
        '--log-level',
        '--shutdown-timeout',
      ],
    ],
  ] as const)('tower-%s', (app, flags) => {
    const r = run(app === 'proxy' ? bundles.proxy : bundles.agent, ['--help']);
    expect(r.code).toBe(0);
    for (const f of flags) expect(r.stdout).toContain(f);
    // each option line names its env var
    const optionLines = r.stdout
      .split('\n')
      .filter((l) => /^ {2}(-\w, )?--[a-z]/.test(l) && !/--help|--version/.test(l));
    const withEnv = r.stdout.replace(/\s+/g, ' ').match(/\(env: [A-Z_]+/g) ?? [];
    expect(withEnv).toHaveLength(optionLines.length);
  });
});

describe('bad input is one line and exit code 2', () => {
  it.each([
    ['agent without --name', 'agent', [], {}, /^tower-agent: error: .*--name \(TOWER_CLUSTER_NAME\)/],
    [
      'agent with a malformed fingerprint',
      'agent',
      ['--name=a', '--token=' + 't'.repeat(16), '--fingerprint=MD5:aa'],
      {},
      /^tower-agent: error: --fingerprint \(TOWER_FINGERPRINT\): item 1: must be a SHA-256 fingerprint/,
    ],
    [
      'agent with a bad proxy scheme',
      'agent',
      [
        '--name=a',
        '--token=' + 't'.repeat(16),
        '--fingerprint=SHA256:' + 'A'.repeat(43),
        '--proxy-server=ftp://x',
      ],
      {},
      /^tower-agent: error: --proxy-server \(TOWER_PROXY_SERVER\)/,
    ],
    [
      'agent with a bad env keepalive',
      'agent',
      ['--name=a', '--token=' + 't'.repeat(16), '--fingerprint=SHA256:' + 'A'.repeat(43)],
      { TOWER_KEEPALIVE: 'often' },
      /^tower-agent: error: --keepalive \(TOWER_KEEPALIVE\): .*"often"/,
    ],
    [
      'proxy with a bad port range',
      'proxy',
      ['--port-range=7000-6000'],
      {},
      /^tower-proxy: error: --port-range \(TOWER_PORT_RANGE\): must be MIN-MAX/,
    ],
    [
      'proxy with --ca-cert but no --ca-key',
      'proxy',
      ['--ca-cert=/etc/hostname'],
      {},
      /^tower-proxy: error: --ca-cert and --ca-key go together/,
    ],
    [
      'agent with a token shorter than the proxy accepts',
      'agent',
      ['--name=a', '--token=short', '--fingerprint=SHA256:' + 'A'.repeat(43)],
      {},
      /^tower-agent: error: --token \(TOWER_TOKEN\): must be at least 16 characters/,
    ],
    [
      'proxy with a per-source listener cap above the total',
      'proxy',
      ['--listener-max-connections=10', '--listener-max-connections-per-source=20'],
      {},
      /^tower-proxy: error: --listener-max-connections-per-source \(20\) cannot exceed --listener-max-connections \(10\)/,
    ],
    ['proxy with an unknown flag', 'proxy', ['--nope'], {}, /^tower-proxy: error: unknown option '--nope'/],
  ] as const)('%s', (_what, app, args, env, line) => {
    const r = run(app === 'proxy' ? bundles.proxy : bundles.agent, [...args], env);
    expect(r.code).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(line);
  });

  it('the token never appears in an error', () => {
    const r = run(bundles.agent, ['--name=BAD NAME', '--token=s3cr3t-value', '--fingerprint=nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain('s3cr3t-value');
  });

  it('an agent with an unreadable --kubeconfig fails with one line (exit 1)', () => {
    const r = run(bundles.agent, [
      '--name=a',
      '--token=' + 't'.repeat(16),
      '--fingerprint=SHA256:' + 'A'.repeat(43),
      '--kubeconfig=/nonexistent',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'tower-agent: kubeconfig /nonexistent (from --kubeconfig) cannot be read: no such file\n',
    );
  });

  it('an agent outside a cluster without --kubeconfig says what to do', () => {
    const r = run(bundles.agent, [
      '--name=a',
      '--token=' + 't'.repeat(16),
      '--fingerprint=SHA256:' + 'A'.repeat(43),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'tower-agent: error: not running in a cluster (KUBERNETES_SERVICE_HOST unset): pass --kubeconfig or --kubernetes-service\n',
    );
  });

  it('a proxy with an unreadable kubeconfig fails with one line (exit 1)', () => {
    const r = run(bundles.proxy, ['--kubeconfig=/nonexistent']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'tower-proxy: kubeconfig /nonexistent (from --kubeconfig) cannot be read: no such file\n',
    );
  });
});
