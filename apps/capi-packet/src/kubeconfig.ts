/**
 * `capi-packet kubeconfig <cluster>`: the workload cluster's admin kubeconfig from the management
 * cluster, exactly where `clusterctl get kubeconfig` reads it — the Secret `<cluster>-kubeconfig`
 * (written by KubeadmControlPlane, or by this provider's bootstrap), key `value`.
 */
import type { KubeConfig } from '@kubernetes/client-node';

/** The one read it needs (the real one: @knet/k8s `Secrets`; a Map in tests). */
export interface SecretReader {
  /** The Secret's data (base64 values), or undefined when there is no such Secret. */
  get(namespace: string, name: string): Promise<{ data?: Record<string, string> } | undefined>;
}

export const kubeconfigSecretName = (cluster: string): string => `${cluster}-kubeconfig`;
/** The key CAPI stores a kubeconfig under (secret.KubeconfigDataName). */
export const KUBECONFIG_KEY = 'value';

export type KubeconfigErrorKind = 'no-secret' | 'no-key';

/** Why there is no kubeconfig to print; `kind` for callers, the message for people. */
export class KubeconfigError extends Error {
  constructor(
    readonly kind: KubeconfigErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'KubeconfigError';
  }
}

export async function readClusterKubeconfig(
  secrets: SecretReader,
  namespace: string,
  cluster: string,
): Promise<string> {
  const name = kubeconfigSecretName(cluster);
  const secret = await secrets.get(namespace, name);
  if (!secret) {
    throw new KubeconfigError(
      'no-secret',
      `no Secret ${namespace}/${name}: Cluster ${cluster} is not in namespace ${namespace} (kubectl get clusters -A), or its control plane is not initialized yet`,
    );
  }
  const value = secret.data?.[KUBECONFIG_KEY];
  if (!value) {
    throw new KubeconfigError(
      'no-key',
      `Secret ${namespace}/${name} has no key "${KUBECONFIG_KEY}": it is not a Cluster API kubeconfig Secret`,
    );
  }
  return Buffer.from(value, 'base64').toString('utf8');
}

/** The namespace of the kubeconfig's current context, else `default` (as clusterctl picks it). */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
}
