import {
  AddressSet,
  CommandError,
  FdbSet,
  IptablesReconciler,
  RouteTable,
  RuleSet,
  VxlanDevice,
  describeDrift,
  summarizeDrift,
  type BridgeFdb,
  type IpRoute,
  type IptablesBackend,
  type IptablesRuleSet,
  type IptablesTable,
  type Logger,
  type Pinger,
  type Route,
  type RouteSpec,
  type SetResult,
  type Sysctl,
  type VxlanOptions,
} from '@knet/host-net';
import { CHAIN_PREFIX, ROUTE_PROTOCOLS, type GatewayPlan, type RouteProtocol } from './gateway-plan';

/**
 * Idempotent steps shared by gateway-init, client-init and client-sidecar, on @knet/host-net's
 * desired-state drivers: each compares the live state first and only then changes it, returning
 * what it repaired, one line each — so a second run of the same plan returns no changes.
 */
export type Changes = string[];

/** The host-net wrappers the steps need (`createHostNet(runner)` or `createFakeHostNet()`). */
export interface PodNet {
  ip: IpRoute;
  fdb: BridgeFdb;
  sysctl: Sysctl;
  iptables: IptablesBackend;
  ip6tables: IptablesBackend;
  ping: Pinger;
}

/** What a driver's `set` repaired, one line per drift item. */
export const repaired = (result: SetResult): Changes => result.drift.map(describeDrift);

export async function ensureSysctl(net: PodNet, key: string, value: string): Promise<Changes> {
  if ((await net.sysctl.get(key)).trim() === value) return [];
  await net.sysctl.set(key, value);
  return [`sysctl ${key}=${value}`];
}

/**
 * The VXLAN device as specified and up; one of another kind, VNI, port, underlay or learning mode
 * is rebuilt (its addresses, routes and FDB entries with it: set those after this).
 */
export async function setVxlan(
  net: PodNet,
  spec: { name: string } & VxlanOptions,
  logger?: Logger,
): Promise<Changes> {
  const { name, ...config } = spec;
  return repaired(await new VxlanDevice(net.ip, { name, ...(logger ? { logger } : {}) }).set(config));
}

/** `cidr` is the only IPv4 address of `dev` (others are removed). */
export async function setOnlyAddress(net: PodNet, dev: string, cidr: string): Promise<Changes> {
  return repaired(await new AddressSet(net.ip, { dev, family: 'inet' }).set([cidr]));
}

/**
 * Our routes of the main table with `protocol` are exactly `routes` (each of our protocols is one
 * concern: see ROUTE_PROTOCOLS); routes of other protocols are never touched.
 */
export async function setRoutes(
  net: PodNet,
  protocol: RouteProtocol,
  routes: readonly RouteSpec[],
  logger?: Logger,
): Promise<Changes> {
  const families = protocol === ROUTE_PROTOCOLS.podNetwork ? undefined : (['inet'] as const);
  const table = new RouteTable(net.ip, {
    table: 'main',
    protocol,
    ...(families ? { families } : {}),
    ...(logger ? { logger } : {}),
  });
  return repaired(await table.set(routes));
}

/** Deletes every default route of a family, except those through `keepDev` (our overlay's). */
export async function deleteDefaultRoutes(
  net: PodNet,
  family: 'inet' | 'inet6',
  keepDev?: string,
): Promise<Changes> {
  const changes: Changes = [];
  for (const r of await net.ip.listRoutes({ family })) {
    if (r.dst !== 'default' || (keepDev !== undefined && r.dev === keepDev)) continue;
    const spec: RouteSpec = { dst: 'default', family };
    if (r.gateway) spec.via = r.gateway;
    if (r.dev) spec.dev = r.dev;
    if (r.metric !== undefined) spec.metric = r.metric;
    try {
      await net.ip.deleteRoute(spec);
      changes.push(
        `deleted ${family === 'inet6' ? 'IPv6 ' : ''}default route${r.gateway ? ` via ${r.gateway}` : ''}`,
      );
    } catch (e) {
      if (!(e instanceof CommandError && e.kind === 'not-found')) throw e;
    }
  }
  return changes;
}

/** Our routes (any of ROUTE_PROTOCOLS), e.g. to find the pod gateway a client kept. */
export async function ourRoutes(net: PodNet, family: 'inet' | 'inet6' = 'inet'): Promise<Route[]> {
  const ours = new Set<string>(Object.values(ROUTE_PROTOCOLS));
  return (await net.ip.listRoutes({ family })).filter(
    (r) => r.protocol !== undefined && ours.has(r.protocol),
  );
}

/**
 * The overlay device's only peer is `gatewayIp` (the gateway pod): its all-zeros entry is there and
 * every entry towards another VTEP (an old gateway pod) is removed. The device's neighbour entries
 * are flushed too, on every (re)connection: they may hold the MAC of a gateway pod that is gone —
 * one re-created elsewhere, or with its old pod IP (its vxlan0 has a new MAC all the same) — and
 * frames to it never reach the new one (ARP would only notice after up to ~50 s).
 */
export async function setOnlyFloodEntry(net: PodNet, dev: string, gatewayIp: string): Promise<Changes> {
  const changes = repaired(await new FdbSet(net.fdb, { dev }).set([{ dst: gatewayIp }]));
  for (const n of await net.ip.listNeighbours({ dev })) {
    try {
      await net.ip.deleteNeighbour({ dst: n.dst, dev });
    } catch (err) {
      if (!(err instanceof CommandError && err.kind === 'not-found')) throw err;
    }
    changes.push(`neighbour ${n.dst} on ${dev} forgotten`);
  }
  return changes;
}

/**
 * Whether this kernel has IPv6 at all: a node booted with `ipv6.disable=1` has no `net.ipv6`
 * sysctls, and ip6tables fails there. (With `disable_ipv6=1` IPv6 exists and can be turned back
 * on, so the IPv6 rules are still applied.)
 */
export function ipv6Available(net: Pick<PodNet, 'sysctl'>): Promise<boolean> {
  // Fixed at boot: asked once per sysctl driver (gateway-sidecar re-applies the rules every few
  // seconds). A failure other than "no such key" is not remembered.
  let known = ipv6Known.get(net.sysctl);
  if (!known) {
    known = net.sysctl.get('net.ipv6.conf.all.disable_ipv6').then(
      () => true,
      (err: unknown) => {
        if (err instanceof CommandError && err.kind === 'not-found') return false;
        ipv6Known.delete(net.sysctl);
        throw err;
      },
    );
    ipv6Known.set(net.sysctl, known);
  }
  return known;
}
const ipv6Known = new WeakMap<Sysctl, Promise<boolean>>();
/** Drivers whose kernel's missing IPv6 was logged already (once is enough). */
const ipv6Logged = new WeakSet<Sysctl>();

/**
 * {@link ensureIptables} for ip6tables, skipped on a kernel without IPv6 (no IPv6 packet can leak
 * where there is no IPv6), which is logged once.
 */
export async function ensureIp6tables(
  net: Pick<PodNet, 'sysctl' | 'ip6tables'>,
  desired: readonly IptablesRuleSet[],
  tables: readonly IptablesTable[],
  logger?: Logger,
): Promise<Changes> {
  if (!(await ipv6Available(net))) {
    if (!ipv6Logged.has(net.sysctl)) {
      ipv6Logged.add(net.sysctl);
      logger?.info(
        { tables },
        'IPv6 is disabled in this kernel (no net.ipv6 sysctls, ipv6.disable=1): no ip6tables rules needed, none applied',
      );
    }
    return [];
  }
  return ensureIptables(net.ip6tables, desired, tables, logger);
}

/**
 * The kernel's connected routes of the main table (IPv4 and IPv6; `proto kernel`, no gateway):
 * the prefixes of the pod's own addresses, with their device.
 */
export async function connectedRoutes(net: Pick<PodNet, 'ip'>): Promise<{ dst: string; dev: string }[]> {
  const out: { dst: string; dev: string }[] = [];
  for (const family of ['inet', 'inet6'] as const) {
    for (const r of await net.ip.listRoutes({ family })) {
      if (r.protocol !== 'kernel' || r.gateway || !r.dev || r.dst === 'default' || r.type !== 'unicast')
        continue;
      out.push({ dst: r.dst, dev: r.dev });
    }
  }
  return out;
}

/**
 * Reconciles our chains in every table we ever use, so chains of an earlier configuration (a port
 * forward removed from nat.conf, the kill switch turned off) are removed too.
 */
export async function ensureIptables(
  backend: IptablesBackend,
  desired: readonly IptablesRuleSet[],
  tables: readonly IptablesTable[],
  logger?: Logger,
): Promise<Changes> {
  const sets = tables.map((table) => desired.find((d) => d.table === table) ?? { table, chains: {} });
  const rec = new IptablesReconciler(backend, sets, {
    ownedPrefix: CHAIN_PREFIX,
    ...(logger ? { logger } : {}),
  });
  const result = await rec.reconcile();
  const binary = backend.family === 'inet6' ? 'ip6tables' : 'iptables';
  if (result.remaining.length > 0) {
    throw new Error(`${binary} rules did not converge: ${result.remaining.map((d) => d.kind).join(', ')}`);
  }
  return result.changed ? [`${binary}: ${summarizeDrift(result.drift)}`] : [];
}

/** The built-in chains whose policy the kill switch sets to DROP. */
export const KILL_SWITCH_CHAINS = ['FORWARD', 'OUTPUT'] as const;

/**
 * FORWARD and OUTPUT of the filter table have the DROP policy. The kill switch itself is the DROP
 * at the end of our own chains; the policy is its second line: `iptables -F` (a VPN container's
 * up/down script, `wg-quick`'s PostDown) removes our jumps but keeps the policies, so the gateway
 * stays closed until gateway-sidecar restores them (within one --resync-interval). With our jumps
 * in place the policy is never reached: our chains accept what the gateway needs and drop the rest.
 */
export async function ensureDropPolicies(backend: IptablesBackend, logger?: Logger): Promise<Changes> {
  const binary = backend.family === 'inet6' ? 'ip6tables' : 'iptables';
  const printed = await backend.listRules('filter');
  const changes: Changes = [];
  for (const chain of KILL_SWITCH_CHAINS) {
    if (printed.split('\n').some((l) => l.trim() === `-P ${chain} DROP`)) continue;
    await backend.command(['-t', 'filter', '-P', chain, 'DROP']);
    logger?.debug({ chain }, `${binary}: policy DROP`);
    changes.push(`${binary}: ${chain} policy DROP`);
  }
  return changes;
}

/**
 * The gateway's iptables rules as planned, in the order that never opens the gateway: the filter
 * tables (the kill switch, IPv4 then IPv6, each followed by its DROP policies when `killSwitch`),
 * then nat. gateway-init applies them before anything can forward; gateway-sidecar re-applies
 * them every --resync-interval.
 */
export async function ensureGatewayRules(
  net: Pick<PodNet, 'iptables' | 'ip6tables' | 'sysctl'>,
  plan: Pick<GatewayPlan, 'iptables' | 'ip6tables' | 'killSwitch'>,
  logger?: Logger,
): Promise<Changes> {
  const changes: Changes = [];
  changes.push(...(await ensureIptables(net.iptables, plan.iptables, ['filter'], logger)));
  if (plan.killSwitch) changes.push(...(await ensureDropPolicies(net.iptables, logger)));
  const v6 = await ensureIp6tables(net, plan.ip6tables, ['filter'], logger);
  changes.push(...v6);
  if (plan.killSwitch && (await ipv6Available(net)))
    changes.push(...(await ensureDropPolicies(net.ip6tables, logger)));
  changes.push(...(await ensureIptables(net.iptables, plan.iptables, ['nat'], logger)));
  return changes;
}

/**
 * Applies the gateway's plan; returns what changed (nothing when it was already so). Fails closed:
 * the filter rules (the kill switch) are committed first, before anything that lets a packet be
 * forwarded (ip_forward, vxlan0 and its address, the routes). When they cannot be, the call fails
 * with forwarding as it was (off in a new pod): a gateway re-created with its old pod IP receives
 * its clients' traffic as soon as vxlan0 is up, and would send it out of eth0.
 */
export async function applyGatewayPlan(net: PodNet, plan: GatewayPlan, logger?: Logger): Promise<Changes> {
  const changes: Changes = await ensureGatewayRules(net, plan, logger);
  for (const s of plan.sysctls) changes.push(...(await ensureSysctl(net, s.key, s.value)));
  changes.push(...(await setVxlan(net, plan.vxlan, logger)));
  changes.push(...(await setOnlyAddress(net, plan.vxlan.name, plan.address)));
  const rules = new RuleSet(net.ip, { protocol: ROUTE_PROTOCOLS.podNetwork, ...(logger ? { logger } : {}) });
  changes.push(...repaired(await rules.set(plan.rules)));
  changes.push(...(await setRoutes(net, ROUTE_PROTOCOLS.podNetwork, plan.routes, logger)));
  return changes;
}

/** The gateway of the default route on `dev` (the pod network's gateway), if any. */
export async function detectPodGateway(
  net: PodNet,
  dev: string,
  family: 'inet' | 'inet6',
): Promise<string | undefined> {
  const routes = await net.ip.listRoutes({ family });
  return routes.find((r) => r.dst === 'default' && r.gateway && (r.dev === undefined || r.dev === dev))
    ?.gateway;
}
