// Only main.ts's kubeconfig branch imports this module, and only when --kubeconfig is given: it
// pulls in client-node, which an agent inside its cluster (the usual case) does not need. Loading
// it costs the agent ~10 MiB of RSS.
import type { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '@knet/k8s';
import type { Upstream } from './upstream';

/** The upstream of a kubeconfig file (its current context). */
export function kubeconfigFileUpstream(path: string): Upstream {
  return kubeconfigUpstream(loadKubeConfig({ kubeconfig: path }).kc);
}

/** Credentials of a kubeconfig (client certificate, token, token file, exec plugin…), as client-node applies them. */
function kubeconfigUpstream(kc: KubeConfig): Upstream {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  return {
    server: new URL(cluster.server),
    credentials: async () => {
      const o: {
        ca?: Buffer;
        cert?: Buffer;
        key?: Buffer;
        rejectUnauthorized?: boolean;
        headers?: Record<string, string>;
      } = { headers: {} };
      await kc.applyToHTTPSOptions(o as never);
      return {
        ...(o.ca ? { ca: o.ca } : {}),
        ...(o.cert ? { cert: o.cert } : {}),
        ...(o.key ? { key: o.key } : {}),
        ...(o.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
        ...(o.headers?.['Authorization'] ? { authorization: o.headers['Authorization'] } : {}),
      };
    },
  };
}
