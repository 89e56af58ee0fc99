import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import type { TargetName } from '@knet/tunnel';

/** One connected agent: an authenticated SSH connection that serves some targets for one cluster. */
export interface AgentSession {
  readonly id: string;
  readonly cluster: string;
  readonly agent: string;
  readonly remoteAddress: string;
  readonly connectedAt: Date;
  /** What the agent was admitted against (Authorization.binding): the Cluster's UID and token digest. */
  readonly binding: string;
  /** Targets the agent advertised (its allow-list). */
  readonly targets: ReadonlySet<TargetName>;
  /** Channels open right now, for load sharing. */
  readonly openChannels: number;
  /** Opens a channel to `target` through the agent; rejects when the agent refuses it. */
  openChannel(target: TargetName, origin: { address: string; port: number }): Promise<Duplex>;
  close(reason: string): void;
}

/**
 * The agents connected per cluster. Several agents of one cluster share the load (the least busy
 * one that serves the target gets each new connection) and fail over (a lost agent just stops
 * being picked). Emits `change(cluster)` when a cluster gains its first or loses its last agent,
 * and `forget(cluster)` when a cluster closed by `closeCluster` has no session left: what is kept
 * per cluster (its metric series) can go.
 */
export class SessionRegistry extends EventEmitter<{ change: [cluster: string]; forget: [cluster: string] }> {
  private readonly byCluster = new Map<string, Set<AgentSession>>();
  /** Clusters closed by `closeCluster` whose sessions are still closing. */
  private readonly forgotten = new Set<string>();

  add(s: AgentSession): void {
    // A session added meanwhile (the Cluster was re-created) keeps the cluster: no `forget`.
    this.forgotten.delete(s.cluster);
    let set = this.byCluster.get(s.cluster);
    if (!set) this.byCluster.set(s.cluster, (set = new Set()));
    set.add(s);
    if (set.size === 1) this.emit('change', s.cluster);
  }

  remove(s: AgentSession): void {
    const set = this.byCluster.get(s.cluster);
    if (!set?.delete(s)) return;
    if (set.size === 0) {
      this.byCluster.delete(s.cluster);
      this.emit('change', s.cluster);
      if (this.forgotten.delete(s.cluster)) this.emit('forget', s.cluster);
    }
  }

  /** Sessions of one cluster (a copy). */
  sessions(cluster: string): AgentSession[] {
    return [...(this.byCluster.get(cluster) ?? [])];
  }

  /** Sessions of one cluster right now. */
  count(cluster: string): number {
    return this.byCluster.get(cluster)?.size ?? 0;
  }

  /** The least busy session of `cluster` that serves `target`, ties broken by age (oldest first). */
  pick(cluster: string, target: TargetName): AgentSession | undefined {
    let best: AgentSession | undefined;
    for (const s of this.byCluster.get(cluster) ?? []) {
      if (!s.targets.has(target)) continue;
      if (!best || s.openChannels < best.openChannels) best = s;
    }
    return best;
  }

  /**
   * Closes the sessions of a cluster that were admitted against another binding (the token was
   * rotated, or the Cluster was deleted and re-created under the same name). Returns how many.
   */
  closeUnbound(cluster: string, binding: string, reason: string): number {
    const stale = this.sessions(cluster).filter((s) => s.binding !== binding);
    for (const s of stale) s.close(reason);
    return stale.length;
  }

  /**
   * Closes every session of a cluster that is no longer served (deleted, or its type changed) and
   * forgets the cluster once the last of them has closed (sessions close asynchronously), or at
   * once when it has none.
   */
  closeCluster(cluster: string, reason: string): void {
    const sessions = this.sessions(cluster);
    if (sessions.length === 0) {
      this.emit('forget', cluster);
      return;
    }
    this.forgotten.add(cluster);
    for (const s of sessions) s.close(reason);
  }
}
