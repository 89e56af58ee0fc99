import { CleanExit, UsageError, parseOptions } from '@knet/runtime';
import { program } from './options';

const argv = (...args: string[]) => ['node', 'kilo-agent', ...args];
const parse = (args: string[], env: NodeJS.ProcessEnv = {}) => parseOptions(program, argv(...args), env);

describe('kilo-agent options: Kilo kg flags, names and defaults', () => {
  it("defaults are Kilo's (docs/kg.md)", () => {
    expect(parse([])).toMatchObject({
      backend: 'kubernetes',
      cleanUp: true,
      cleanUpInterface: false,
      createInterface: true,
      cni: true,
      cniPath: '/etc/cni/net.d/10-kilo.conflist',
      compatibility: '',
      encapsulate: 'always',
      meshGranularity: 'location',
      interface: 'kilo0',
      listen: { host: '0.0.0.0', port: 1107 },
      local: true,
      mtu: 'auto',
      topologyLabel: 'topology.kubernetes.io/region',
      port: 51820,
      serviceCidr: [],
      internalCidr: [],
      subnet: '10.4.0.0/16',
      resyncPeriod: 30_000,
      iptablesForwardRules: false,
      prioritisePrivateAddresses: false,
      logLevel: 'info',
      keyFile: '/var/lib/kilo/key',
      stableWireguardIps: true,
      leaderProbeInterval: 1000,
      leaderProbeFailures: 3,
    });
  });

  it('takes Go-style booleans and repeated slices, as a Kilo DaemonSet writes them', () => {
    const o = parse([
      '--clean-up=false',
      '--cni=false',
      '--local',
      '--mesh-granularity=full',
      '--encapsulate=crosssubnet',
      '--compatibility=flannel',
      '--service-cidr=10.43.0.0/16',
      '--service-cidr',
      'fd00:43::/108',
      '--internal-cidr=192.0.2.0/24,198.51.100.0/24',
      '--listen=[::1]:9107',
      '--mtu=1380',
      '--resync-period=1m',
    ]);
    expect(o).toMatchObject({
      cleanUp: false,
      cni: false,
      local: true,
      meshGranularity: 'full',
      encapsulate: 'crosssubnet',
      compatibility: 'flannel',
      serviceCidr: ['10.43.0.0/16', 'fd00:43::/108'],
      internalCidr: ['192.0.2.0/24', '198.51.100.0/24'],
      listen: { host: '::1', port: 9107 },
      mtu: 1380,
      resyncPeriod: 60_000,
    });
    expect(parse(['--mesh-granularity=cross']).meshGranularity).toBe('cross');
  });

  it('reads the node name from NODE_NAME (the downward API), as the chart sets it', () => {
    expect(parse([], { NODE_NAME: 'worker-1' }).hostname).toBe('worker-1');
    expect(parse(['--hostname=worker-2'], { NODE_NAME: 'worker-1' }).hostname).toBe('worker-2');
  });

  it.each([
    [
      ['--mesh-granularity=region'],
      /--mesh-granularity \(KILO_AGENT_MESH_GRANULARITY\): must be one of location, full, cross/,
    ],
    [['--encapsulate=sometimes'], /--encapsulate .*must be one of always, crosssubnet, never/],
    [['--compatibility=calico'], /--compatibility .*must be one of "", flannel, cilium/],
    [['--backend=etcd'], /--backend .*must be one of kubernetes/],
    [['--subnet=10.4.0.0/31'], /--subnet .*has no room for the locations' WireGuard IPs/],
    [['--subnet=10.4.0.0'], /--subnet .*must be a CIDR/],
    [['--listen=1107'], /--listen .*must be \[host\]:port/],
    [['--mtu=9'], /--mtu .*must be auto or an MTU/],
    [['--interface=kilo0-too-long-name'], /--interface .*1-15/],
    [['--clean-up=false', '--clean-up-interface'], /--clean-up-interface .* needs --clean-up/],
    [['--hostname=Bad_Name'], /--hostname .*must be a Node name/],
  ])('refuses %j with one line', (args, message) => {
    let err: unknown;
    try {
      parse(args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('--help lists every Kilo flag', () => {
    let help = '';
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      help += chunk;
      return true;
    }) as typeof process.stdout.write;
    try {
      expect(() => parse(['--help'])).toThrow(CleanExit);
    } finally {
      process.stdout.write = write;
    }
    for (const flag of [
      '--backend',
      '--clean-up',
      '--clean-up-interface',
      '--create-interface',
      '--cni',
      '--cni-path',
      '--compatibility',
      '--encapsulate',
      '--mesh-granularity',
      '--kubeconfig',
      '--hostname',
      '--interface',
      '--listen',
      '--local',
      '--master',
      '--mtu',
      '--topology-label',
      '--port',
      '--service-cidr',
      '--internal-cidr',
      '--subnet',
      '--resync-period',
      '--iptables-forward-rules',
      '--prioritise-private-addresses',
      '--log-level',
    ]) {
      expect(help).toContain(`${flag} `);
    }
  });
});
