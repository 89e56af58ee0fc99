import { UsageError, parseCommand } from '@knet/runtime';
import { cli, connectPeerName, showconfTarget } from './options';

const argv = (...args: string[]) => ['node', 'kgctl', ...args];

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error('no UsageError');
}

describe('kgctl options', () => {
  it("has Kilo's defaults", () => {
    const parsed = parseCommand(cli, argv('graph'), {});
    expect(parsed).toMatchObject({
      command: 'graph',
      opts: {
        backend: 'kubernetes',
        meshGranularity: 'auto',
        port: 51820,
        subnet: '10.4.0.0/16',
        topologyLabel: 'topology.kubernetes.io/region',
        stableWireguardIps: true,
      },
    });
  });

  it('reads env vars, KUBECONFIG included', () => {
    const parsed = parseCommand(cli, argv('graph'), {
      KUBECONFIG: '/tmp/kc',
      KGCTL_MESH_GRANULARITY: 'full',
    });
    expect(parsed.opts).toMatchObject({ kubeconfig: '/tmp/kc', meshGranularity: 'full' });
  });

  it('parses showconf node NAME with its flags; --allowed-ips repeats and keeps the network', () => {
    const parsed = parseCommand(
      cli,
      argv(
        'showconf',
        'node',
        'a',
        '--as-peer',
        '-o',
        'yaml',
        '--allowed-ips',
        '10.1.2.3/16',
        '--allowed-ips',
        'fd00::1/64',
      ),
      {},
    );
    expect(parsed).toMatchObject({
      command: 'showconf',
      opts: { asPeer: true, output: 'yaml', allowedIPs: ['10.1.0.0/16', 'fd00::/64'] },
    });
    expect(showconfTarget()).toEqual({ kind: 'node', name: 'a' });
  });

  it('parses connect PEER_NAME with Kilo’s defaults', () => {
    const parsed = parseCommand(cli, argv('connect', 'laptop'), {});
    expect(parsed).toMatchObject({
      command: 'connect',
      opts: {
        allowedIP: '10.10.10.10/32',
        cleanUp: true,
        mtu: 1420,
        resyncPeriod: 30_000,
        interface: 'kilo0',
        persistentKeepalive: 10,
      },
    });
    expect(connectPeerName()).toBe('laptop');
    expect(parseCommand(cli, argv('connect', 'laptop', '--clean-up=false'), {}).opts).toMatchObject({
      cleanUp: false,
    });
  });

  it.each([
    [
      ['showconf', 'node', 'a', '-o', 'xml'],
      /--output \(KGCTL_OUTPUT\): must be one of wireguard, yaml, json, got "xml"/,
    ],
    [['showconf', 'node', 'a', '--allowed-ips', '10.0.0.0/33'], /"10.0.0.0\/33" is not a CIDR/],
    [['graph', '--mesh-granularity', 'cross-ish'], /--mesh-granularity/],
    [['graph', '--backend', 'etcd'], /--backend/],
    [['showconf', 'node'], /missing required argument/],
    [['connect'], /missing required argument/],
  ])('refuses %j with one line', (args, message) => {
    const e = usageError(() => parseCommand(cli, argv(...args), {}));
    expect(e.message).toMatch(message);
    expect(e.message).not.toContain('\n');
  });

  it.each([[['thing', 'a']], [['node']], [['peer', 'a', 'b']]])(
    'showconf target %j is a usage error',
    (args) => {
      expect(usageError(() => showconfTarget(args)).message).toMatch(
        /^showconf: want 'showconf node NAME' or 'showconf peer NAME'/,
      );
    },
  );

  it('connect needs an RFC 1123 peer name', () => {
    expect(usageError(() => connectPeerName(['Laptop_1'])).message).toMatch(/lowercase RFC 1123 name/);
  });
});
