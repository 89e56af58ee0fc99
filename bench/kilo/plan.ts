/**
 * The planner part of the kilo bench: one agent pass's pure work for a large cluster, in-process.
 *
 * 1,000 ready nodes in 100 locations (10 each) and 100 Peers, translated as kilo-agent holds them.
 * One pass is kilo-agent's own `planAgent` (@knet/kilo) for one node: the ready filter,
 * `newTopology`, `planRoutes`, `planIptables`, `topologyConf` → `toWgConfig`, `toRuleSets`.
 * Runs in its own process from an esbuild bundle (plan-worker.ts; tsx cannot load @knet/kilo's
 * ESM-only dependencies), with `--expose-gc`, so the heap figures are this planner's alone.
 * Nothing touches the network, so the addresses are ordinary in-memory values: pod CIDRs
 * 10.64.0.0/14 (/24 each), internal IPs 172.16.0.0/16, endpoints 100.64.0.0/16 (public to Kilo's
 * `isPublic`, so each location's first node by name leads), Peers 10.96.0.0/16.
 */
import { randomBytes } from 'node:crypto';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import {
  DEFAULT_SUBNET,
  planAgent,
  type DesiredDatapath,
  type KiloNode,
  type KiloPeer,
  type Topology,
} from '@knet/kilo';

export interface PlanScale {
  locations: number;
  nodesPerLocation: number;
  peers: number;
}

export interface PlanResult {
  /** ms of each pass for a location leader (the most work: every segment and Peer is a WireGuard peer), ascending. */
  leaderMs: number[];
  /** ms of each pass for a member (non-leader), ascending. */
  memberMs: number[];
  /** MiB the kept result of one leader pass holds on the heap (after a full GC), as the agent keeps its last plan. */
  heapMiB: number;
  /** MiB of heap the translated inputs hold (1,000 nodes, 100 Peers). */
  inputsMiB: number;
  /** Peak RSS of the whole planner process (node itself, inputs, every pass), MiB. */
  maxRssMiB: number;
  /** Whether a forced GC was available (else heap figures are heapUsed deltas without GC). */
  gc: boolean;
  /** What one leader pass produced (sanity: the sizes of the plan). */
  shape: { segments: number; wgPeers: number; routes: number; rules: number; iptables: number };
}

/** A WireGuard-shaped key: 32 random bytes, base64 (the planner only compares and copies keys). */
function key(): string {
  return randomBytes(32).toString('base64');
}

/** The cluster kilo-agent would see: every node ready and checked in at `now`. */
export function bigCluster(s: PlanScale, now: number): { nodes: KiloNode[]; peers: KiloPeer[] } {
  const nodes: KiloNode[] = [];
  for (let l = 0; l < s.locations; l++) {
    for (let m = 0; m < s.nodesPerLocation; m++) {
      const i = l * s.nodesPerLocation + m;
      const name = `loc-${String(l).padStart(3, '0')}-node-${String(m).padStart(2, '0')}`;
      nodes.push({
        name,
        endpoint: { ip: `100.64.${l}.${m + 10}`, port: 51820 },
        key: key(),
        noInternalIP: false,
        internalIP: `172.16.${l}.${m + 10}/24`,
        lastSeen: now,
        leader: false,
        location: `loc-${l}`,
        persistentKeepalive: 0,
        subnet: `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`,
        // Steady state: each location's leader (its first node by name) published its WireGuard IP.
        ...(m === 0 ? { wireGuardIP: `10.4.${Math.floor((l + 1) / 256)}.${(l + 1) % 256}/16` } : {}),
        discoveredEndpoints: {},
        allowedLocationIPs: [],
        granularity: 'location',
      });
    }
  }
  const peers: KiloPeer[] = [];
  for (let p = 0; p < s.peers; p++) {
    peers.push({
      name: `peer-${String(p).padStart(3, '0')}`,
      allowedIPs: [`10.96.${p}.0/24`],
      publicKey: key(),
      persistentKeepalive: 10,
    });
  }
  return { nodes, peers };
}

/** What one pass produces: the agent's desired state for one node. */
export interface PassResult {
  topology: Topology;
  datapath: DesiredDatapath;
}

const PRIVATE_KEY = key();

/**
 * One pass for `hostname`: kilo-agent's own `planAgent` (@knet/kilo) with the agent's defaults
 * (location granularity, `--encapsulate=always`, `--cni`, `--local`, stable WireGuard IPs).
 */
export function planPass(
  nodes: readonly KiloNode[],
  peers: readonly KiloPeer[],
  hostname: string,
  now: number,
): PassResult {
  const plan = planAgent({
    nodes,
    peers,
    hostname,
    privateKey: PRIVATE_KEY,
    privateInterface: 'eth0',
    discovered: {},
    resolved: new Map(),
    now,
    options: {
      granularity: 'location',
      subnet: DEFAULT_SUBNET,
      serviceCIDRs: [],
      stableWireGuardIPs: true,
      strategy: 'always',
      compatibility: '',
      local: true,
      cni: true,
      iptablesForwardRules: false,
      iface: 'kilo0',
      mtu: 1420,
    },
  });
  if (!plan.ready) throw new Error(`plan bench: ${plan.reason}`);
  return { topology: plan.topology, datapath: plan.datapath };
}

/** `global.gc`, exposed at run time when node was not started with --expose-gc. */
function gcFunction(): (() => void) | undefined {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  try {
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    return typeof fn === 'function' ? (fn as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** Progress on stderr (the worker's stdout carries its one JSON result). */
function log(msg: string): void {
  process.stderr.write(`[plan-worker] ${msg}\n`);
}

function heapMiB(gc: (() => void) | undefined): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

function timeRuns(runs: number, fn: () => unknown): number[] {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    out.push(performance.now() - t);
  }
  return out.sort((a, b) => a - b);
}

/** Warm-up, then the median of `runs` passes for a leader and for a member; heap of inputs and result. */
export function runPlanBench(s: PlanScale, runs: number, warmup: number): PlanResult {
  const gc = gcFunction();
  if (!gc) log('no forced GC available; heap figures are heapUsed deltas without a GC');
  const now = Math.floor(Date.now() / 1000);
  const h0 = heapMiB(gc);
  const { nodes, peers } = bigCluster(s, now);
  const h1 = heapMiB(gc);
  const leader = nodes[0]?.name ?? '';
  const member = nodes[1]?.name ?? '';
  log(`${nodes.length} nodes in ${s.locations} locations, ${peers.length} Peers; ${warmup} warm-up passes`);
  for (let i = 0; i < warmup; i++) {
    planPass(nodes, peers, leader, now);
    planPass(nodes, peers, member, now);
  }
  const leaderTimes = timeRuns(runs, () => planPass(nodes, peers, leader, now));
  const memberTimes = timeRuns(runs, () => planPass(nodes, peers, member, now));
  const h2 = heapMiB(gc);
  const kept = planPass(nodes, peers, leader, now);
  const h3 = heapMiB(gc);
  const shape = {
    segments: kept.topology.segments.length,
    wgPeers: kept.datapath.wireguard.peers.length,
    routes: kept.datapath.routes.main.length + kept.datapath.routes.kilo.length,
    rules: kept.datapath.rules.length,
    iptables: kept.datapath.iptables.inet.reduce(
      (a, set) => a + Object.values(set.chains).reduce((b, c) => b + c.length, 0) + (set.jumps?.length ?? 0),
      0,
    ),
  };
  if (!kept.topology.leader) throw new Error(`plan bench: ${leader} should lead its location`);
  return {
    leaderMs: leaderTimes,
    memberMs: memberTimes,
    heapMiB: h3 - h2,
    inputsMiB: h1 - h0,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    gc: gc !== undefined,
    shape,
  };
}
