/**
 * The real node's configuration, rendered from its network plan and folders: containerd's
 * config.toml, the CNI network, the KubeletConfiguration and the KubeProxyConfiguration. Pure
 * (golden tests in config.spec.ts); `NodeBed` writes them and starts the programs.
 */

/** The node's addresses. Documentation ranges only: nothing here may collide with a real network. */
export interface NodeNetwork {
  /** The CNI network's name (containerd caches results in /var/lib/cni/results/<name>-<id>-<if>). */
  cniName: string;
  /** The Node object's name (kubelet `--hostname-override`, kube-proxy `hostnameOverride`). */
  nodeName: string;
  /** The node's address inside its namespace (a dummy interface): InternalIP, API advertise address. */
  nodeIp: string;
  /** Pods' subnet on the node's bridge (host-local IPAM). */
  podCidr: string;
  /** The bridge's address in `podCidr`: the pods' default gateway. */
  podGateway: string;
  /** Services' ClusterIP range (the `kubernetes` Service takes its first address). */
  serviceCidr: string;
}

export const DEFAULT_NODE_NETWORK: NodeNetwork = {
  cniName: 'knet-node',
  nodeName: 'knet-node',
  nodeIp: '192.0.2.10',
  podCidr: '198.51.100.0/24',
  podGateway: '198.51.100.1',
  serviceCidr: '203.0.113.0/24',
};

/** The name of the node's bridge (CNI `bridge` plugin). */
export const NODE_BRIDGE = 'cni0';

/** Every folder and file of one node, all under its own directory. */
export interface NodePaths {
  dir: string;
  containerdRoot: string;
  containerdState: string;
  containerdSocket: string;
  containerdOpt: string;
  runcRoot: string;
  cniConfDir: string;
  cniIpamDir: string;
  kubeletRoot: string;
  kubeletCertDir: string;
  podLogsDir: string;
  volumePluginDir: string;
  resolvConf: string;
}

export function nodePaths(dir: string): NodePaths {
  return {
    dir,
    containerdRoot: `${dir}/containerd/root`,
    containerdState: `${dir}/containerd/state`,
    containerdSocket: `${dir}/containerd/containerd.sock`,
    containerdOpt: `${dir}/containerd/opt`,
    runcRoot: `${dir}/runc`,
    cniConfDir: `${dir}/cni/net.d`,
    cniIpamDir: `${dir}/cni/ipam`,
    kubeletRoot: `${dir}/kubelet`,
    kubeletCertDir: `${dir}/kubelet/pki`,
    podLogsDir: `${dir}/pod-logs`,
    volumePluginDir: `${dir}/kubelet/volume-plugins`,
    resolvConf: `${dir}/resolv.conf`,
  };
}

/** Where Debian's containernetworking-plugins installs the CNI plugins. */
export const CNI_BIN_DIR = '/usr/lib/cni';

/**
 * containerd 1.6's config: private root, state and socket; the CRI plugin with our pause image,
 * the node's CNI folder, runc state under the node's folder. Two settings this machine needs:
 * `restrict_oom_score_adj` (root here lacks CAP_SYS_RESOURCE, so runc cannot lower the pause
 * container's oom_score_adj and every sandbox would fail "can't get final child's PID from pipe"),
 * and `netns_mounts_under_state_dir` (pods' netns bind mounts stay under the node's folder, where
 * teardown finds them).
 */
export function containerdConfig(p: NodePaths, opts: { sandboxImage: string; snapshotter: string }): string {
  const q = (s: string) => JSON.stringify(s);
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return [
    'version = 2',
    `root = ${q(p.containerdRoot)}`,
    `state = ${q(p.containerdState)}`,
    'disabled_plugins = [',
    '  "io.containerd.snapshotter.v1.aufs",',
    '  "io.containerd.snapshotter.v1.btrfs",',
    '  "io.containerd.snapshotter.v1.devmapper",',
    '  "io.containerd.snapshotter.v1.zfs",',
    '  "io.containerd.tracing.processor.v1.otlp",',
    '  "io.containerd.internal.v1.tracing",',
    ']',
    '',
    '[grpc]',
    `  address = ${q(p.containerdSocket)}`,
    '',
    '[debug]',
    '  address = ""',
    '',
    '[metrics]',
    '  address = ""',
    '',
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${q(p.containerdOpt)}`,
    '',
    `[${cri}]`,
    `  sandbox_image = ${q(opts.sandboxImage)}`,
    '  restrict_oom_score_adj = true',
    '  netns_mounts_under_state_dir = true',
    '  disable_tcp_service = true',
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '',
    `[${cri}.containerd]`,
    `  snapshotter = ${q(opts.snapshotter)}`,
    '  default_runtime_name = "runc"',
    '',
    `[${cri}.containerd.runtimes.runc]`,
    '  runtime_type = "io.containerd.runc.v2"',
    '',
    `[${cri}.containerd.runtimes.runc.options]`,
    `  Root = ${q(p.runcRoot)}`,
    '  SystemdCgroup = false',
    '',
    `[${cri}.cni]`,
    `  bin_dir = ${q(CNI_BIN_DIR)}`,
    `  conf_dir = ${q(p.cniConfDir)}`,
    '  max_conf_num = 1',
    '',
  ].join('\n');
}

/** The pod network: one bridge, host-local addresses from `podCidr`, default route via the bridge. */
export function cniNetwork(net: NodeNetwork, p: NodePaths): object {
  return {
    cniVersion: '1.0.0',
    name: net.cniName,
    plugins: [
      {
        type: 'bridge',
        bridge: NODE_BRIDGE,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: net.podCidr, gateway: net.podGateway }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: p.cniIpamDir,
        },
      },
    ],
  };
}

/**
 * The kubelet's configuration: cgroup v1 with the cgroupfs driver (this VM has no cgroup v2 and no
 * systemd), a per-node cgroup root, containerd's socket, x509 + webhook authentication and webhook
 * authorization (no anonymous access, no read-only port), every path under the node's folder, and
 * no disk-driven eviction or image garbage collection (the images are imported, never pulled).
 */
export function kubeletConfig(
  net: NodeNetwork,
  p: NodePaths,
  opts: { cgroupRoot: string; clientCaFile: string; tlsCertFile: string; tlsPrivateKeyFile: string },
): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: net.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    tlsCertFile: opts.tlsCertFile,
    tlsPrivateKeyFile: opts.tlsPrivateKeyFile,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: opts.clientCaFile },
    },
    authorization: { mode: 'Webhook' },
    containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: opts.cgroupRoot,
    failCgroupV1: false,
    failSwapOn: false,
    clusterDomain: 'cluster.local',
    resolvConf: p.resolvConf,
    podLogsDir: p.podLogsDir,
    volumePluginDir: p.volumePluginDir,
    maxPods: 50,
    evictionHard: {
      'memory.available': '100Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    serializeImagePulls: false,
    registerNode: true,
    shutdownGracePeriod: '0s',
    shutdownGracePeriodCriticalPods: '0s',
  };
}

/**
 * kube-proxy in iptables mode, inside the node's namespace. It touches no global sysctl
 * (`conntrack.maxPerCore: 0` and zero timeouts leave nf_conntrack settings alone), serves health
 * and metrics on the namespace's loopback, and masquerades all Service traffic, so the bed does not
 * depend on br_netfilter: this kernel has it built in, elsewhere it is a module that the bed must
 * not load (that would change the machine). Without either, a pod reaching a Service backed by a
 * pod on the same bridge would get the reply straight from the backend's address.
 */
export function kubeProxyConfig(net: NodeNetwork, kubeconfig: string): object {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig },
    hostnameOverride: net.nodeName,
    clusterCIDR: net.podCidr,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: '0s',
      tcpCloseWaitTimeout: '0s',
    },
    iptables: { masqueradeAll: true, localhostNodePorts: false },
  };
}
