import { Counter, Gauge, type Registry } from '@knet/runtime';

export interface AgentMetrics {
  connected: Gauge;
  reconnects: Counter;
  connectionFailures: Counter<'reason'>;
  channels: Gauge<'target'>;
  channelsTotal: Counter<'target'>;
  refusedChannels: Counter<'target'>;
  bytes: Counter<'target' | 'direction'>;
}

export function createAgentMetrics(registry: Registry): AgentMetrics {
  const registers = [registry];
  return {
    connected: new Gauge({
      name: 'tower_agent_connected',
      help: '1 while the agent is connected to the proxy',
      registers,
    }),
    reconnects: new Counter({
      name: 'tower_agent_reconnects_total',
      help: 'Connection attempts after the first',
      registers,
    }),
    connectionFailures: new Counter({
      name: 'tower_agent_connection_failures_total',
      help: 'Failed or lost connections, by reason',
      labelNames: ['reason'],
      registers,
    }),
    channels: new Gauge({
      name: 'tower_agent_channels',
      help: 'Open channels from the proxy',
      labelNames: ['target'],
      registers,
    }),
    channelsTotal: new Counter({
      name: 'tower_agent_channels_total',
      help: 'Channels served',
      labelNames: ['target'],
      registers,
    }),
    refusedChannels: new Counter({
      name: 'tower_agent_refused_channels_total',
      help: 'Channels refused because the target is not served',
      labelNames: ['target'],
      registers,
    }),
    bytes: new Counter({
      name: 'tower_agent_bytes_total',
      help: 'Bytes through the tunnel (up = requests to the member, down = responses)',
      labelNames: ['target', 'direction'],
      registers,
    }),
  };
}
