import type { WgInterfaceState } from '@knet/host-net';
import {
  LAST_SEEN_ANNOTATION,
  LEADER_PROBE_ANNOTATION,
  discoverNATEndpoints,
  ipOf,
  nodeAnnotations,
  translateNode,
  translatePeer,
  type KiloNode,
  type KiloPeer,
  type PeerStatus,
  type Topology,
  dnsNames,
  localNode,
  planAgent,
  type AgentPlan,
  type DesiredDatapath,
  type LocalFacts,
  type PlanOptions,
} from '@knet/kilo';
import { errorMessage, shutdownFollows, sleep, type Logger } from '@knet/runtime';
import type { MeshCluster } from './cluster';
import { updateCniConfig } from './cni';
import type { ApplyReport } from './datapath';
import type { AgentMetrics } from './metrics';
import { nextProbeState, probeTarget, type ProbeRules, type ProbeState } from './probe';

/** The datapath as the loop needs it (real: `Datapath`; tests: `Datapath` over host-net's fakes). */
export interface DatapathPort {
  readDevice(): Promise<WgInterfaceState | undefined>;
  apply(d: DesiredDatapath): Promise<ApplyReport>;
  cleanup(iface: boolean): Promise<string[]>;
}

export interface AgentOptions {
  plan: PlanOptions;
  topologyLabel: string;
  /** `--resync-period`. */
  resyncMs: number;
  /** Kilo's check-in period (30 s): how often last-seen is refreshed. */
  checkInMs: number;
  /** Coalesces bursts of Node/Peer events into one apply. */
  debounceMs: number;
  /** `--leader-probe-interval` (0 = off). */
  probeIntervalMs: number;
  probe: ProbeRules;
  /** `--cni`: the CNI config list that gets the pod CIDR (undefined: `--cni=false`). */
  cniPath?: string;
}

export interface AgentDeps {
  cluster: MeshCluster;
  datapath: DatapathPort;
  facts: LocalFacts;
  options: AgentOptions;
  /** DNS name → IP (Kilo re-resolves DNS endpoints on every apply). */
  resolve: (name: string) => Promise<string>;
  /** ICMP echo of one address, true when answered. */
  ping: (address: string) => Promise<boolean>;
  /** Unix seconds. */
  now?: () => number;
  logger: Logger;
  metrics: AgentMetrics;
  /**
   * How long a failed pass given a signal (as {@link Agent.run} gives it) waits for a shutdown
   * before it counts as an error (default `SHUTDOWN_GRACE_MS` of `@knet/runtime`).
   */
  shutdownGraceMs?: number;
}

/**
 * kilo-agent's loop, Kilo's `Mesh.Run`: every Node/Peer change (debounced), every resync period
 * and every check-in, one pass — translate Nodes and Peers (bad ones → an Event and a log line),
 * publish the local node's annotations when they differ (or last-seen is due), read the device,
 * discover NAT endpoints, plan, apply, and write Peer status. A failed pass is logged and counted
 * (`kilo_errors_total`) and retried at the next trigger; it never ends the agent.
 */
export class Agent {
  private readonly now: () => number;
  private wake: (() => void) | undefined;
  private dirty = true;
  private lastCheckIn = 0;
  private readonly reported = new Set<string>();
  private probeState: ProbeState = { failures: 0 };
  /** The reason of the last pass that had nothing to apply (logged at info once per reason). */
  private lastNotReady: string | undefined;
  /** The last plan (for /graph and /health). */
  last: AgentPlan | undefined;
  /** Passes that completed (ready or not). */
  passes = 0;
  /** The last pass's error, if it failed. */
  lastError: string | undefined;

  constructor(private readonly d: AgentDeps) {
    this.now = d.now ?? (() => Math.floor(Date.now() / 1000));
    d.cluster.onChange(() => this.trigger());
  }

  /** Asks for a pass soon (after the debounce). */
  trigger(): void {
    this.dirty = true;
    this.wake?.();
  }

  get topology(): Topology | undefined {
    return this.last?.ready ? this.last.topology : undefined;
  }

  /** Runs passes until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const o = this.d.options;
    let lastResync = 0;
    let lastProbe = 0;
    // When a check-in pass last ran (not whether it published: a missing Node or an API outage
    // must not turn the loop into a spin; Kilo retries at the next check-in period too).
    let lastCheckInPass = 0;
    while (!signal.aborted) {
      const t = Date.now();
      const resyncDue = t - lastResync >= o.resyncMs;
      const checkInDue = t - lastCheckInPass >= o.checkInMs;
      if (this.dirty || resyncDue || checkInDue) {
        this.dirty = false;
        if (resyncDue) lastResync = t;
        if (checkInDue) lastCheckInPass = t;
        await this.pass(signal);
      }
      if (o.probeIntervalMs > 0 && Date.now() - lastProbe >= o.probeIntervalMs) {
        lastProbe = Date.now();
        await this.probeRound();
      }
      // A change that came in during the pass (e.g. our own new WireGuard IP to publish): only the debounce.
      const waitMs = this.dirty
        ? o.debounceMs
        : Math.max(
            10,
            Math.min(
              o.resyncMs - (Date.now() - lastResync),
              o.checkInMs - (Date.now() - lastCheckInPass),
              o.probeIntervalMs > 0 ? o.probeIntervalMs - (Date.now() - lastProbe) : Number.POSITIVE_INFINITY,
            ),
          );
      // A shutdown that came during the pass: its abort event has fired already.
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        const abort = () => done();
        signal.addEventListener('abort', abort, { once: true });
        this.wake = () => {
          // A change: apply after the debounce, not at once (a rollout touches many Nodes).
          clearTimeout(timer);
          setTimeout(done, o.debounceMs);
        };
        function done() {
          clearTimeout(timer);
          signal.removeEventListener('abort', abort);
          resolve();
        }
      });
      this.wake = undefined;
    }
  }

  /**
   * One pass (exported for tests and `--once`-style callers). With `signal` (as {@link run} gives
   * it), a failure the shutdown caused is not reported as an error.
   */
  async pass(signal?: AbortSignal): Promise<AgentPlan | undefined> {
    const m = this.d.metrics;
    m.reconciles.inc();
    try {
      const plan = await this.passOnce();
      this.lastError = undefined;
      return plan;
    } catch (e) {
      // A pass that fails from the shutdown itself (its commands got the same signal) is no error.
      if (signal && (await shutdownFollows(signal, this.d.shutdownGraceMs))) {
        this.d.logger.debug({ err: errorMessage(e) }, 'kilo-agent: pass interrupted by shutdown');
        return undefined;
      }
      m.errors.inc({ event: 'apply' });
      this.lastError = errorMessage(e);
      this.d.logger.error(
        { err: this.lastError },
        'kilo-agent: apply failed; retrying at the next change or resync',
      );
      return undefined;
    } finally {
      this.passes++;
    }
  }

  private async passOnce(): Promise<AgentPlan> {
    const { cluster, facts, options, logger, metrics } = this.d;
    const now = this.now();
    const nodes: KiloNode[] = [];
    let observedLocal: KiloNode | undefined;
    let localAnnotations: Readonly<Record<string, string>> = {};
    for (const input of cluster.nodes()) {
      const { node, problems } = translateNode(input, options.topologyLabel);
      this.report({ kind: 'Node', name: input.name }, problems);
      if (input.name === facts.hostname) {
        observedLocal = node;
        localAnnotations = input.annotations ?? {};
      } else nodes.push(node);
    }
    const peers: KiloPeer[] = [];
    for (const resource of cluster.peers()) {
      const { peer, problems } = translatePeer(resource);
      this.report({ kind: 'Peer', name: resource.metadata?.name ?? '' }, problems);
      if (peer) peers.push(peer);
    }
    if (!observedLocal) {
      logger.warn({ node: facts.hostname }, 'kilo-agent: the local Node does not exist (check --hostname)');
    }
    const live = await this.d.datapath.readDevice();
    const discovered = live ? discoverNATEndpoints(nodes, peers, live, facts.hostname) : {};
    const local = localNode(
      observedLocal ? { ...observedLocal, discoveredEndpoints: discovered } : undefined,
      facts,
      now,
    );
    if (observedLocal) await this.publish(local, localAnnotations, now);
    if (options.cniPath) await updateCniConfig(options.cniPath, local.subnet, logger);
    const resolved = new Map<string, string>();
    for (const name of dnsNames([...nodes, local], peers)) {
      resolved.set(name, await this.d.resolve(name)); // one failure fails the pass, as in Kilo
    }
    const plan = planAgent({
      nodes: observedLocal ? [...nodes, local] : nodes,
      peers,
      hostname: facts.hostname,
      privateKey: facts.privateKey,
      ...privateInterfaceOf(local, facts),
      discovered,
      resolved,
      now,
      options: options.plan,
    });
    metrics.nodes.set(plan.readyNodes);
    metrics.peers.set(plan.readyPeers);
    this.last = plan;
    if (!plan.ready) {
      // Each new reason once at info (a node without a pod CIDR stays so; at start the agent's own
      // annotations are missing for a pass), repeats at debug.
      const level = plan.reason === this.lastNotReady ? 'debug' : 'info';
      this.lastNotReady = plan.reason;
      logger[level]({ reason: plan.reason }, 'kilo-agent: nothing to apply yet');
      return plan;
    }
    this.lastNotReady = undefined;
    metrics.leader.set(plan.datapath.leader ? 1 : 0);
    const report = await this.d.datapath.apply(plan.datapath);
    if (report.repaired.length > 0) {
      logger.info(
        { repaired: report.repaired, wireguard: report.wireguardChanged },
        'kilo-agent: datapath repaired',
      );
    }
    if (facts.wireGuardIP !== plan.wireGuardIP) {
      if (plan.wireGuardIP === undefined) delete facts.wireGuardIP;
      else facts.wireGuardIP = plan.wireGuardIP;
      this.trigger(); // publish the new wireguard-ip
    }
    await this.writePeerStatus(plan.topology);
    return plan;
  }

  /** Kilo's handleLocal + checkIn: write kg's annotations when they differ or last-seen is due. */
  private async publish(
    local: KiloNode,
    current: Readonly<Record<string, string>>,
    now: number,
  ): Promise<void> {
    const want = nodeAnnotations(local, { leader: local.wireGuardIP !== undefined });
    const patch: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(want)) if (current[k] !== v) patch[k] = v;
    if (!local.leaderProbe && current[LEADER_PROBE_ANNOTATION] !== undefined)
      patch[LEADER_PROBE_ANNOTATION] = null;
    const lastSeenKey = LAST_SEEN_ANNOTATION;
    const checkInDue = now - this.lastCheckIn >= this.d.options.checkInMs / 1000;
    const onlyLastSeen = Object.keys(patch).every((k) => k === lastSeenKey);
    if (Object.keys(patch).length === 0 || (onlyLastSeen && !checkInDue)) return;
    try {
      await this.d.cluster.annotateNode(local.name, patch);
      this.lastCheckIn = now;
    } catch (e) {
      this.d.metrics.errors.inc({ event: 'checkin' });
      this.d.logger.error({ err: errorMessage(e) }, 'kilo-agent: failed to publish the local node');
    }
  }

  /** knet: Peer status (latest handshake, rx/tx) as this node's device sees it, by one observer. */
  private async writePeerStatus(t: Topology): Promise<void> {
    if (!t.leader || t.peers.length === 0) return;
    // One observer per mesh so leaders do not overwrite each other: the first segment's leader.
    const first = t.segments[0];
    if (!first || first.hostnames[first.leader] !== t.hostname) return;
    const live = await this.d.datapath.readDevice();
    if (!live) return;
    for (const peer of t.peers) {
      const state = live.peers.find((p) => p.publicKey === peer.publicKey);
      if (!state) continue;
      const status: PeerStatus = {
        ...(state.latestHandshake ? { latestHandshake: state.latestHandshake.toISOString() } : {}),
        receiveBytes: state.transferRx,
        transmitBytes: state.transferTx,
        ...(state.endpoint ? { endpoint: state.endpoint } : {}),
        observedBy: t.hostname,
      };
      const key = `${peer.name}\0${JSON.stringify(status)}`;
      if (this.reported.has(key)) continue;
      try {
        await this.d.cluster.setPeerStatus(peer.name, status);
        for (const k of [...this.reported]) if (k.startsWith(`${peer.name}\0`)) this.reported.delete(k);
        this.reported.add(key);
      } catch (e) {
        this.d.metrics.errors.inc({ event: 'peer-status' });
        this.d.logger.warn(
          { peer: peer.name, err: errorMessage(e) },
          'kilo-agent: failed to write Peer status',
        );
      }
    }
  }

  /** One probe round (see probe.ts); publishes the verdict when it changes. */
  async probeRound(): Promise<void> {
    const t = this.topology;
    const target = t ? probeTarget(t) : undefined;
    let ok: boolean | undefined;
    if (target) {
      const answers = await Promise.all(target.addresses.map((a) => this.d.ping(a).catch(() => false)));
      ok = answers.some(Boolean);
    }
    const next = nextProbeState(this.probeState, target, ok, this.now(), this.d.options.probe);
    const before = JSON.stringify(this.probeState.verdict ?? null);
    this.probeState = next;
    if (JSON.stringify(next.verdict ?? null) === before) return;
    if (next.verdict) this.d.facts.leaderProbe = next.verdict;
    else delete this.d.facts.leaderProbe;
    this.d.logger.info({ verdict: next.verdict ?? null }, 'kilo-agent: leader probe verdict changed');
    this.trigger();
  }

  /** Bad annotations or Peers: one Event and one log line per distinct problem, never a crash. */
  private report(about: { kind: 'Node' | 'Peer'; name: string }, problems: readonly string[]): void {
    for (const problem of problems) {
      const key = `${about.kind}\0${about.name}\0${problem}`;
      if (this.reported.has(key)) continue;
      this.reported.add(key);
      this.d.logger.warn(
        { [about.kind.toLowerCase()]: about.name, problem },
        'kilo-agent: ignoring an invalid value',
      );
      void this.d.cluster.event(
        about,
        'Warning',
        about.kind === 'Node' ? 'InvalidAnnotation' : 'InvalidPeer',
        problem,
      );
    }
  }

  /** `--clean-up`: datapath, then the annotations kg owns (10 s limit, as Kilo). */
  async cleanup(iface: boolean, cleanupKeys: readonly string[]): Promise<string[]> {
    const errors = await this.d.datapath.cleanup(iface);
    const patch: Record<string, null> = {};
    for (const k of [...cleanupKeys, LEADER_PROBE_ANNOTATION]) patch[k] = null;
    const annotate = this.d.cluster.annotateNode(this.d.facts.hostname, patch);
    const stop = new AbortController();
    const limit = sleep(10_000, stop.signal).then((slept) => {
      if (slept) throw new Error('removing the node annotations took over 10 s');
    });
    try {
      await Promise.race([annotate, limit]);
    } catch (e) {
      errors.push(`annotations: ${errorMessage(e)}`);
    } finally {
      stop.abort();
    }
    return errors;
  }
}

/** The interface of the node's effective internal IP (forced or detected), for in-location routes. */
function privateInterfaceOf(local: KiloNode, facts: LocalFacts): { privateInterface?: string } {
  if (!local.internalIP) return {};
  const dev = facts.addressDevices?.[ipOf(local.internalIP)] ?? facts.privateInterface;
  return dev ? { privateInterface: dev } : {};
}
