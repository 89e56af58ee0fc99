import { Counter, Gauge, type Registry } from '@knet/runtime';
import { TARGET_NAMES, type TargetName } from '@knet/tunnel';

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

/** What one agent session counts in its cluster's series. */
export interface SessionSeries {
  sessionUp(): void;
  sessionDown(): void;
  channelOpened(target: TargetName): void;
  channelClosed(target: TargetName): void;
  channelFailed(target: TargetName): void;
}

/**
 * The per-cluster series of agent sessions and channels (`tower_proxy_agent_sessions`,
 * `tower_proxy_channels`, `tower_proxy_channels_total`, `tower_proxy_channel_failures_total`).
 * Sessions count through the generation of their cluster current when they registered;
 * `forget(cluster)` (the Cluster is no longer served and its last session closed) drops the series
 * and ends that generation, so what its sessions still count (a channel that closes after its
 * session) is skipped instead of re-creating a series at -1. The next session of that name starts
 * a new generation with fresh series.
 */
export class AgentSeries {
  private readonly generations = new Map<string, { live: boolean }>();

  constructor(private readonly m: ProxyMetrics) {}

  /** The series a session of `cluster` registering now counts in. */
  session(cluster: string): SessionSeries {
    let gen = this.generations.get(cluster);
    if (!gen) this.generations.set(cluster, (gen = { live: true }));
    const g = gen;
    const when = (fn: () => void) => () => {
      if (g.live) fn();
    };
    const per = (fn: (labels: { cluster: string; target: TargetName }) => void) => (target: TargetName) => {
      if (g.live) fn({ cluster, target });
    };
    return {
      sessionUp: when(() => this.m.sessions.inc({ cluster })),
      sessionDown: when(() => this.m.sessions.dec({ cluster })),
      channelOpened: per((l) => {
        this.m.channels.inc(l);
        this.m.channelsTotal.inc(l);
      }),
      channelClosed: per((l) => this.m.channels.dec(l)),
      channelFailed: per((l) => this.m.channelFailures.inc(l)),
    };
  }

  /** Drops the cluster's series; its sessions so far count no more. */
  forget(cluster: string): void {
    const gen = this.generations.get(cluster);
    if (gen) gen.live = false;
    this.generations.delete(cluster);
    this.m.sessions.remove({ cluster });
    for (const target of TARGET_NAMES) {
      this.m.channels.remove({ cluster, target });
      this.m.channelsTotal.remove({ cluster, target });
      this.m.channelFailures.remove({ cluster, target });
    }
  }
}
