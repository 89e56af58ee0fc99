import type { V1ObjectMeta } from '@kubernetes/client-node';
import { join } from 'node:path';

/** KubeSphere's Cluster (cluster.kubesphere.io/v1alpha1), the fields tower reads and writes. */
export interface Cluster {
  apiVersion: 'cluster.kubesphere.io/v1alpha1';
  kind: 'Cluster';
  /** Standard object metadata, with the name always set. */
  metadata: V1ObjectMeta & { name: string };
  spec?: ClusterSpec;
  status?: ClusterStatus;
}

export interface ClusterSpec {
  joinFederation?: boolean;
  enable?: boolean;
  provider?: string;
  externalKubeAPIEnabled?: boolean;
  connection?: Connection;
}

export interface Connection {
  type?: 'direct' | 'proxy';
  kubesphereAPIEndpoint?: string;
  kubernetesAPIEndpoint?: string;
  externalKubernetesAPIEndpoint?: string;
  /** base64 of the kubeconfig YAML (a Go []byte in KubeSphere). */
  kubeconfig?: string;
  token?: string;
  kubernetesAPIServerPort?: number;
  kubesphereAPIServerPort?: number;
}

export interface ClusterCondition {
  type: ClusterConditionType | string;
  status: 'True' | 'False' | 'Unknown';
  lastUpdateTime?: string;
  lastTransitionTime?: string;
  reason?: string;
  message?: string;
}

export type ClusterConditionType =
  'Initialized' | 'AgentAvailable' | 'ExternalAccessReady' | 'Ready' | 'Federated';

export interface ClusterStatus {
  conditions?: ClusterCondition[];
  kubernetesVersion?: string;
  kubeSphereVersion?: string;
  nodeCount?: number;
  region?: string;
  uid?: string;
}

export const CLUSTER_API_VERSION = 'cluster.kubesphere.io/v1alpha1';
export const CLUSTERS_PATH = '/apis/cluster.kubesphere.io/v1alpha1/clusters';
/** KubeSphere's annotation key, misspelling included: a JSON map that becomes the LB Service's annotations. */
export const EXTERNAL_LB_ANNOTATIONS = 'tower.kubesphere.io/external-lb-service-annoations';

/** True when tower-proxy must serve this cluster. */
export function isProxyCluster(c: Cluster): boolean {
  return c.spec?.connection?.type === 'proxy' && c.spec?.joinFederation === true;
}

/** The CRD manifest shipped with the tower-proxy chart. */
export function clusterCrdPath(workspaceRoot: string): string {
  return join(workspaceRoot, 'charts/tower-proxy/crds/cluster.kubesphere.io_clusters.yaml');
}
