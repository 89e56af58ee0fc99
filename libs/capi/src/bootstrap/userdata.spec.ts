import { X509Certificate } from 'node:crypto';
import { loadAllYaml, loadYaml } from '@kubernetes/client-node';
import { describeCertificate, isSignedBy } from '@knet/crypto';
import { execa } from 'execa';
import {
  adminKubeconfig,
  controlPlaneFiles,
  type BootstrapFile,
  type ControlPlaneFilesInput,
} from './control-plane-files';
import { BootstrapError } from './errors';
import { thrown } from './fixtures';
import type { NodeRole } from './kubeadm-config';
import { caCertHash, clusterPki, type ClusterPki } from './pki';
import { renderUserData, type UserDataInput } from './userdata';

interface CloudConfig {
  users?: unknown[];
  ssh_authorized_keys?: string[];
  write_files: { path: string; owner: string; permissions: string; content: string }[];
  runcmd: (string | string[])[];
}
interface Kubeconfig {
  clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
  users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
}

const ENDPOINT = { host: '203.0.113.10', port: 6443 };
const NODE_ADDRESS = '198.51.100.11';
const TOKEN = 'abcdef.0123456789abcdef';

let pki: ClusterPki;
let initFiles: BootstrapFile[];
let joinFiles: BootstrapFile[];
const rendered = {} as Record<NodeRole, string>;

const filesInput = (
  role: ControlPlaneFilesInput['role'],
  machineName: string,
  nodeAddresses?: string[],
): ControlPlaneFilesInput => ({
  role,
  clusterName: 'alpha',
  machineName,
  controlPlaneEndpoint: ENDPOINT,
  serviceCIDR: '172.26.0.0/16',
  dnsDomain: 'cluster.local',
  nodeAddresses,
});

function input(role: NodeRole, overrides: Partial<UserDataInput> = {}): UserDataInput {
  const machineName =
    role === 'init' ? 'alpha-cp-0' : role === 'join-control-plane' ? 'alpha-cp-1' : 'alpha-md-0';
  return {
    role,
    clusterName: 'alpha',
    machineName,
    kubernetesVersion: 'v1.34.4',
    controlPlaneEndpoint: ENDPOINT,
    podCIDR: '192.168.0.0/16',
    serviceCIDR: '172.26.0.0/16',
    dnsDomain: 'cluster.local',
    token: TOKEN,
    caCertPem: pki.ca.certPem,
    caCertHash: caCertHash(pki.ca.certPem),
    ...(role === 'init' ? { files: initFiles, tokenTtlMs: 3600_000 } : {}),
    ...(role === 'join-control-plane' ? { files: joinFiles, nodeAddresses: [NODE_ADDRESS] } : {}),
    ...overrides,
  };
}

beforeAll(async () => {
  pki = await clusterPki('alpha');
  initFiles = await controlPlaneFiles(pki, filesInput('init', 'alpha-cp-0'));
  joinFiles = await controlPlaneFiles(pki, filesInput('join-control-plane', 'alpha-cp-1', [NODE_ADDRESS]));
  for (const role of ['init', 'join-control-plane', 'join-worker'] as const)
    rendered[role] = renderUserData(input(role));
}, 60_000);

const file = (files: BootstrapFile[], path: string): string => {
  const f = files.find((x) => x.path === path);
  if (!f) throw new Error(`no ${path}`);
  return f.content;
};
const parse = (userdata: string) => loadYaml<CloudConfig>(userdata);
const writtenFile = (userdata: string, path: string) =>
  parse(userdata).write_files.find((f) => f.path === path);
const kubeadmDocs = (userdata: string): Record<string, unknown>[] =>
  loadAllYaml(writtenFile(userdata, '/run/kubeadm/kubeadm.yaml')?.content ?? '') as Record<string, unknown>[];
const script = (userdata: string): string =>
  writtenFile(userdata, '/usr/local/sbin/knet-bootstrap')?.content ?? '';
const clientCertOf = (kubeconfigYaml: string) => {
  const kc = loadYaml<Kubeconfig>(kubeconfigYaml);
  const certPem = Buffer.from(kc.users[0]?.user['client-certificate-data'] ?? '', 'base64').toString('utf8');
  return { kc, certPem, cert: new X509Certificate(certPem) };
};
const hoursValid = (c: X509Certificate) => (Date.parse(c.validTo) - Date.now()) / 3600_000;

describe('controlPlaneFiles (kubeadm external CA mode)', () => {
  const pkiFiles = [
    'ca.crt',
    'client-ca-bundle.crt',
    'kubelet-signer.crt',
    'kubelet-signer.key',
    'apiserver.crt',
    'apiserver.key',
    'apiserver-kubelet-client.crt',
    'apiserver-kubelet-client.key',
    'front-proxy-ca.crt',
    'front-proxy-client.crt',
    'front-proxy-client.key',
    'etcd/ca.crt',
    'etcd/server.crt',
    'etcd/server.key',
    'etcd/peer.crt',
    'etcd/peer.key',
    'etcd/healthcheck-client.crt',
    'etcd/healthcheck-client.key',
    'apiserver-etcd-client.crt',
    'apiserver-etcd-client.key',
    'sa.key',
    'sa.pub',
  ].map((f) => `/etc/kubernetes/pki/${f}`);

  it.each([
    [
      'init',
      () => initFiles,
      ['admin.conf', 'controller-manager.conf', 'scheduler.conf', 'super-admin.conf', 'kubelet.conf'],
    ],
    ['join-control-plane', () => joinFiles, ['admin.conf', 'controller-manager.conf', 'scheduler.conf']],
  ])('%s: the certificates kubeadm would sign plus its kubeconfigs, and no CA key', (_role, files, confs) => {
    expect(files().map((f) => f.path)).toEqual([...pkiFiles, ...confs.map((c) => `/etc/kubernetes/${c}`)]);
    for (const f of files()) {
      expect(f.path).not.toMatch(/(^|\/)(ca|front-proxy-ca|etcd\/ca)\.key$/);
      for (const caKey of [pki.ca.keyPem, pki.etcd.keyPem, pki.proxy.keyPem])
        expect(f.content).not.toContain(pemBody(caKey).slice(0, 64));
    }
  });

  it('keys and kubeconfigs are 0600, certificates and public keys 0644', () => {
    for (const f of [...initFiles, ...joinFiles])
      expect([f.path, f.permissions]).toEqual([f.path, /\.(key|conf)$/.test(f.path) ? '0600' : '0644']);
  });

  it('the API server certificate covers the endpoint, the service names and IP, loopback and the node', () => {
    const init = describeCertificate(file(initFiles, '/etc/kubernetes/pki/apiserver.crt'));
    expect(init.dnsNames).toEqual([
      'alpha-cp-0',
      'kubernetes',
      'kubernetes.default',
      'kubernetes.default.svc',
      'kubernetes.default.svc.cluster.local',
      'localhost',
    ]);
    expect(init.ipAddresses).toEqual(['172.26.0.1', '127.0.0.1', '::1', '203.0.113.10']);
    const join = describeCertificate(file(joinFiles, '/etc/kubernetes/pki/apiserver.crt'));
    expect(join.ipAddresses).toEqual(['172.26.0.1', '127.0.0.1', '::1', '203.0.113.10', NODE_ADDRESS]);
    expect(new X509Certificate(file(initFiles, '/etc/kubernetes/pki/apiserver.crt')).keyUsage).toEqual([
      '1.3.6.1.5.5.7.3.1',
    ]);
  });

  it('a DNS endpoint and extra SANs land in the right SAN lists', async () => {
    const files = await controlPlaneFiles(pki, {
      ...filesInput('init', 'alpha-cp-0'),
      controlPlaneEndpoint: { host: 'api.alpha.example', port: 443 },
      extraSANs: ['api2.alpha.example', '192.0.2.7'],
    });
    const d = describeCertificate(file(files, '/etc/kubernetes/pki/apiserver.crt'));
    expect(d.dnsNames).toEqual(expect.arrayContaining(['api.alpha.example', 'api2.alpha.example']));
    expect(d.ipAddresses).toEqual(['172.26.0.1', '127.0.0.1', '::1', '192.0.2.7']);
    expect(clientCertOf(file(files, '/etc/kubernetes/admin.conf')).kc.clusters[0]?.cluster.server).toBe(
      'https://api.alpha.example:443',
    );
  });

  it('etcd serving and peer certificates name the node (and its addresses once known)', () => {
    for (const base of ['server', 'peer']) {
      const init = describeCertificate(file(initFiles, `/etc/kubernetes/pki/etcd/${base}.crt`));
      expect([init.subject, init.dnsNames, init.ipAddresses]).toEqual([
        'CN=alpha-cp-0',
        ['alpha-cp-0', 'localhost'],
        ['127.0.0.1', '::1'],
      ]);
      const join = describeCertificate(file(joinFiles, `/etc/kubernetes/pki/etcd/${base}.crt`));
      expect(join.ipAddresses).toEqual(['127.0.0.1', '::1', NODE_ADDRESS]);
    }
  });

  it.each([
    ['apiserver.crt', 'ca', 'CN=kube-apiserver'],
    ['apiserver-kubelet-client.crt', 'ca', 'CN=kube-apiserver-kubelet-client\nO=kubeadm:cluster-admins'],
    ['front-proxy-client.crt', 'proxy', 'CN=front-proxy-client'],
    ['etcd/healthcheck-client.crt', 'etcd', 'CN=kube-etcd-healthcheck-client'],
    ['apiserver-etcd-client.crt', 'etcd', 'CN=kube-apiserver-etcd-client'],
    ['etcd/server.crt', 'etcd', 'CN=alpha-cp-0'],
  ] as const)('%s is signed by the %s CA with subject %j', async (name, ca, subject) => {
    const pem = file(initFiles, `/etc/kubernetes/pki/${name}`);
    expect(await isSignedBy(pem, pki[ca].certPem)).toBe(true);
    expect(new X509Certificate(pem).subject).toBe(subject);
  });

  it.each([
    ['admin.conf', 'https://203.0.113.10:6443', 'CN=kubernetes-admin\nO=kubeadm:cluster-admins', 'ca', 24],
    [
      'super-admin.conf',
      'https://203.0.113.10:6443',
      'CN=kubernetes-super-admin\nO=system:masters',
      'ca',
      24,
    ],
    [
      'controller-manager.conf',
      'https://127.0.0.1:6443',
      'CN=system:kube-controller-manager',
      'ca',
      366 * 24,
    ],
    ['scheduler.conf', 'https://127.0.0.1:6443', 'CN=system:kube-scheduler', 'ca', 366 * 24],
    [
      'kubelet.conf',
      'https://203.0.113.10:6443',
      'CN=system:node:alpha-cp-0\nO=system:nodes',
      'kubeletSigner',
      366 * 24,
    ],
  ] as const)(
    'init %s: server %s, %j from the %s, at most %d h',
    async (name, server, subject, issuer, hours) => {
      const { kc, certPem, cert } = clientCertOf(file(initFiles, `/etc/kubernetes/${name}`));
      expect(kc.clusters[0]?.cluster.server).toBe(server);
      expect(
        Buffer.from(kc.clusters[0]?.cluster['certificate-authority-data'] ?? '', 'base64').toString(),
      ).toBe(pki.ca.certPem);
      expect(cert.subject).toBe(subject);
      expect(await isSignedBy(certPem, pki[issuer].certPem)).toBe(true);
      expect(hoursValid(cert)).toBeLessThanOrEqual(hours);
      expect(hoursValid(cert)).toBeGreaterThan(hours - 48);
    },
  );

  it("a joining control plane's local kubeconfigs use its advertise address (in its API server certificate)", () => {
    for (const name of ['controller-manager.conf', 'scheduler.conf'])
      expect(clientCertOf(file(joinFiles, `/etc/kubernetes/${name}`)).kc.clusters[0]?.cluster.server).toBe(
        `https://${NODE_ADDRESS}:6443`,
      );
  });

  it("the API server's client CA bundle is the cluster CA plus the kubelet signer", () => {
    expect(file(initFiles, '/etc/kubernetes/pki/client-ca-bundle.crt')).toBe(
      `${pki.ca.certPem.trim()}\n${pki.kubeletSigner.certPem.trim()}\n`,
    );
  });

  it('a joining control plane without addresses is refused (node-addresses-required)', async () => {
    await expect(
      controlPlaneFiles(pki, filesInput('join-control-plane', 'alpha-cp-2')),
    ).rejects.toMatchObject({
      name: 'BootstrapError',
      kind: 'node-addresses-required',
    });
  });

  it('refuses a node address that is not an IP and a machine name that is not a node name', async () => {
    await expect(
      controlPlaneFiles(pki, filesInput('init', 'alpha-cp-0', ['cp0.example'])),
    ).rejects.toMatchObject({ kind: 'invalid-input' });
    await expect(controlPlaneFiles(pki, filesInput('init', 'Alpha_CP'))).rejects.toMatchObject({
      kind: 'invalid-input',
    });
  });
});

describe('adminKubeconfig', () => {
  it('is the Secret <cluster>-kubeconfig with key value, a kubernetes-admin client of the cluster CA for a year', async () => {
    const { kubeconfig, secret } = await adminKubeconfig('alpha', pki.ca, ENDPOINT);
    expect(secret.metadata).toEqual({
      name: 'alpha-kubeconfig',
      labels: { 'cluster.x-k8s.io/cluster-name': 'alpha' },
    });
    expect(secret.type).toBe('cluster.x-k8s.io/secret');
    expect(Buffer.from(secret.data.value, 'base64').toString()).toBe(kubeconfig);
    const { kc, certPem, cert } = clientCertOf(kubeconfig);
    expect(kc.clusters[0]?.cluster.server).toBe('https://203.0.113.10:6443');
    expect(cert.subject).toBe('CN=kubernetes-admin\nO=kubeadm:cluster-admins');
    expect(await isSignedBy(certPem, pki.ca.certPem)).toBe(true);
    expect(hoursValid(cert) / 24).toBeGreaterThan(364);
  });
});

describe('renderUserData', () => {
  it.each(['init', 'join-control-plane', 'join-worker'] as const)(
    '%s: #cloud-config, root-owned files, keys 0600',
    (role) => {
      const ud = rendered[role];
      expect(ud.startsWith('#cloud-config\n')).toBe(true);
      const cc = parse(ud);
      for (const f of cc.write_files) {
        expect(f.owner).toBe('root:root');
        expect(f.permissions).toMatch(/^0[0-7]{3}$/);
        if (/\.(key|conf)$|kubeadm\.yaml$/.test(f.path)) expect(f.permissions).toBe('0600');
      }
      expect(cc.runcmd).toEqual([['bash', '/usr/local/sbin/knet-bootstrap']]);
    },
  );

  it('a worker gets only its kubeadm config and the script: no CA file (kubeadm discovers it, pinned)', () => {
    expect(parse(rendered['join-worker']).write_files.map((f) => f.path)).toEqual([
      '/run/kubeadm/kubeadm.yaml',
      '/usr/local/sbin/knet-bootstrap',
    ]);
  });

  it('init: InitConfiguration with the token and its TTL, ClusterConfiguration in external CA mode with the kubelet signer', () => {
    const [init, cluster] = kubeadmDocs(rendered.init);
    expect(init).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'InitConfiguration',
      bootstrapTokens: [
        {
          token: TOKEN,
          description: 'created by kubeadm init from the Cluster API bootstrap data',
          ttl: '3600s',
          usages: ['signing', 'authentication'],
          groups: ['system:bootstrappers:kubeadm:default-node-token'],
        },
      ],
      nodeRegistration: { name: 'alpha-cp-0', criSocket: 'unix:///var/run/containerd/containerd.sock' },
      localAPIEndpoint: { bindPort: 6443 },
    });
    expect(cluster).toEqual({
      apiVersion: 'kubeadm.k8s.io/v1beta4',
      kind: 'ClusterConfiguration',
      clusterName: 'alpha',
      kubernetesVersion: 'v1.34.4',
      controlPlaneEndpoint: '203.0.113.10:6443',
      certificatesDir: '/etc/kubernetes/pki',
      networking: { serviceSubnet: '172.26.0.0/16', dnsDomain: 'cluster.local', podSubnet: '192.168.0.0/16' },
      apiServer: {
        extraArgs: [{ name: 'client-ca-file', value: '/etc/kubernetes/pki/client-ca-bundle.crt' }],
      },
      controllerManager: {
        extraArgs: [
          {
            name: 'cluster-signing-kubelet-client-cert-file',
            value: '/etc/kubernetes/pki/kubelet-signer.crt',
          },
          {
            name: 'cluster-signing-kubelet-client-key-file',
            value: '/etc/kubernetes/pki/kubelet-signer.key',
          },
        ],
      },
    });
  });

  it.each([
    [
      'join-control-plane',
      { controlPlane: { localAPIEndpoint: { advertiseAddress: NODE_ADDRESS, bindPort: 6443 } } },
    ],
    ['join-worker', {}],
  ] as const)('%s: JoinConfiguration pinning the cluster CA (never unsafe-skip)', (role, controlPlane) => {
    const docs = kubeadmDocs(rendered[role]);
    expect(docs).toEqual([
      {
        apiVersion: 'kubeadm.k8s.io/v1beta4',
        kind: 'JoinConfiguration',
        discovery: {
          bootstrapToken: {
            apiServerEndpoint: '203.0.113.10:6443',
            token: TOKEN,
            caCertHashes: [caCertHash(pki.ca.certPem)],
          },
        },
        nodeRegistration: {
          name: role === 'join-worker' ? 'alpha-md-0' : 'alpha-cp-1',
          criSocket: 'unix:///var/run/containerd/containerd.sock',
        },
        ...controlPlane,
      },
    ]);
    expect(rendered[role]).not.toMatch(/unsafe/i);
  });

  it.each([
    ['no cloud provider', {}, undefined, undefined],
    ["cloudProvider ''", { cloudProvider: '' as const }, undefined, undefined],
    [
      'cloud-provider external',
      { cloudProvider: 'external' as const },
      [{ name: 'cloud-provider', value: 'external' }],
      [{ name: 'cloud-provider', value: 'external' }],
    ],
    [
      'extra kubelet args',
      { kubeletExtraArgs: { 'max-pods': '200' } },
      [{ name: 'max-pods', value: '200' }],
      undefined,
    ],
  ])('%s: kubelet and controller-manager flags', (_what, overrides, kubelet, kcmCloud) => {
    for (const role of ['init', 'join-worker'] as const) {
      const [first, cluster] = kubeadmDocs(renderUserData(input(role, overrides))) as {
        nodeRegistration: { kubeletExtraArgs?: unknown };
      }[];
      expect(first?.nodeRegistration.kubeletExtraArgs).toEqual(kubelet);
      if (role === 'init') {
        const kcm = (cluster as unknown as { controllerManager: { extraArgs: { name: string }[] } })
          .controllerManager.extraArgs;
        expect(kcm.filter((a) => a.name === 'cloud-provider')).toEqual(kcmCloud ?? []);
      }
    }
  });

  it.each(['init', 'join-control-plane', 'join-worker'] as const)(
    '%s: the script installs the exact version from pkgs.k8s.io, prepares the kernel, runs kubeadm, and is valid bash',
    async (role) => {
      const s = script(rendered[role]);
      expect(s).toMatch(/^#!\/bin\/bash\n/);
      expect(s).toContain('set -euo pipefail');
      expect(s).toContain('https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key');
      expect(s).toContain("apt-get install -y -q 'kubelet=1.34.4-*' 'kubeadm=1.34.4-*' 'kubectl=1.34.4-*'");
      expect(s).toContain('apt-get install -y -q apt-transport-https ca-certificates curl gpg containerd');
      for (const step of [
        'swapoff -a',
        'modprobe br_netfilter',
        'net.ipv4.ip_forward = 1',
        'SystemdCgroup = true',
      ])
        expect(s).toContain(step);
      const kubeadm = s.split('\n').filter((l) => /^kubeadm (init|join)/.test(l));
      expect(kubeadm).toEqual([
        role === 'init'
          ? 'kubeadm init --config /run/kubeadm/kubeadm.yaml'
          : 'kubeadm join --config /run/kubeadm/kubeadm.yaml',
      ]);
      expect(s.indexOf('apt-mark hold')).toBeLessThan(s.indexOf(kubeadm[0] ?? '?'));
      await execa('bash', ['-n'], { input: s });
    },
  );

  it('the endpoint IP goes on lo before kubeadm init, after kubeadm join --control-plane, never on workers', () => {
    const enable = 'systemctl enable --now knet-endpoint-on-lo.service';
    const at = (role: NodeRole) => {
      const s = script(rendered[role]);
      return { enable: s.indexOf(enable), kubeadm: s.search(/^kubeadm /m) };
    };
    expect(at('init').enable).toBeGreaterThan(0);
    expect(at('init').enable).toBeLessThan(at('init').kubeadm);
    expect(at('join-control-plane').enable).toBeGreaterThan(at('join-control-plane').kubeadm);
    expect(at('join-worker').enable).toBe(-1);
    expect(writtenFile(rendered.init, '/etc/systemd/system/knet-endpoint-on-lo.service')?.content).toContain(
      'ExecStart=/sbin/ip addr replace 203.0.113.10/32 dev lo',
    );
    for (const overrides of [
      { endpointOnLoopback: false },
      { controlPlaneEndpoint: { host: 'api.alpha.example', port: 6443 } },
    ])
      expect(script(renderUserData(input('init', overrides)))).not.toContain(enable);
  });

  it.each([
    [undefined, '--provider-id=equinixmetal://6b8d5a3e-0c1f-4c3a-9a57-1f0a3c2b9d10'],
    [
      'private-ipv4',
      '--provider-id=equinixmetal://6b8d5a3e-0c1f-4c3a-9a57-1f0a3c2b9d10 --node-ip=10.70.12.3',
    ],
    [
      'public-ipv4',
      '--provider-id=equinixmetal://6b8d5a3e-0c1f-4c3a-9a57-1f0a3c2b9d10 --node-ip=147.75.80.9',
    ],
  ] as const)(
    'node IP %s: the kubelet flags the script derives from Equinix metadata',
    async (nodeIp, flags) => {
      const s = script(renderUserData(input('join-worker', nodeIp ? { nodeIp } : {})));
      // The script's own lines, run by bash against Equinix-shaped metadata; the env file goes to stdout.
      const lines = s
        .split('\n')
        .filter((l) => /^(instance_id|kubelet_args|node_ip)=|^echo "KUBELET_EXTRA_ARGS=/.test(l))
        .map((l) => l.replace('> /etc/default/kubelet', ''));
      expect(lines).toHaveLength(nodeIp ? 5 : 3);
      const metadata = JSON.stringify({
        id: '6b8d5a3e-0c1f-4c3a-9a57-1f0a3c2b9d10',
        network: {
          addresses: [
            { address: '147.75.80.9', address_family: 4, public: true, management: true },
            { address: '2604:1380:4641:c500::3', address_family: 6, public: true, management: true },
            { address: '10.70.12.3', address_family: 4, public: false, management: true },
          ],
        },
      });
      const { stdout } = await execa('bash', [
        '-c',
        `set -euo pipefail\nmetadata=$1\n${lines.join('\n')}`,
        'bash',
        metadata,
      ]);
      expect(stdout).toBe(`KUBELET_EXTRA_ARGS="${flags}"`);
      expect(s).toContain(
        'curl -fsS --retry 10 --retry-delay 3 --retry-connrefused https://metadata.platformequinix.com/metadata',
      );
      expect(s).toContain('> /etc/default/kubelet');
    },
  );

  it('pre and post commands, SSH keys and users are placed where cloud-init runs them', () => {
    const cc = parse(
      renderUserData(
        input('join-worker', {
          extra: {
            preKubeadmCommands: ['echo pre1', 'echo pre2'],
            postKubeadmCommands: ['echo post'],
            sshAuthorizedKeys: ['ssh-ed25519 AAAAC3Nza alpha@ops'],
            users: [
              {
                name: 'ops',
                sshAuthorizedKeys: ['ssh-ed25519 AAAAC3Nzb ops'],
                sudo: 'ALL=(ALL) NOPASSWD:ALL',
                groups: ['adm'],
              },
            ],
          },
        }),
      ),
    );
    expect(cc.runcmd).toEqual([
      'echo pre1',
      'echo pre2',
      ['bash', '/usr/local/sbin/knet-bootstrap'],
      'echo post',
    ]);
    expect(cc.ssh_authorized_keys).toEqual(['ssh-ed25519 AAAAC3Nza alpha@ops']);
    expect(cc.users).toEqual([
      'default',
      {
        name: 'ops',
        lock_passwd: true,
        ssh_authorized_keys: ['ssh-ed25519 AAAAC3Nzb ops'],
        sudo: 'ALL=(ALL) NOPASSWD:ALL',
        groups: ['adm'],
      },
    ]);
  });

  it('renders the same bytes for the same input', () => {
    for (const role of ['init', 'join-control-plane', 'join-worker'] as const)
      expect(renderUserData(input(role))).toBe(rendered[role]);
  });

  it.each<[string, () => Partial<UserDataInput>, string, RegExp]>([
    ['Kubernetes 1.30', () => ({ kubernetesVersion: 'v1.30.9' }), 'unsupported-version', /1\.31–1\.34/],
    ['Kubernetes 1.35', () => ({ kubernetesVersion: '1.35.0' }), 'unsupported-version', /not supported/],
    ['a pre-release', () => ({ kubernetesVersion: 'v1.34.0-rc.1' }), 'invalid-input', /not a release/],
    [
      'a malformed token',
      () => ({ token: 'abcdef-0123456789abcdef' }),
      'invalid-input',
      /bootstrap token is not/,
    ],
    [
      'a hash of another CA',
      () => ({ caCertHash: caCertHash(pki.etcd.certPem) }),
      'invalid-input',
      /does not pin caCertPem/,
    ],
    ['a bad dnsDomain', () => ({ dnsDomain: 'Cluster Local' }), 'invalid-input', /dnsDomain/],
    [
      'files for a worker',
      () => ({ files: [initFiles[0] as BootstrapFile] }),
      'invalid-input',
      /a worker gets no files/,
    ],
    ['a zero token TTL', () => ({ tokenTtlMs: 0 }), 'invalid-input', /tokenTtlMs/],
  ])('refuses %s', (_what, overrides, kind, message) => {
    const role = _what === 'files for a worker' ? 'join-worker' : 'init';
    const e = thrown(() => renderUserData(input(role, overrides())));
    expect(e).toBeInstanceOf(BootstrapError);
    expect(e).toMatchObject({ kind, message: expect.stringMatching(message) });
    expect((e as Error).message).not.toContain('0123456789abcdef');
  });

  it('refuses a control plane without its files, or with a file of another cluster', () => {
    expect(() =>
      renderUserData(input('init', { files: initFiles.filter((f) => !f.path.endsWith('kubelet.conf')) })),
    ).toThrow(/init bootstrap lacks \/etc\/kubernetes\/kubelet.conf/);
    const foreign = initFiles.map((f) =>
      f.path.endsWith('/pki/ca.crt') ? { ...f, content: pki.etcd.certPem } : f,
    );
    expect(() => renderUserData(input('init', { files: foreign }))).toThrow(/belong to another cluster/);
  });
});

describe('no CA private key in any bootstrap data', () => {
  /**
   * How many traces of `keyPem` `text` holds: a line of its PEM body (except the first, whose
   * start is the same in every P-256 PKCS#8 key), its DER in base64, the whole PEM in base64.
   */
  function leaks(text: string, keyPem: string): number {
    const body = keyPem.split('\n').filter((l) => l && !l.startsWith('-----'));
    const pems = [keyPem, keyPem.trim(), `${keyPem.trim()}\n`];
    const needles = [...body.slice(1), body.join(''), ...pems.map((p) => Buffer.from(p).toString('base64'))];
    return needles.filter((n) => n.length >= 32 && text.includes(n)).length;
  }
  const caKeys = () => ({ ca: pki.ca.keyPem, etcd: pki.etcd.keyPem, proxy: pki.proxy.keyPem });

  it('the counter catches deliberate leaks: PEM, base64 PEM, in a kubeconfig, one line', () => {
    const ud = rendered.init;
    const key = pki.ca.keyPem;
    expect(leaks(`${ud}${key}`, key)).toBeGreaterThan(0);
    expect(leaks(`${ud}\n${Buffer.from(key).toString('base64')}`, key)).toBeGreaterThan(0);
    expect(
      leaks(`${ud}\n    client-key-data: "${Buffer.from(key).toString('base64')}"`, key),
    ).toBeGreaterThan(0);
    expect(leaks(`${ud}\n${key.split('\n')[3]}`, key)).toBeGreaterThan(0);
    expect(leaks(ud, key)).toBe(0);
  });

  it('renderUserData refuses a CA key file, by path or disguised as a leaf key or inside a kubeconfig', () => {
    const withFile = (f: BootstrapFile) => () => renderUserData(input('init', { files: [...initFiles, f] }));
    expect(
      withFile({ path: '/etc/kubernetes/pki/ca.key', content: pki.ca.keyPem, permissions: '0600' }),
    ).toThrow(/refusing to write \/etc\/kubernetes\/pki\/ca.key/);
    const swapped = initFiles.map((f) =>
      f.path.endsWith('/pki/apiserver.key') ? { ...f, content: pki.ca.keyPem } : f,
    );
    expect(() => renderUserData(input('init', { files: swapped }))).toThrow(/holds a CA's private key/);
    const kubeconfigLeak = initFiles.map((f) =>
      f.path.endsWith('admin.conf')
        ? {
            ...f,
            content: f.content.replace(
              /client-key-data: "[^"]+"/,
              `client-key-data: "${Buffer.from(pki.etcd.keyPem).toString('base64')}"`,
            ),
          }
        : f,
    );
    expect(() => renderUserData(input('init', { files: kubeconfigLeak }))).toThrow(
      /holds a CA's private key/,
    );
  });

  it.each(['init', 'join-control-plane', 'join-worker'] as const)(
    '%s userdata: 0 traces of the cluster, etcd and front-proxy CA keys',
    (role) => {
      for (const [name, key] of Object.entries(caKeys()))
        expect([name, leaks(rendered[role], key)]).toEqual([name, 0]);
    },
  );
});

function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}
