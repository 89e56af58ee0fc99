import { Counter, Gauge, type Registry } from '@knet/runtime';

/**
 * kilo-agent's metrics under Kilo's names (docs/monitoring.md), so Kilo's Grafana dashboard and
 * alerts keep working: `kilo_errors_total{event}`, `kilo_leader`, `kilo_nodes`, `kilo_peers`,
 * `kilo_reconciles_total`.
 */
export interface AgentMetrics {
  errors: Counter<'event'>;
  leader: Gauge;
  nodes: Gauge;
  peers: Gauge;
  reconciles: Counter;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  return {
    errors: new Counter({
      name: 'kilo_errors_total',
      help: 'Number of errors that occurred while administering the mesh.',
      labelNames: ['event'],
      registers,
    }),
    leader: new Gauge({ name: 'kilo_leader', help: 'Leadership status of the node.', registers }),
    nodes: new Gauge({ name: 'kilo_nodes', help: 'Number of nodes in the mesh.', registers }),
    peers: new Gauge({ name: 'kilo_peers', help: 'Number of peers in the mesh.', registers }),
    reconciles: new Counter({
      name: 'kilo_reconciles_total',
      help: 'Number of reconciliation attempts.',
      registers,
    }),
  };
}
