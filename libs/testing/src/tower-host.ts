import { clusterCrdPath } from '@knet/cluster-crd';
import { ControlPlane, type ControlPlaneOptions } from './controlplane';
import { workspaceRoot } from './workspace';

/** Where tower-proxy runs and keeps its Secrets, ConfigMap, Lease and mc-<cluster> Services. */
export const TOWER_NAMESPACE = 'kubesphere-system';

/**
 * A host cluster for tower-proxy (e2e/tower, the tower bench, tower-proxy's own tests): a control
 * plane with KubeSphere's Cluster CRD established and the proxy's namespace. Stopped again when
 * any of that fails.
 */
export async function startTowerHost(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const host = await ControlPlane.start(options);
  try {
    await host.kubectlOk(['apply', '-f', clusterCrdPath(workspaceRoot())]);
    await host.kubectlOk([
      'wait',
      '--for=condition=Established',
      'crd/clusters.cluster.kubesphere.io',
      '--timeout=30s',
    ]);
    await host.kubectlOk(['create', 'namespace', TOWER_NAMESPACE]);
  } catch (e) {
    await host.stop();
    throw e;
  }
  return host;
}
