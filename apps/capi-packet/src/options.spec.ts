import { CleanExit, UsageError, parseCommand } from '@knet/runtime';
import { cli, kubeconfigCluster } from './options';
import { generateSshKeyPair } from './ssh-key';

const argv = (...args: string[]) => ['node', 'capi-packet', ...args];
const PROJECT = '0b5e3c1a-2f4d-4e6a-9c8b-7a6f5e4d3c2b';
const TOKEN = 'metal-token-9f8e7d6c5b4a';
const ENV = { PACKET_PROJECT_ID: PROJECT, PACKET_API_KEY: TOKEN };

function usageError(fn: () => unknown): UsageError {
  try {
    fn();
  } catch (e) {
    if (e instanceof UsageError) return e;
    throw e;
  }
  throw new Error('no UsageError');
}

describe('capi-packet generate options', () => {
  it("has the seed's and the clusterctl templates' defaults", () => {
    expect(parseCommand(cli, argv('generate'), ENV)).toEqual({
      command: 'generate',
      opts: {
        out: 'out/packet',
        force: false,
        flavor: 'default',
        projectId: PROJECT,
        apiKey: TOKEN,
        apiUrl: undefined,
        clusterName: undefined,
        metro: undefined,
        facility: undefined,
        sshKey: undefined,
        kubernetesVersion: 'v1.34.4',
        controlPlaneCount: 1,
        workerCount: 1,
        controlPlaneType: 'c3.small.x86',
        workerType: 'c3.small.x86',
        nodeOs: 'ubuntu_24_04',
        podCidr: '192.168.0.0/16',
        serviceCidr: '172.26.0.0/16',
        components: undefined,
      },
    });
  });

  it("reads the seed's env (CLUSTER_NAME, FACILITY, SSH_KEY) and CAPEM's clusterctl variables; PROJECT_ID too", () => {
    const key = generateSshKeyPair('me@host').publicKey;
    const parsed = parseCommand(cli, argv('generate', '-f', '--flavor=packet-bootstrap'), {
      PROJECT_ID: PROJECT,
      PACKET_API_KEY: TOKEN,
      CLUSTER_NAME: 'prod-1',
      FACILITY: 'ewr1',
      SSH_KEY: key,
      KUBERNETES_VERSION: 'v1.33.2',
      CONTROL_PLANE_MACHINE_COUNT: '3',
      WORKER_MACHINE_COUNT: '0',
      CONTROLPLANE_NODE_TYPE: 'm3.small.x86',
      WORKER_NODE_TYPE: 'm3.large.x86',
      NODE_OS: 'debian_12',
      POD_CIDR: '10.244.0.0/16',
      SERVICE_CIDR: '10.96.0.0/12',
      METAL_API_URL: 'http://127.0.0.1:8080/metal/v1',
    });
    expect(parsed.opts).toMatchObject({
      force: true,
      flavor: 'packet-bootstrap',
      projectId: PROJECT,
      clusterName: 'prod-1',
      facility: 'ewr1',
      sshKey: key,
      kubernetesVersion: 'v1.33.2',
      controlPlaneCount: 3,
      workerCount: 0,
      controlPlaneType: 'm3.small.x86',
      workerType: 'm3.large.x86',
      nodeOs: 'debian_12',
      podCidr: '10.244.0.0/16',
      serviceCidr: '10.96.0.0/12',
      apiUrl: 'http://127.0.0.1:8080/metal/v1',
    });
  });

  it('without project and token: one line naming both, with their env vars', () => {
    const e = usageError(() => parseCommand(cli, argv('generate'), {}));
    expect(e.message).toBe(
      '--project-id (PACKET_PROJECT_ID): required; --api-key (PACKET_API_KEY): required',
    );
  });

  const privateKey = generateSshKeyPair('me@host').privateKey;
  it.each<[string, string[], Record<string, string>, RegExp]>([
    [
      'metro and facility',
      [],
      { METRO: 'ny', FACILITY: 'ewr1' },
      /^give --metro \(METRO\) or --facility \(FACILITY\), not both/,
    ],
    [
      'a project that is no UUID',
      ['--project-id', 'my-project'],
      {},
      /--project-id \(PACKET_PROJECT_ID\): must be a UUID, got "my-project"/,
    ],
    [
      'a cluster name with capitals',
      [],
      { CLUSTER_NAME: 'Prod' },
      /--cluster-name \(CLUSTER_NAME\): must be a lowercase DNS label/,
    ],
    [
      'a metro that is a facility',
      [],
      { METRO: 'ewr1' },
      /--metro \(METRO\): must be a metro code such as ny or da/,
    ],
    ['a version without v', [], { KUBERNETES_VERSION: '1.34.4' }, /must be a version such as v1.34.4/],
    [
      'no control plane',
      ['--control-plane-count=0'],
      {},
      /--control-plane-count \(CONTROL_PLANE_MACHINE_COUNT\): must be at least 1/,
    ],
    [
      'an even control plane (KubeadmControlPlane)',
      ['--control-plane-count=2'],
      {},
      /^--control-plane-count \(CONTROL_PLANE_MACHINE_COUNT\) is 2: KubeadmControlPlane refuses an even number/,
    ],
    [
      'an unknown flavor',
      ['--flavor=kube-vip'],
      {},
      /--flavor \(CAPI_PACKET_FLAVOR\): must be one of default, packet-bootstrap/,
    ],
    [
      'overlapping networks',
      [],
      { POD_CIDR: '10.0.0.0/8', SERVICE_CIDR: '10.96.0.0/12' },
      /overlap: give two separate networks/,
    ],
    [
      'a private key as SSH_KEY',
      [],
      { SSH_KEY: privateKey },
      /^--ssh-key \(SSH_KEY\): is a private key: give the public key line \(the .pub file\)$/,
    ],
    [
      'a path as SSH_KEY',
      [],
      { SSH_KEY: '~/.ssh/id_ed25519.pub' },
      /--ssh-key \(SSH_KEY\): must be a public key line/,
    ],
    [
      'a components file that does not exist',
      ['--components=/nonexistent.yaml'],
      {},
      /--components \(CAPI_PACKET_COMPONENTS\): file does not exist/,
    ],
  ])('refuses %s with one line', (_what, args, env, message) => {
    const e = usageError(() => parseCommand(cli, argv('generate', ...args), { ...ENV, ...env }));
    expect(e.message).toMatch(message);
    expect(e.message).not.toContain('\n');
    expect(e.message).not.toContain(TOKEN);
    expect(e.message).not.toContain('OPENSSH');
  });

  it('never echoes a token or a key it refuses', () => {
    const e = usageError(() =>
      parseCommand(cli, argv('generate', '--ssh-key', `ssh-ed25519 ${TOKEN}!`), ENV),
    );
    expect(e.message).toMatch(/^--ssh-key \(SSH_KEY\): must be a public key line/);
    expect(e.message).not.toContain(TOKEN);
  });
});

describe('capi-packet kubeconfig options', () => {
  it('takes the Cluster name, a namespace and a kubeconfig (KUBECONFIG too)', () => {
    const parsed = parseCommand(cli, argv('kubeconfig', 'test1-ab12c', '-n', 'clusters'), {
      KUBECONFIG: '/tmp/kc',
    });
    expect(parsed).toEqual({ command: 'kubeconfig', opts: { namespace: 'clusters', kubeconfig: '/tmp/kc' } });
    expect(kubeconfigCluster()).toBe('test1-ab12c');
  });

  it.each([[['Prod']], [['a', 'b']], [[]]])('refuses %j as the Cluster', (args) => {
    expect(usageError(() => kubeconfigCluster(args)).message).toMatch(
      /^kubeconfig: want 'kubeconfig CLUSTER'/,
    );
  });

  it('without the Cluster: commander says so in one line', () => {
    expect(usageError(() => parseCommand(cli, argv('kubeconfig'), {})).message).toMatch(
      /missing required argument 'cluster'/,
    );
  });
});

describe('capi-packet', () => {
  it('--help lists both commands and the exit codes', () => {
    let out = '';
    expect(() => parseCommand(cli, argv('--help'), {}, { write: (s: string) => (out += s) })).toThrow(
      CleanExit,
    );
    expect(out).toContain('Usage: capi-packet <command> [options]');
    expect(out).toMatch(/generate +write a workload cluster's manifests/);
    expect(out).toMatch(/kubeconfig +print a workload cluster's admin kubeconfig/);
    expect(out).toMatch(/2 +invalid flag, argument or environment variable; files already there without -f/);
  });

  it('a command is required', () => {
    expect(usageError(() => parseCommand(cli, argv(), {})).message).toBe(
      'a command is required: generate or kubeconfig (capi-packet --help lists them)',
    );
  });
});
