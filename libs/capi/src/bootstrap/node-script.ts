import type { KubernetesVersion, NodeRole } from './kubeadm-config';

export const KUBEADM_CONFIG_PATH = '/run/kubeadm/kubeadm.yaml';
export const BOOTSTRAP_SCRIPT_PATH = '/usr/local/sbin/knet-bootstrap';
export const ENDPOINT_UNIT_PATH = '/etc/systemd/system/knet-endpoint-on-lo.service';
/** Equinix Metal's metadata service (JSON: `id`, `network.addresses[]`). */
export const METADATA_URL = 'https://metadata.platformequinix.com/metadata';
/** CAPI's convention for "bootstrap succeeded" (CAPD and others look for it). */
export const SUCCESS_SENTINEL = '/run/cluster-api/bootstrap-success.complete';

export interface BootstrapScriptInput {
  role: NodeRole;
  version: KubernetesVersion;
  nodeIp?: 'private-ipv4' | 'public-ipv4';
  /** Control planes: the endpoint IP to bind on lo (init: before kubeadm; join: after). */
  endpointIp?: string;
}

/**
 * The node's bootstrap as one bash script with `set -euo pipefail`, so nothing after a failed step
 * runs (cloud-init's runcmd would carry on). Every value it contains was validated by the caller
 * (a version, an IP, fixed paths), so nothing needs quoting beyond what is written here.
 */
export function bootstrapScript(input: BootstrapScriptInput): string {
  const { version } = input;
  const repo = `https://pkgs.k8s.io/core:/stable:/${version.minorTag}/deb/`;
  const kubeadmCommand =
    input.role === 'init'
      ? `kubeadm init --config ${KUBEADM_CONFIG_PATH}`
      : `kubeadm join --config ${KUBEADM_CONFIG_PATH}`;
  const bindEndpoint = input.endpointIp
    ? [
        '# The control-plane endpoint (an Elastic IP) answers on this host too.',
        'systemctl daemon-reload',
        'systemctl enable --now knet-endpoint-on-lo.service',
      ]
    : [];
  const nodeIp =
    input.nodeIp === undefined
      ? []
      : [
          `node_ip=$(printf '%s' "$metadata" | python3 -c 'import json, sys; print(next(a["address"] for a in json.load(sys.stdin)["network"]["addresses"] if a["address_family"] == 4 and a["public"] == ${input.nodeIp === 'public-ipv4' ? 'True' : 'False'}))')`,
          'kubelet_args="$kubelet_args --node-ip=$node_ip"',
        ];
  return [
    '#!/bin/bash',
    `# Cluster API bootstrap (${input.role}, Kubernetes ${version.tag}), rendered by @knet/capi.`,
    'set -euo pipefail',
    'export DEBIAN_FRONTEND=noninteractive',
    'step() { echo "knet-bootstrap: $*"; }',
    '',
    'step "kernel: swap off, overlay and br_netfilter, forwarding"',
    'swapoff -a',
    "sed -ri '/\\sswap\\s/s/^#?/#/' /etc/fstab",
    "printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/knet-kubernetes.conf",
    'modprobe overlay',
    'modprobe br_netfilter',
    'cat > /etc/sysctl.d/99-knet-kubernetes.conf <<EOF',
    'net.bridge.bridge-nf-call-iptables = 1',
    'net.bridge.bridge-nf-call-ip6tables = 1',
    'net.ipv4.ip_forward = 1',
    'net.ipv6.conf.all.forwarding = 1',
    'EOF',
    'sysctl --system >/dev/null',
    '',
    `step "packages: containerd; kubelet, kubeadm, kubectl ${version.semver} from ${repo}"`,
    'apt-get update -q',
    'apt-get install -y -q apt-transport-https ca-certificates curl gpg containerd',
    'install -d -m 0755 /etc/apt/keyrings',
    `curl -fsSL --retry 5 ${repo}Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg`,
    `echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] ${repo} /' > /etc/apt/sources.list.d/kubernetes.list`,
    'apt-get update -q',
    `apt-get install -y -q 'kubelet=${version.semver}-*' 'kubeadm=${version.semver}-*' 'kubectl=${version.semver}-*'`,
    'apt-mark hold kubelet kubeadm kubectl',
    '',
    'step "containerd: systemd cgroups, the sandbox image kubeadm expects"',
    'install -d -m 0755 /etc/containerd',
    'containerd config default > /etc/containerd/config.toml',
    "sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml",
    `pause=$(kubeadm config images list --kubernetes-version ${version.tag} 2>/dev/null | grep '/pause:' || true)`,
    'if [ -n "$pause" ]; then sed -i "s|sandbox_image = .*|sandbox_image = \\"$pause\\"|" /etc/containerd/config.toml; fi',
    'systemctl enable containerd',
    'systemctl restart containerd',
    '',
    `step "kubelet: provider ID from ${METADATA_URL}"`,
    `metadata=$(curl -fsS --retry 10 --retry-delay 3 --retry-connrefused ${METADATA_URL})`,
    `instance_id=$(printf '%s' "$metadata" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')`,
    'kubelet_args="--provider-id=equinixmetal://$instance_id"',
    ...nodeIp,
    'echo "KUBELET_EXTRA_ARGS=\\"$kubelet_args\\"" > /etc/default/kubelet',
    '',
    ...(input.role === 'init' ? bindEndpoint : []),
    `step "${kubeadmCommand}"`,
    kubeadmCommand,
    ...(input.role === 'join-control-plane' ? bindEndpoint : []),
    '',
    `install -d -m 0755 ${SUCCESS_SENTINEL.replace(/\/[^/]+$/, '')}`,
    `echo success > ${SUCCESS_SENTINEL}`,
    'step "done"',
    '',
  ].join('\n');
}

/** A oneshot unit that keeps the endpoint IP on lo across reboots. */
export function endpointUnit(ip: string): string {
  const prefix = ip.includes(':') ? 128 : 32;
  return [
    '[Unit]',
    'Description=Control-plane endpoint on lo (Cluster API bootstrap)',
    'After=network-pre.target',
    'Before=kubelet.service',
    '',
    '[Service]',
    'Type=oneshot',
    'RemainAfterExit=yes',
    `ExecStart=/sbin/ip addr replace ${ip}/${prefix} dev lo`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
