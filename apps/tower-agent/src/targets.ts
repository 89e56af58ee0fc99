import { connect as netConnect } from 'node:net';
import { splice, type ChannelHandler, type TargetName } from '@knet/tunnel';
import type { AgentMetrics } from './metrics';
import type { ApiServerProxy } from './upstream';

/**
 * What serves each target of this agent: `kubernetes` through the agent's API server proxy (its
 * own credentials), `kubesphere` (when given) as a byte pipe to ks-apiserver.
 */
export function agentTargets(o: {
  apiServer: ApiServerProxy;
  kubesphere?: { host: string; port: number };
  metrics: AgentMetrics;
}): Partial<Record<TargetName, ChannelHandler>> {
  const { kubesphere, metrics } = o;
  return {
    kubernetes: (ch) => o.apiServer.handle(ch),
    ...(kubesphere
      ? {
          kubesphere: (ch) => {
            const sock = netConnect({ host: kubesphere.host, port: kubesphere.port, noDelay: true });
            const up = metrics.bytes.labels({ target: 'kubesphere', direction: 'up' });
            const down = metrics.bytes.labels({ target: 'kubesphere', direction: 'down' });
            void splice(ch, sock, (dir, n) => (dir === 'a-to-b' ? up : down).inc(n));
          },
        }
      : {}),
  };
}
