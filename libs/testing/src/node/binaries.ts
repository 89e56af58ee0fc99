import { kubeLdflags } from '../controlplane/binaries';
import { ensureGoTool, findGoTool, type GoToolOptions, type GoToolRecipe } from '../controlplane/go-tools';

type Log = (line: string) => void;

export type NodeBinary = 'kubelet' | 'kube-proxy' | 'kube-scheduler';

/**
 * kubelet, kube-proxy and kube-scheduler from tools/kubenode: the control plane's Kubernetes
 * release. (The scheduler only matters once there is a node to schedule to, so it is built here
 * rather than with the control plane.)
 */
export const KUBENODE_TOOL: GoToolRecipe<NodeBinary> = {
  name: 'kubenode',
  moduleDir: 'tools/kubenode',
  binaries: {
    kubelet: 'k8s.io/kubernetes/cmd/kubelet',
    'kube-proxy': 'k8s.io/kubernetes/cmd/kube-proxy',
    'kube-scheduler': 'k8s.io/kubernetes/cmd/kube-scheduler',
  },
  // Stamped like the control plane's binaries: the Node reports this kubelet version.
  ldflags: kubeLdflags(),
  firstBuild: '~1 min on 2 cores once the kube binaries are built (it shares their packages)',
};

/** Builds (or finds) kubelet, kube-proxy and kube-scheduler; cached and locked like every test-bed tool. */
export async function ensureNodeBinaries(
  log?: Log,
  options?: GoToolOptions,
): Promise<Record<NodeBinary, string>> {
  return (await ensureGoTool(KUBENODE_TOOL, log, options)).bin;
}

/** The node binaries if built, without building. */
export function findNodeBinaries(options?: GoToolOptions): Record<NodeBinary, string> | undefined {
  return findGoTool(KUBENODE_TOOL, options)?.bin;
}
