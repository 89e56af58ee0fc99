import type { RouteSpec, RuleSpec } from '@knet/host-net';
import { defaultTunnelInterface, encapsulatorKind, gateway, type EncapsulatorKind } from './encapsulation';
import { cidrContains, ipOf, normalizeIp, oneAddressCidr } from './ip';
import { updateEndpoint } from './wg-conf';
import {
  KILO_TABLE,
  type Compatibility,
  type EncapsulationStrategy,
  type Segment,
  type Topology,
} from './types';

/**
 * The route protocol of every route Kilo adds (`proto static`, RTPROT_STATIC in pkg/mesh/routes.go).
 *
 * How routes are told apart: Kilo's pkg/route does not look at the protocol; its `Table` remembers
 * in memory the routes and rules it added (keyed `dst, via, src, dev` and `src, dst, table, iif`)
 * and only ever deletes those. knet's `RouteTable`/`RuleSet` own what carries their protocol
 * instead, so an agent that manages table `main` with `proto static` would also claim static routes
 * an administrator or NetworkManager added there: give `RouteTable` a protocol number of the
 * agent's own for `main` (or keep Kilo's in-memory ownership) and use `static` only where nothing
 * else writes, e.g. table 1107.
 */
export const KILO_ROUTE_PROTOCOL = 'static';

/**
 * Priority of Kilo's ip rules. Kilo adds them without one (`netlink.NewRule()`), so the kernel picks
 * the priority just above the first rule after `local`, which is 32765 on a host with only the
 * default rules; host-net's `RuleSet` needs an explicit one to find the rules again.
 */
export const KILO_RULE_PRIORITY = 32765;

export interface RouteOptions {
  /** The WireGuard interface (Kilo's `kiloIface` / `kiloIfaceName`, `--interface`). */
  kiloIface: string;
  /** The interface holding the private IP (Kilo's `privIface`); needed when a route goes over it. */
  privIface?: string;
  /**
   * The encapsulator's interface (Kilo's `enc.Index()`): `tunl0` (or `cilium_tunl`) for IPIP and
   * Cilium, `flannel.1` for flannel. Default by compatibility (`defaultTunnelInterface`).
   */
  tunlIface?: string;
  /** `--local`: manage routes between members of the location. */
  local: boolean;
  /** `--encapsulate`. */
  strategy: EncapsulationStrategy;
  /** `--compatibility`; a node without a private IP runs Kilo's Noop encapsulator regardless. */
  compatibility: Compatibility;
}

export interface RoutePlan {
  /** Routes in Kilo's order; table-1107 routes carry `table: 1107`, the others no table (main). */
  routes: RouteSpec[];
  /** ip rules in Kilo's order, all looking up table 1107. */
  rules: RuleSpec[];
}

/** A route needs an interface the options do not name (e.g. the private interface). */
export class RoutePlanError extends Error {
  override readonly name = 'RoutePlanError';
}

interface Plan {
  t: Topology;
  o: RouteOptions;
  kind: EncapsulatorKind;
  tunl: string;
  routes: RouteSpec[];
  rules: RuleSpec[];
}

/**
 * Kilo's `Topology.Routes` (pkg/mesh/routes.go) for the local node, with interface names where Kilo
 * uses link indices.
 *
 * - Leader: for every other segment, each member's pod CIDR and internal IP /32 (except an internal
 *   IP equal to the segment's endpoint IP) and the segment's allowed location IPs go `via <segment
 *   WireGuard IP> dev kilo0 onlink src <local private IP>`; peers' allowed IPs go `dev kilo0 src
 *   <private IP>` with no gateway.
 * - Non-leader: with gw = enc.Gw(leader), every segment's WireGuard IP /32, other segments' pod
 *   CIDRs, internal IPs and allowed location IPs, and peers' allowed IPs go `via gw dev <priv>
 *   onlink`, moved to the tunnel (with the private IP as src) when encapsulated.
 * - Inside the location (`local` and a private IP): each other member's pod CIDR via
 *   enc.Gw(member); when encapsulating (`always`, or `crosssubnet` to a member outside the local
 *   subnet) also `<member IP>/32 via gw dev tunl table 1107 src <private IP>` and the rule `from
 *   <local pod CIDR> to <member IP>/32 lookup 1107`, plus on a leader `iif kilo0 to <member IP>/32
 *   lookup 1107`.
 * - A leader without `local` whose encapsulator's gateway is not the member's private IP (flannel,
 *   Cilium) still routes `<member IP>/32 via gw dev tunl table 1107` with the `iif kilo0` rule, for
 *   return WireGuard traffic.
 *
 * `cross` granularity (knet; Kilo PR #328/#490 is unmerged): every node leads its own `node:`
 * segment. Segments of the local segment's `group` (the same location) are handled as Kilo's
 * in-location members (over the private network, encapsulated as configured), and additionally
 * get a route to their WireGuard IP /32 via the member's gateway (nothing else reaches it: there is
 * no tunnel between them); segments of other groups are routed over kilo0 as a leader does.
 */
export function planRoutes(t: Topology, o: RouteOptions): RoutePlan {
  const kind = encapsulatorKind(o.compatibility, t.privateIP);
  const p: Plan = {
    t,
    o,
    kind,
    tunl: o.tunlIface ?? defaultTunnelInterface(o.compatibility),
    routes: [],
    rules: [],
  };
  if (t.leader) planLeader(p);
  else planMember(p);
  return { routes: p.routes, rules: p.rules };
}

function planMember(p: Plan): void {
  const { t } = p;
  const own = t.segments.find((s) => s.location === t.location);
  const gw = own
    ? gateway(p.kind, {
        endpointIP: segmentEndpointIp(t, own),
        privateIP: own.privateIPs[own.leader],
        cniCompatibilityIP: own.cniCompatibilityIPs[own.leader],
        podCIDR: own.cidrs[own.leader],
      })
    : undefined;
  const viaLeader = (dst: string): void => {
    p.routes.push(encapsulate(p, route({ dst, via: gw, dev: privIface(p, dst), onlink: true })));
  };
  for (const s of t.segments) {
    viaLeader(oneAddressCidr(s.wireGuardIP));
    if (s.location === t.location) {
      if (p.o.local) inLocation(p, s, false);
      continue;
    }
    for (const cidr of s.cidrs) if (cidr !== undefined) viaLeader(cidr);
    for (const ip of s.privateIPs) viaLeader(oneAddressCidr(ip));
    for (const alip of s.allowedLocationIPs) viaLeader(alip);
  }
  for (const peer of t.peers) for (const aip of peer.allowedIPs) viaLeader(aip);
}

function planLeader(p: Plan): void {
  const { t, o } = p;
  const src = t.privateIP === undefined ? undefined : ipOf(t.privateIP);
  const localGroup = t.segments.find((s) => s.location === t.location)?.group;
  const viaWireGuard = (dst: string, s: Segment): void => {
    p.routes.push(route({ dst, via: s.wireGuardIP, dev: o.kiloIface, src, onlink: true }));
  };
  for (const s of t.segments) {
    const sameGroup = t.granularity === 'cross' && s.location !== t.location && s.group === localGroup;
    if (s.location === t.location || sameGroup) {
      if (o.local && t.privateIP !== undefined) {
        if (sameGroup) crossWireGuardIp(p, s);
        inLocation(p, s, true);
      }
      if (!o.local && t.privateIP !== undefined && o.strategy !== 'never') returnViaOverlay(p, s);
      continue;
    }
    const endpointIp = segmentEndpointIp(t, s);
    s.cidrs.forEach((cidr, i) => {
      if (cidr !== undefined) viaWireGuard(cidr, s);
      const ip = s.privateIPs[i];
      if (ip === undefined || (endpointIp !== undefined && sameIp(ip, endpointIp))) return;
      viaWireGuard(oneAddressCidr(ip), s);
    });
    for (const alip of s.allowedLocationIPs) viaWireGuard(alip, s);
  }
  for (const peer of t.peers) {
    for (const aip of peer.allowedIPs) p.routes.push(route({ dst: aip, dev: o.kiloIface, src }));
  }
}

/** Kilo's in-location member loop: routes to the other members of segment `s` over the private network. */
function inLocation(p: Plan, s: Segment, leader: boolean): void {
  const { t, o } = p;
  if (t.privateIP === undefined) return;
  const src = ipOf(t.privateIP);
  s.cidrs.forEach((cidr, i) => {
    const ip = s.privateIPs[i];
    if (ip !== undefined && sameIp(ip, src)) return;
    const gw = memberGateway(p, s, i);
    if (cidr !== undefined) {
      p.routes.push(encapsulate(p, route({ dst: cidr, via: gw, dev: privIface(p, cidr), onlink: true })));
    }
    if (ip === undefined || !encapsulates(p, ip)) return;
    const dst = oneAddressCidr(ip);
    p.routes.push(route({ dst, via: gw, dev: p.tunl, src, table: KILO_TABLE, onlink: true }));
    p.rules.push(rule({ from: t.subnet, to: dst }));
    if (leader) p.rules.push(rule({ to: dst, iif: o.kiloIface }));
  });
}

/** A leader without `--local`: return WireGuard traffic to members reached through the CNI's overlay. */
function returnViaOverlay(p: Plan, s: Segment): void {
  const { t, o } = p;
  if (t.privateIP === undefined) return;
  const own = ipOf(t.privateIP);
  s.cidrs.forEach((_cidr, i) => {
    const ip = s.privateIPs[i];
    if (ip === undefined || sameIp(ip, own)) return;
    const gw = memberGateway(p, s, i);
    if (gw === undefined || sameIp(gw, ip)) return;
    const dst = oneAddressCidr(ip);
    p.routes.push(route({ dst, via: gw, dev: p.tunl, table: KILO_TABLE, onlink: true }));
    p.rules.push(rule({ to: dst, iif: o.kiloIface }));
  });
}

/** `cross`: the WireGuard IP of a same-location node, which no tunnel carries, via its gateway. */
function crossWireGuardIp(p: Plan, s: Segment): void {
  const gw = memberGateway(p, s, s.leader);
  const dst = oneAddressCidr(s.wireGuardIP);
  p.routes.push(encapsulate(p, route({ dst, via: gw, dev: privIface(p, dst), onlink: true })));
}

function memberGateway(p: Plan, s: Segment, i: number): string | undefined {
  return gateway(p.kind, {
    privateIP: s.privateIPs[i],
    cniCompatibilityIP: s.cniCompatibilityIPs[i],
    podCIDR: s.cidrs[i],
  });
}

/** Whether in-location traffic to `ip` is encapsulated (Kilo: `always`, or `crosssubnet` off-subnet). */
function encapsulates(p: Plan, ip: string): boolean {
  const { strategy } = p.o;
  const local = p.t.privateIP;
  return (
    strategy === 'always' || (strategy === 'crosssubnet' && local !== undefined && !cidrContains(local, ip))
  );
}

/** Kilo's `encapsulateRoute`: moves a route onto the tunnel, with the private IP as src. */
function encapsulate(p: Plan, r: RouteSpec): RouteSpec {
  const { strategy } = p.o;
  const local = p.t.privateIP;
  const move =
    strategy === 'always' ||
    (strategy === 'crosssubnet' &&
      local !== undefined &&
      (r.via === undefined || !cidrContains(local, r.via)));
  if (!move) return r;
  const moved: RouteSpec = { ...r, dev: p.tunl };
  if (local !== undefined && r.src === undefined) moved.src = ipOf(local);
  return moved;
}

function privIface(p: Plan, dst: string): string {
  if (p.o.privIface === undefined) {
    throw new RoutePlanError(`route to ${dst} goes over the private interface: pass privIface`);
  }
  return p.o.privIface;
}

/**
 * Kilo's `t.updateEndpoint(segment.endpoint, ...).IP()`: the discovered endpoint of a segment behind
 * NAT, else the declared one. A DNS endpoint counts with its resolved `ip` (kg resolves DNS endpoints
 * before it builds the topology).
 */
function segmentEndpointIp(t: Topology, s: Segment): string | undefined {
  return updateEndpoint(t, s.endpoint, s.key, s.persistentKeepalive)?.ip;
}

function sameIp(a: string, b: string): boolean {
  return normalizeIp(ipOf(a)) === normalizeIp(ipOf(b));
}

interface RouteFields {
  dst: string;
  via?: string | undefined;
  dev?: string | undefined;
  src?: string | undefined;
  table?: number | undefined;
  onlink?: boolean;
}

/** A Kilo route: `proto static`, fields left out when Kilo leaves them unset. */
function route(f: RouteFields): RouteSpec {
  const r: RouteSpec = { dst: f.dst };
  if (f.via !== undefined) r.via = f.via;
  if (f.dev !== undefined) r.dev = f.dev;
  if (f.src !== undefined) r.src = f.src;
  if (f.table !== undefined) r.table = f.table;
  if (f.onlink) r.onlink = true;
  r.protocol = KILO_ROUTE_PROTOCOL;
  return r;
}

/** Kilo's `defaultRule`: from/to/iif, lookup 1107. */
function rule(f: { from?: string | undefined; to: string; iif?: string }): RuleSpec {
  const r: RuleSpec = {};
  if (f.from !== undefined) r.from = f.from;
  r.to = f.to;
  if (f.iif !== undefined) r.iif = f.iif;
  r.table = KILO_TABLE;
  r.priority = KILO_RULE_PRIORITY;
  r.protocol = KILO_ROUTE_PROTOCOL;
  return r;
}
