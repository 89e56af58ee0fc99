import { firstServiceIp } from '../controlplane/controlplane';
import { cgroupV1Mounts } from './cgroups';
import {
  cniNetwork,
  containerdConfig,
  DEFAULT_NODE_NETWORK,
  kubeletConfig,
  kubeProxyConfig,
  nodePaths,
} from './config';
import { mountsUnder, normalizeRef } from './node-bed';

const p = nodePaths('/tmp/knet-node-knt-1-abcd');
const net = { ...DEFAULT_NODE_NETWORK, cniName: 'knet-node-knt-1-abcd' };

describe('the real node configuration', () => {
  it('keeps every address in the documentation ranges', () => {
    const doc = /^(192\.0\.2|198\.51\.100|203\.0\.113)\./;
    for (const a of [net.nodeIp, net.podCidr, net.podGateway, net.serviceCidr]) expect(a).toMatch(doc);
    expect(firstServiceIp(net.serviceCidr)).toBe('203.0.113.1');
  });

  it('containerd: private root, state and socket, runc state and CNI under the node folder', () => {
    const toml = containerdConfig(p, { sandboxImage: 'ghcr.io/knet/pause:3.10', snapshotter: 'overlayfs' });
    const paths = [...toml.matchAll(/"(\/[^"]+)"/g)].map((m) => m[1] as string);
    // Every path is the node's own, except the plugins' folder (read-only, from the Debian package).
    expect(paths.filter((x) => !x.startsWith(`${p.dir}/`))).toEqual(['/usr/lib/cni']);
    expect(toml).toContain('restrict_oom_score_adj = true');
    expect(toml).toContain('netns_mounts_under_state_dir = true');
    expect(toml).toContain('sandbox_image = "ghcr.io/knet/pause:3.10"');
    expect(toml).toContain('snapshotter = "overlayfs"');
    expect(toml).toMatch(/\[debug\]\n {2}address = ""/);
    expect(toml).toMatch(/\[metrics\]\n {2}address = ""/);
  });

  it('CNI: one bridge, host-local addresses in the pod CIDR, state under the node folder', () => {
    expect(cniNetwork(net, p)).toEqual({
      cniVersion: '1.0.0',
      name: 'knet-node-knt-1-abcd',
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: '198.51.100.0/24', gateway: '198.51.100.1' }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: `${p.dir}/cni/ipam`,
          },
        },
      ],
    });
  });

  it('kubelet: cgroup v1 + cgroupfs, its own cgroup root, no anonymous access, nothing outside the folder', () => {
    const c = kubeletConfig(net, p, {
      cgroupRoot: '/knet-node-knt-1-abcd',
      clientCaFile: `${p.kubeletCertDir}/ca.crt`,
      tlsCertFile: `${p.kubeletCertDir}/kubelet.crt`,
      tlsPrivateKeyFile: `${p.kubeletCertDir}/kubelet.key`,
    }) as Record<string, unknown>;
    expect(c).toMatchObject({
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: '/knet-node-knt-1-abcd',
      readOnlyPort: 0,
      address: '192.0.2.10',
      healthzBindAddress: '127.0.0.1',
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: `unix://${p.dir}/containerd/containerd.sock`,
      imageGCHighThresholdPercent: 100,
    });
    for (const k of ['resolvConf', 'podLogsDir', 'volumePluginDir', 'tlsCertFile', 'tlsPrivateKeyFile']) {
      expect(String(c[k])).toMatch(new RegExp(`^${p.dir}/`));
    }
  });

  it('kube-proxy: iptables in the node namespace, no global sysctl, Service traffic masqueraded', () => {
    expect(kubeProxyConfig(net, '/k')).toMatchObject({
      mode: 'iptables',
      clientConnection: { kubeconfig: '/k' },
      hostnameOverride: 'knet-node',
      clusterCIDR: '198.51.100.0/24',
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
      iptables: { masqueradeAll: true, localhostNodePorts: false },
    });
  });
});

describe('node helpers', () => {
  it.each([
    ['ghcr.io/knet/pause:3.10', 'ghcr.io/knet/pause:3.10'],
    ['knet/gateway-init:0.1.0', 'docker.io/knet/gateway-init:0.1.0'],
    ['busybox', 'docker.io/library/busybox:latest'],
    ['localhost/knet/x', 'localhost/knet/x:latest'],
    ['localhost:5000/x:1', 'localhost:5000/x:1'],
  ])('normalizeRef(%s) = %s', (ref, want) => expect(normalizeRef(ref)).toBe(want));

  it('finds mounts under a folder, deepest first, with escaped spaces decoded', () => {
    const info = [
      '31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw',
      '90 23 0:50 / /tmp/n/containerd/state/a/rootfs rw - overlay overlay rw',
      '91 23 0:51 / /tmp/n/kubelet/pods/x/volumes/kube\\040api rw - tmpfs tmpfs rw',
      '92 23 0:52 / /tmp/nn/other rw - tmpfs tmpfs rw',
    ].join('\n');
    expect(mountsUnder('/tmp/n', info)).toEqual([
      '/tmp/n/kubelet/pods/x/volumes/kube api',
      '/tmp/n/containerd/state/a/rootfs',
    ]);
  });

  it('lists cgroup v1 hierarchies from mountinfo', () => {
    const info = [
      '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
      '32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu',
      '34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset',
      '35 31 0:32 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw',
    ].join('\n');
    expect(cgroupV1Mounts(info)).toEqual(['/sys/fs/cgroup/cpu', '/sys/fs/cgroup/cpuset']);
  });

  it.each([
    ['203.0.113.0/24', '203.0.113.1'],
    ['10.96.0.0/12', '10.96.0.1'],
    ['10.96.5.7/16', '10.96.0.1'],
  ])('firstServiceIp(%s) = %s', (cidr, ip) => expect(firstServiceIp(cidr)).toBe(ip));

  it('refuses a service CIDR that is not IPv4 with one line', () => {
    expect(() => firstServiceIp('fd00::/108')).toThrow(/not an IPv4 CIDR like 203\.0\.113\.0\/24/);
  });
});
