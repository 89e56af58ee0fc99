import {
  CommandError,
  IptablesReconciler,
  ZERO_MAC,
  type BridgeFdb,
  type FdbEntrySpec,
  type IpRoute,
  type IptablesBackend,
  type IptablesRuleSet,
  type IptablesTable,
  type Logger,
  type Route,
  type RouteSpec,
  type RuleSpec,
  type Sysctl,
  type VxlanOptions,
} from '@knet/host-net';
import { CHAIN_PREFIX, ROUTE_PROTOCOL, type GatewayPlan } from './gateway-plan';

/**
 * Idempotent steps shared by gateway-init, client-init and client-sidecar. Each compares the live
 * state first and only then changes it, returning what it changed — so a second run of the same
 * plan returns no changes.
 */
export type Changes = string[];

/** The host-net wrappers the steps need (`createHostNet(runner)` or `createFakeHostNet()`). */
export interface PodNet {
  ip: IpRoute;
  fdb: BridgeFdb;
  sysctl: Sysctl;
  iptables: IptablesBackend;
  ip6tables: IptablesBackend;
}

export async function ensureSysctl(net: PodNet, key: string, value: string): Promise<Changes> {
  if ((await net.sysctl.get(key)).trim() === value) return [];
  await net.sysctl.set(key, value);
  return [`sysctl ${key}=${value}`];
}

/** The VXLAN device as specified and up; one of another kind, VNI, port or underlay is rebuilt. */
export async function ensureVxlan(net: PodNet, spec: { name: string } & VxlanOptions): Promise<Changes> {
  const { name, ...options } = spec;
  const changes: Changes = [];
  let link = await net.ip.findLink(name);
  const matches =
    link?.kind === 'vxlan' &&
    link.vxlan?.id === spec.id &&
    link.vxlan.port === spec.dstPort &&
    (spec.dev === undefined || link.vxlan.dev === spec.dev) &&
    (spec.learning === undefined || link.vxlan.learning === spec.learning);
  if (link && !matches) {
    await net.ip.deleteLink(name);
    changes.push(`deleted ${name} (was ${describeLink(link)})`);
    link = undefined;
  }
  if (!link) {
    await net.ip.addVxlan(name, options);
    changes.push(`created ${name} (vxlan id ${spec.id} dstport ${spec.dstPort} dev ${spec.dev ?? '-'})`);
    link = await net.ip.getLink(name);
  }
  if (spec.mtu !== undefined && link.mtu !== spec.mtu) {
    await net.ip.setLink(name, { mtu: spec.mtu });
    changes.push(`${name} mtu ${spec.mtu}`);
  }
  if (!link.up) {
    await net.ip.setLink(name, { up: true });
    changes.push(`${name} up`);
  }
  return changes;
}

function describeLink(link: { kind?: string; vxlan?: { id: number; port: number; dev?: string } }): string {
  return link.vxlan
    ? `vxlan id ${link.vxlan.id} dstport ${link.vxlan.port} dev ${link.vxlan.dev ?? '-'}`
    : (link.kind ?? 'a plain device');
}

/** `cidr` is the only IPv4 address of `dev` (others are removed). */
export async function ensureOnlyAddress(net: PodNet, dev: string, cidr: string): Promise<Changes> {
  const changes: Changes = [];
  const live = await net.ip.listAddresses({ dev, family: 'inet' });
  for (const a of live) {
    if (a.cidr !== cidr) {
      await net.ip.deleteAddress(dev, a.cidr);
      changes.push(`removed ${a.cidr} from ${dev}`);
    }
  }
  if (!live.some((a) => a.cidr === cidr)) {
    await net.ip.addAddress(dev, cidr);
    changes.push(`added ${cidr} to ${dev}`);
  }
  return changes;
}

export async function ensureRule(net: PodNet, rule: RuleSpec): Promise<Changes> {
  const live = await net.ip.listRules({ family: rule.family ?? 'inet' });
  const table = String(rule.table ?? 'main');
  const present = live.some(
    (r) =>
      r.priority === rule.priority &&
      (r.table ?? 'main') === table &&
      r.suppressPrefixLength === rule.suppressPrefixLength &&
      r.from === (rule.from ?? 'all'),
  );
  if (present) return [];
  await net.ip.addRule(rule);
  return [`rule pref ${rule.priority ?? '-'} lookup ${table}${suppress(rule)}`];
}

const suppress = (r: RuleSpec) =>
  r.suppressPrefixLength === undefined ? '' : ` suppress_prefixlength ${r.suppressPrefixLength}`;

/** Host prefixes print without /32 (/128) in `ip -j route`. */
const bare = (dst: string) => dst.replace(/\/(32|128)$/, '');

function sameRoute(live: Route, want: RouteSpec): boolean {
  return (
    bare(live.dst) === bare(want.dst) &&
    (live.gateway ?? undefined) === (want.via ?? undefined) &&
    (want.dev === undefined || live.dev === want.dev) &&
    (want.protocol === undefined || live.protocol === want.protocol) &&
    (want.metric === undefined || live.metric === want.metric)
  );
}

/** The route exists exactly so (replaced when it differs). */
export async function ensureRoute(net: PodNet, route: RouteSpec): Promise<Changes> {
  const family = route.family ?? (route.dst.includes(':') || route.via?.includes(':') ? 'inet6' : 'inet');
  const live = await net.ip.listRoutes({
    family,
    ...(route.table !== undefined ? { table: route.table } : {}),
  });
  if (live.some((r) => sameRoute(r, route))) return [];
  await net.ip.replaceRoute({ ...route, family });
  return [`route ${route.dst}${route.via ? ` via ${route.via}` : ''}${route.dev ? ` dev ${route.dev}` : ''}`];
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

/** Our routes (protocol ROUTE_PROTOCOL) to `dst`, e.g. to find the pod gateway a client kept. */
export async function ourRoutes(net: PodNet, family: 'inet' | 'inet6' = 'inet'): Promise<Route[]> {
  return (await net.ip.listRoutes({ family })).filter((r) => r.protocol === ROUTE_PROTOCOL);
}

/**
 * The overlay device's only peer is `spec.dst` (the gateway pod): its all-zeros entry is there and
 * every entry towards another VTEP (an old gateway pod) is removed. When the peer changed, the
 * device's neighbour entries are flushed too — they hold the old gateway's MAC, and frames to it
 * would never reach the new one (ARP would only notice after ~30 s).
 */
export async function ensureOnlyFloodEntry(net: PodNet, spec: FdbEntrySpec): Promise<Changes> {
  const changes: Changes = [];
  const live = (await net.fdb.list({ dev: spec.dev })).filter((e) => e.dst && !e.master);
  let moved = false;
  for (const e of live) {
    if (e.dst === spec.dst) continue;
    try {
      await net.fdb.delete({ mac: e.mac, dev: spec.dev, dst: e.dst as string });
    } catch (err) {
      if (!(err instanceof CommandError && err.kind === 'not-found')) throw err;
    }
    moved = true;
    changes.push(`fdb: removed ${e.mac === ZERO_MAC ? 'flood entry' : e.mac} to ${e.dst}`);
  }
  if (!live.some((e) => e.mac === ZERO_MAC && e.dst === spec.dst)) {
    await net.fdb.append(spec);
    changes.push(`fdb: flood entry to ${spec.dst}`);
  }
  if (moved) {
    for (const n of await net.ip.listNeighbours({ dev: spec.dev })) {
      try {
        await net.ip.deleteNeighbour({ dst: n.dst, dev: spec.dev });
      } catch (err) {
        if (!(err instanceof CommandError && err.kind === 'not-found')) throw err;
      }
      changes.push(`neighbour ${n.dst} on ${spec.dev} forgotten`);
    }
  }
  return changes;
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
  if (result.remaining.length > 0) {
    throw new Error(
      `${backend.family === 'inet6' ? 'ip6tables' : 'iptables'} rules did not converge: ${result.remaining.map((d) => d.kind).join(', ')}`,
    );
  }
  return result.changed
    ? [`${backend.family === 'inet6' ? 'ip6tables' : 'iptables'}: ${describeDrift(result.drift)}`]
    : [];
}

function describeDrift(drift: readonly { kind: string; table?: string; chain?: string }[]): string {
  return [...new Set(drift.map((d) => `${d.kind}${d.chain ? ` ${d.chain}` : ''}`))].join(', ');
}

/** Applies the gateway's plan; returns what changed (nothing when it was already so). */
export async function applyGatewayPlan(net: PodNet, plan: GatewayPlan, logger?: Logger): Promise<Changes> {
  const changes: Changes = [];
  for (const s of plan.sysctls) changes.push(...(await ensureSysctl(net, s.key, s.value)));
  changes.push(...(await ensureVxlan(net, plan.vxlan)));
  changes.push(...(await ensureOnlyAddress(net, plan.vxlan.name, plan.address)));
  for (const r of plan.rules) changes.push(...(await ensureRule(net, r)));
  for (const r of plan.routes) changes.push(...(await ensureRoute(net, r)));
  changes.push(...(await ensureIptables(net.iptables, plan.iptables, ['nat', 'filter'], logger)));
  changes.push(...(await ensureIptables(net.ip6tables, plan.ip6tables, ['filter'], logger)));
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
