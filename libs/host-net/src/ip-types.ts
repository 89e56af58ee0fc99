/** Address family as `ip -j` prints it. */
export type Family = 'inet' | 'inet6';

export interface VxlanInfo {
  id: number;
  port: number;
  local?: string;
  /** Underlay device (`dev` when created). */
  dev?: string;
  learning: boolean;
}

export interface Link {
  index: number;
  name: string;
  flags: string[];
  /** Administratively up (`UP` flag). */
  up: boolean;
  operState: string;
  mtu: number;
  mac?: string;
  master?: string;
  /** `veth`, `bridge`, `vxlan`, `wireguard`, `tun` (wireguard-go), ...; absent for plain devices. */
  kind?: string;
  /** Set when the peer of a veth lives in another namespace. */
  linkNetnsId?: number;
  vxlan?: VxlanInfo;
}

export interface Address {
  dev: string;
  family: Family;
  /** The address without prefix length. */
  local: string;
  prefixLength: number;
  /** `local/prefixLength`. */
  cidr: string;
  scope: string;
  tentative: boolean;
}

export interface Route {
  family: Family;
  /** `main`, `local` or a table number as a string. */
  table: string;
  /** `unicast`, `local`, `broadcast`, `blackhole`, ... */
  type: string;
  /** `default`, a prefix, or a host address. */
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
}

export interface Rule {
  family: Family;
  priority: number;
  /** `all` or a prefix/host. */
  from: string;
  to?: string;
  table?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  /** `suppress_prefixlength N`: ignore routes of the looked-up table with a prefix length ≤ N. */
  suppressPrefixLength?: number;
  /** Set for non-lookup rules (`unreachable`, `blackhole`, `prohibit`, `goto`). */
  action?: string;
  /** Who added the rule (`ip rule ... protocol P`), printed unless it is `unspec` or `kernel`. */
  protocol?: string;
}

export interface Neighbour {
  family: Family;
  dst: string;
  dev: string;
  lladdr?: string;
  /** e.g. `['REACHABLE']`, `['PERMANENT']`. */
  state: string[];
}

export interface VethOptions {
  /** Create the peer directly in this named network namespace. */
  peerNamespace?: string;
  mtu?: number;
}

export interface VxlanOptions {
  id: number;
  /** UDP destination port (4789 is the IANA port). */
  dstPort: number;
  local?: string;
  /** Underlay device. */
  dev?: string;
  /** Source-address learning; omitted means the kernel default (on). */
  learning?: boolean;
  ttl?: number;
  mtu?: number;
}

export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  /** A bridge name, or null for `nomaster`. */
  master?: string | null;
  mac?: string;
}

export interface RouteSpec {
  /** `default`, prefix or host address. */
  dst: string;
  /** Needed for `default` routes over IPv6 (otherwise derived from dst/via). */
  family?: Family;
  type?: 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw' | 'local';
  via?: string;
  dev?: string;
  src?: string;
  table?: string | number;
  metric?: number;
  /** `proto P`, a number or an rt_protos name (`ip -j` prints `4` as `static`). */
  protocol?: string | number;
  scope?: 'global' | 'link' | 'host';
  onlink?: boolean;
  mtu?: number;
}

export interface RuleSpec {
  family?: Family;
  priority?: number;
  from?: string;
  to?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  table?: string | number;
  /** `suppress_prefixlength N`, e.g. 0 to let a table's specific routes win but not its default. */
  suppressPrefixLength?: number;
  /**
   * `protocol P` (a number or an rt_protos name): marks the rule as someone's. Part of the rule's
   * identity: the same rule with another protocol is another rule, and `deleteRule` with it deletes
   * only a rule with that protocol.
   */
  protocol?: string | number;
}

export interface NeighbourSpec {
  dst: string;
  dev: string;
  lladdr: string;
  /** Default `permanent`. */
  nud?: 'permanent' | 'reachable' | 'stale' | 'noarp';
}

/** Typed `ip` (iproute2) operations. Real: {@link ExecIpRoute}; in-memory: FakeIpRoute. */
export interface IpRoute {
  listLinks(): Promise<Link[]>;
  /** Throws a CommandError of kind `no-device` when missing. */
  getLink(name: string): Promise<Link>;
  findLink(name: string): Promise<Link | undefined>;
  addVeth(name: string, peer: string, options?: VethOptions): Promise<void>;
  addBridge(name: string, options?: { mtu?: number }): Promise<void>;
  addVxlan(name: string, options: VxlanOptions): Promise<void>;
  /** Kernel WireGuard link; see WireGuard.createInterface for the wireguard-go fallback. */
  addWireGuard(name: string): Promise<void>;
  setLink(name: string, changes: LinkChanges): Promise<void>;
  deleteLink(name: string): Promise<void>;

  listAddresses(options?: { dev?: string; family?: Family }): Promise<Address[]>;
  /** `cidr` like `192.0.2.1/24` or `2001:db8::1/64`. */
  addAddress(dev: string, cidr: string, options?: { nodad?: boolean }): Promise<void>;
  deleteAddress(dev: string, cidr: string): Promise<void>;
  flushAddresses(dev: string, options?: { family?: Family }): Promise<void>;

  /** Routes of one table (default `main`; `all` for every table) and family (default inet). */
  listRoutes(options?: { table?: string | number; family?: Family }): Promise<Route[]>;
  /**
   * The route the kernel picks for a packet to `dst` (`ip route get`, policy rules included), or
   * undefined when `dst` is unreachable. Its `dst` is the address asked about, not a prefix.
   */
  routeTo(dst: string): Promise<Route | undefined>;
  replaceRoute(route: RouteSpec): Promise<void>;
  deleteRoute(route: RouteSpec): Promise<void>;

  listRules(options?: { family?: Family }): Promise<Rule[]>;
  addRule(rule: RuleSpec): Promise<void>;
  deleteRule(rule: RuleSpec): Promise<void>;

  listNeighbours(options?: { dev?: string; family?: Family }): Promise<Neighbour[]>;
  replaceNeighbour(neighbour: NeighbourSpec): Promise<void>;
  deleteNeighbour(neighbour: { dst: string; dev: string }): Promise<void>;
}
