import { Counter, Gauge, type Registry } from '@knet/runtime';

export interface ProxyMetrics {
  sessions: Gauge<'cluster'>;
  channels: Gauge<'cluster' | 'target'>;
  channelsTotal: Counter<'cluster' | 'target'>;
  channelFailures: Counter<'cluster' | 'target'>;
  bytes: Counter<'cluster' | 'target' | 'direction'>;
  handshakeFailures: Counter<'reason'>;
  preauthConnections: Gauge;
  listenerRefusals: Counter<'cluster' | 'reason'>;
  reconciles: Counter<'result'>;
}

export function createProxyMetrics(registry: Registry): ProxyMetrics {
  const registers = [registry];
  return {
    sessions: new Gauge({
      name: 'tower_proxy_agent_sessions',
      help: 'Connected agent sessions',
      labelNames: ['cluster'],
      registers,
    }),
    channels: new Gauge({
      name: 'tower_proxy_channels',
      help: 'Open channels through agents',
      labelNames: ['cluster', 'target'],
      registers,
    }),
    channelsTotal: new Counter({
      name: 'tower_proxy_channels_total',
      help: 'Channels opened through agents',
      labelNames: ['cluster', 'target'],
      registers,
    }),
    channelFailures: new Counter({
      name: 'tower_proxy_channel_failures_total',
      help: 'Channels an agent refused or could not open',
      labelNames: ['cluster', 'target'],
      registers,
    }),
    bytes: new Counter({
      name: 'tower_proxy_bytes_total',
      help: 'Bytes through the tunnel (to_agent = requests, from_agent = responses)',
      labelNames: ['cluster', 'target', 'direction'],
      registers,
    }),
    handshakeFailures: new Counter({
      name: 'tower_proxy_handshake_failures_total',
      help: 'Agent connections refused, by reason',
      labelNames: ['reason'],
      registers,
    }),
    preauthConnections: new Gauge({
      name: 'tower_proxy_preauth_connections',
      help: 'Connections on the agent port whose hello is not accepted yet (capped by --max-handshakes)',
      registers,
    }),
    listenerRefusals: new Counter({
      name: 'tower_proxy_listener_refusals_total',
      help: 'Client connections refused by per-cluster listeners, by reason',
      labelNames: ['cluster', 'reason'],
      registers,
    }),
    reconciles: new Counter({
      name: 'tower_proxy_reconciles_total',
      help: 'Cluster reconciles, by result',
      labelNames: ['result'],
      registers,
    }),
  };
}
