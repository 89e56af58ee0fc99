import { CommandError } from '../errors';
import { familyOf, ipArgs, routeFamily, ruleFamily } from '../ip-args';
import type {
  Address,
  Family,
  IpRoute,
  Link,
  LinkChanges,
  Neighbour,
  NeighbourSpec,
  Route,
  RouteSpec,
  Rule,
  RuleSpec,
  VethOptions,
  VxlanInfo,
  VxlanOptions,
} from '../ip-types';
import { canonicalPrefix, networkOf, normalizeIp, parsePrefix, prefixContains } from '../addr-math';
import { protocolName, tableName } from '../ip-names';

interface FakeLink {
  index: number;
  name: string;
  kind?: string;
  up: boolean;
  mtu: number;
  mac: string;
  master?: string;
  vxlan?: VxlanInfo;
  /** Local veth peer name. */
  peer?: string;
  peerInOtherNamespace?: boolean;
}

/** Throws the CommandError the real `ip` would throw (same argv, exit code and stderr). */
export function ipFailure(args: readonly string[], exitCode: number, stderr: string, cmd = 'ip'): never {
  throw new CommandError({ command: [cmd, ...args], exitCode, stderr });
}

function noDevice(args: string[], name: string): never {
  return ipFailure(args, 1, `Cannot find device "${name}"`);
}

function exists(args: string[]): never {
  return ipFailure(args, 2, 'RTNETLINK answers: File exists');
}

/**
 * In-memory {@link IpRoute} with kernel-like behaviour for the common cases: duplicate links and
 * addresses fail with "File exists" / "Address already assigned", missing devices with "Cannot
 * find device", deleting a missing route/rule/neighbour fails, gateways must be on a connected
 * prefix, connected routes appear for addresses on up links, rules get kernel-assigned priorities.
 * Starts with `lo` (up, 127.0.0.1/8, ::1/128) and the default rules.
 */
export class FakeIpRoute implements IpRoute {
  private readonly links = new Map<string, FakeLink>();
  private addresses: Address[] = [];
  private routes: Route[] = [];
  private readonly tables = new Set(['main', 'local', 'default']);
  private rules: Rule[] = [
    { family: 'inet', priority: 0, from: 'all', table: 'local' },
    { family: 'inet', priority: 32766, from: 'all', table: 'main' },
    { family: 'inet', priority: 32767, from: 'all', table: 'default' },
    { family: 'inet6', priority: 0, from: 'all', table: 'local' },
    { family: 'inet6', priority: 32766, from: 'all', table: 'main' },
  ];
  private neighbours: Neighbour[] = [];
  private nextIndex = 1;

  constructor() {
    this.links.set('lo', {
      index: this.nextIndex++,
      name: 'lo',
      up: true,
      mtu: 65536,
      mac: '00:00:00:00:00:00',
    });
    this.addresses.push(
      {
        dev: 'lo',
        family: 'inet',
        local: '127.0.0.1',
        prefixLength: 8,
        cidr: '127.0.0.1/8',
        scope: 'host',
        tentative: false,
      },
      {
        dev: 'lo',
        family: 'inet6',
        local: '::1',
        prefixLength: 128,
        cidr: '::1/128',
        scope: 'host',
        tentative: false,
      },
    );
  }

  /** Synchronous existence check, used by the other fakes. */
  hasLink(name: string): boolean {
    return this.links.has(name);
  }

  /** The link's ifindex (a re-created link gets a new one), used by the other fakes. */
  linkIndex(name: string): number | undefined {
    return this.links.get(name)?.index;
  }

  /** Adds a link of any kind (e.g. `tun` for a fake wireguard-go). Throws like `ip link add`. */
  addLinkOfKind(name: string, kind: string, args: string[] = ['link', 'add', name, 'type', kind]): void {
    if (this.links.has(name)) exists(args);
    this.createLink(name, kind);
  }

  private createLink(name: string, kind: string | undefined, extra: Partial<FakeLink> = {}): FakeLink {
    const index = this.nextIndex++;
    const mac = `02:00:00:00:${((index >> 8) & 255).toString(16).padStart(2, '0')}:${(index & 255).toString(16).padStart(2, '0')}`;
    const link: FakeLink = {
      index,
      name,
      up: false,
      mtu: kind === 'wireguard' ? 1420 : 1500,
      mac,
      ...(kind ? { kind } : {}),
      ...extra,
    };
    this.links.set(name, link);
    return link;
  }

  private view(l: FakeLink): Link {
    const loopback = l.name === 'lo';
    const flags = loopback ? ['LOOPBACK'] : ['BROADCAST', 'MULTICAST'];
    if (l.up) flags.push('UP', 'LOWER_UP');
    const link: Link = {
      index: l.index,
      name: l.name,
      flags,
      up: l.up,
      operState: loopback ? 'UNKNOWN' : l.up ? 'UP' : 'DOWN',
      mtu: l.mtu,
      mac: l.mac,
    };
    if (l.master) link.master = l.master;
    if (l.kind) link.kind = l.kind;
    if (l.peerInOtherNamespace) link.linkNetnsId = 0;
    if (l.vxlan) link.vxlan = { ...l.vxlan };
    return link;
  }

  async listLinks(): Promise<Link[]> {
    return [...this.links.values()].map((l) => this.view(l));
  }

  async getLink(name: string): Promise<Link> {
    const l = this.links.get(name);
    if (!l) ipFailure(ipArgs.getLink(name), 1, `Device "${name}" does not exist.`);
    return this.view(l);
  }

  async findLink(name: string): Promise<Link | undefined> {
    const l = this.links.get(name);
    return l ? this.view(l) : undefined;
  }

  async addVeth(name: string, peer: string, options: VethOptions = {}): Promise<void> {
    const args = ipArgs.addVeth(name, peer, options);
    if (this.links.has(name) || (!options.peerNamespace && (this.links.has(peer) || peer === name)))
      exists(args);
    const mtu = options.mtu ?? 1500;
    if (options.peerNamespace) {
      this.createLink(name, 'veth', { mtu, peerInOtherNamespace: true });
      return;
    }
    this.createLink(name, 'veth', { mtu, peer });
    this.createLink(peer, 'veth', { mtu, peer: name });
  }

  async addBridge(name: string, options: { mtu?: number } = {}): Promise<void> {
    const args = ipArgs.addBridge(name, options);
    if (this.links.has(name)) exists(args);
    this.createLink(name, 'bridge', options.mtu !== undefined ? { mtu: options.mtu } : {});
  }

  async addVxlan(name: string, options: VxlanOptions): Promise<void> {
    const args = ipArgs.addVxlan(name, options);
    if (this.links.has(name)) exists(args);
    if (options.dev && !this.links.has(options.dev))
      ipFailure(args, 255, `Cannot find device "${options.dev}"`);
    for (const l of this.links.values()) {
      if (l.vxlan && l.vxlan.id === options.id && l.vxlan.port === options.dstPort) {
        ipFailure(args, 2, 'Error: A VXLAN device with the specified VNI already exists.');
      }
    }
    const vxlan: VxlanInfo = { id: options.id, port: options.dstPort, learning: options.learning ?? true };
    if (options.local) vxlan.local = options.local;
    if (options.dev) vxlan.dev = options.dev;
    // The underlay's MTU less the VXLAN header; 1500 without an underlay device.
    const defaultMtu = options.dev ? (this.links.get(options.dev)?.mtu ?? 1500) - 50 : 1500;
    this.createLink(name, 'vxlan', { vxlan, mtu: options.mtu ?? defaultMtu });
  }

  async addWireGuard(name: string): Promise<void> {
    this.addLinkOfKind(name, 'wireguard', ipArgs.addWireGuard(name));
  }

  async setLink(name: string, changes: LinkChanges): Promise<void> {
    const args = ipArgs.setLink(name, changes);
    const l = this.links.get(name);
    if (!l) return noDevice(args, name);
    if (changes.master) {
      const master = this.links.get(changes.master);
      if (!master)
        ipFailure(args, 255, `Error: argument "${changes.master}" is wrong: Device does not exist`);
      if (master.kind !== 'bridge') ipFailure(args, 2, 'RTNETLINK answers: Operation not supported');
    }
    if (changes.mtu !== undefined) l.mtu = changes.mtu;
    if (changes.mac !== undefined) l.mac = changes.mac;
    if (changes.master === null) delete l.master;
    else if (changes.master !== undefined) l.master = changes.master;
    if (changes.up !== undefined) l.up = changes.up;
  }

  async deleteLink(name: string): Promise<void> {
    const args = ipArgs.deleteLink(name);
    const l = this.links.get(name);
    if (!l || name === 'lo') return noDevice(args, name);
    const gone = new Set([name, ...(l.peer ? [l.peer] : [])]);
    for (const n of gone) this.links.delete(n);
    for (const other of this.links.values()) if (other.master && gone.has(other.master)) delete other.master;
    this.addresses = this.addresses.filter((a) => !gone.has(a.dev));
    this.routes = this.routes.filter((r) => !r.dev || !gone.has(r.dev));
    this.neighbours = this.neighbours.filter((n) => !gone.has(n.dev));
  }

  async listAddresses(options: { dev?: string; family?: Family } = {}): Promise<Address[]> {
    if (options.dev && !this.links.has(options.dev)) {
      ipFailure(ipArgs.listAddresses(options), 1, `Device "${options.dev}" does not exist.`);
    }
    return this.addresses
      .filter(
        (a) => (!options.dev || a.dev === options.dev) && (!options.family || a.family === options.family),
      )
      .map((a) => ({ ...a }));
  }

  async addAddress(dev: string, cidr: string, options: { nodad?: boolean } = {}): Promise<void> {
    const args = ipArgs.addAddress(dev, cidr, options);
    if (!this.links.has(dev)) noDevice(args, dev);
    const p = parsePrefix(args[3] as string);
    if (!p) return ipFailure(args, 1, `Error: inet prefix is expected rather than "${cidr}".`);
    const family: Family = p.v6 ? 'inet6' : 'inet';
    const local = normalizeIp((args[3] as string).split('/')[0] as string);
    const dup = this.addresses.find(
      (a) =>
        a.dev === dev && a.family === family && a.local === local && (p.v6 || a.prefixLength === p.length),
    );
    if (dup)
      ipFailure(
        args,
        2,
        p.v6 ? 'Error: ipv6: address already assigned.' : 'Error: ipv4: Address already assigned.',
      );
    this.addresses.push({
      dev,
      family,
      local,
      prefixLength: p.length,
      cidr: `${local}/${p.length}`,
      scope: addressScope(local),
      tentative: false,
    });
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    const args = ipArgs.deleteAddress(dev, cidr);
    if (!this.links.has(dev)) noDevice(args, dev);
    const p = parsePrefix(args[3] as string);
    const local = normalizeIp((args[3] as string).split('/')[0] as string);
    const i = this.addresses.findIndex(
      (a) => a.dev === dev && a.local === local && a.prefixLength === p?.length,
    );
    if (i < 0)
      ipFailure(args, 2, p?.v6 ? 'Error: ipv6: address not found.' : 'Error: ipv4: Address not found.');
    const [gone] = this.addresses.splice(i, 1) as [Address];
    if (gone.family !== 'inet') return;
    // The first IPv4 address of a subnet is its primary: the secondaries go with it (the default,
    // promote_secondaries off).
    const subnet = networkOf(gone.cidr);
    const inSubnet = (a: Address) => a.dev === dev && a.family === 'inet' && networkOf(a.cidr) === subnet;
    if (this.addresses.slice(0, i).some(inSubnet)) return;
    this.addresses = this.addresses.filter((a) => !inSubnet(a));
  }

  async flushAddresses(dev: string, options: { family?: Family } = {}): Promise<void> {
    if (!this.links.has(dev))
      ipFailure(ipArgs.flushAddresses(dev, options), 1, `Device "${dev}" does not exist.`);
    this.addresses = this.addresses.filter(
      (a) => a.dev !== dev || (options.family && a.family !== options.family),
    );
  }

  private connectedRoutes(family: Family): Route[] {
    const out: Route[] = [];
    for (const a of this.addresses) {
      const link = this.links.get(a.dev);
      if (a.family !== family || !link?.up || a.dev === 'lo') continue;
      const route: Route = {
        family,
        table: 'main',
        type: 'unicast',
        dst: networkOf(a.cidr),
        dev: a.dev,
        protocol: 'kernel',
      };
      // The kernel prints an IPv4 prefix route with its scope and source, an IPv6 one with its metric.
      out.push(family === 'inet' ? { ...route, scope: 'link', prefsrc: a.local } : { ...route, metric: 256 });
    }
    return out;
  }

  async listRoutes(options: { table?: string | number; family?: Family } = {}): Promise<Route[]> {
    const family = options.family ?? 'inet';
    const table = String(options.table ?? 'main');
    const all = [...this.connectedRoutes(family), ...this.routes.filter((r) => r.family === family)];
    return all.filter((r) => table === 'all' || r.table === table).map((r) => ({ ...r }));
  }

  /**
   * The main table's longest matching route (lowest metric on a tie) over an up link; policy
   * rules are not consulted. Unreachable (no route, or only a blackhole/unreachable one): undefined.
   */
  async routeTo(dst: string): Promise<Route | undefined> {
    const family = familyOf(dst);
    const prefixLength = (r: Route) => (r.dst === 'default' ? 0 : (parsePrefix(r.dst)?.length ?? -1));
    const best = (await this.listRoutes({ family }))
      .filter((r) => r.dst === 'default' || prefixContains(r.dst, dst))
      .filter((r) => r.type !== 'unicast' || !r.dev || this.links.get(r.dev)?.up)
      .sort((a, b) => prefixLength(b) - prefixLength(a) || (a.metric ?? 0) - (b.metric ?? 0))[0];
    if (!best || best.type !== 'unicast') return undefined;
    const { protocol: _p, scope: _s, metric: _m, ...route } = best;
    return { ...route, dst: normalizeIp(dst) };
  }

  async replaceRoute(spec: RouteSpec): Promise<void> {
    const args = ipArgs.replaceRoute(spec);
    const family = routeFamily(spec);
    const type = spec.type ?? 'unicast';
    if (spec.dev) {
      const dev = this.links.get(spec.dev);
      if (!dev) noDevice(args, spec.dev);
      if (!dev.up && type === 'unicast') ipFailure(args, 2, 'Error: Device for nexthop is not up.');
    }
    if (type === 'unicast') {
      if (!spec.dev && !spec.via) ipFailure(args, 2, 'RTNETLINK answers: No such device');
      if (spec.via && !spec.onlink) {
        const reachable = this.connectedRoutes(family).some(
          (r) => (!spec.dev || r.dev === spec.dev) && prefixContains(r.dst, spec.via as string),
        );
        if (!reachable) ipFailure(args, 2, 'Error: Nexthop has invalid gateway.');
      }
    }
    const dev =
      spec.dev ??
      (spec.via
        ? this.connectedRoutes(family).find((r) => prefixContains(r.dst, spec.via as string))?.dev
        : undefined);
    const route: Route = {
      family,
      table: tableName(spec.table ?? 'main'),
      type,
      dst: canonicalPrefix(spec.dst),
    };
    if (spec.via) route.gateway = normalizeIp(spec.via);
    if (dev) route.dev = dev;
    if (spec.protocol) route.protocol = protocolName(spec.protocol);
    // The kernel prints scope link for an IPv4 unicast route without a gateway, global not at all.
    const scope = spec.scope ?? (family === 'inet' && !spec.via && type === 'unicast' ? 'link' : undefined);
    if (scope && scope !== 'global') route.scope = scope;
    if (spec.src) route.prefsrc = normalizeIp(spec.src);
    // IPv6 routes without a metric get 1024; IPv4 ones print none (0).
    const metric = spec.metric ?? (family === 'inet6' ? 1024 : undefined);
    if (metric !== undefined && !(family === 'inet' && metric === 0)) route.metric = metric;
    const i = this.routes.findIndex(
      (r) =>
        r.family === family &&
        r.table === route.table &&
        r.dst === route.dst &&
        (r.metric ?? 0) === (route.metric ?? 0),
    );
    if (i >= 0) this.routes[i] = route;
    else this.routes.push(route);
    this.tables.add(route.table);
  }

  async deleteRoute(spec: RouteSpec): Promise<void> {
    const args = ipArgs.deleteRoute(spec);
    const family = routeFamily(spec);
    const table = tableName(spec.table ?? 'main');
    if (!this.tables.has(table)) ipFailure(args, 2, 'Error: FIB table does not exist.');
    const dst = canonicalPrefix(spec.dst);
    const i = this.routes.findIndex(
      (r) =>
        r.family === family &&
        r.table === table &&
        r.dst === dst &&
        (!spec.via || r.gateway === normalizeIp(spec.via)) &&
        (!spec.dev || r.dev === spec.dev) &&
        (spec.protocol === undefined || r.protocol === protocolName(spec.protocol)) &&
        (spec.metric === undefined || (r.metric ?? 0) === spec.metric),
    );
    if (i < 0) ipFailure(args, 2, 'RTNETLINK answers: No such process');
    this.routes.splice(i, 1);
  }

  async listRules(options: { family?: Family } = {}): Promise<Rule[]> {
    const family = options.family ?? 'inet';
    return this.rules.filter((r) => r.family === family).map((r) => ({ ...r }));
  }

  async addRule(spec: RuleSpec): Promise<void> {
    const args = ipArgs.addRule(spec);
    const family = ruleFamily(spec);
    const mine = this.rules.filter((r) => r.family === family);
    const table = tableName(spec.table ?? 'main');
    // The protocol is part of a rule's identity: the same rule with another one is not a duplicate.
    const protocol = spec.protocol === undefined ? undefined : protocolName(spec.protocol);
    const duplicate = (r: Rule) =>
      r.priority === spec.priority && r.protocol === protocol && ruleMatches(r, { ...spec, table });
    if (spec.priority !== undefined && mine.some(duplicate)) exists(args);
    // Without a priority the kernel uses one less than the lowest non-zero priority in use.
    const lowest = Math.min(...mine.filter((r) => r.priority > 0).map((r) => r.priority), 32767);
    const rule: Rule = {
      family,
      priority: spec.priority ?? lowest - 1,
      from: spec.from ? canonicalPrefix(spec.from, 'all') : 'all',
      table,
    };
    if (spec.to) rule.to = canonicalPrefix(spec.to, 'all');
    if (spec.fwmark !== undefined) rule.fwmark = spec.fwmark;
    // A full mask is the default and not printed.
    if (spec.fwmask !== undefined && spec.fwmark !== undefined && spec.fwmask !== 0xffffffff) {
      rule.fwmask = spec.fwmask;
    }
    if (spec.iif) rule.iif = spec.iif;
    if (spec.oif) rule.oif = spec.oif;
    if (spec.suppressPrefixLength !== undefined) rule.suppressPrefixLength = spec.suppressPrefixLength;
    // `unspec` (none given) and `kernel` are not printed.
    if (protocol !== undefined && protocol !== 'unspec' && protocol !== 'kernel') rule.protocol = protocol;
    const at = this.rules.findIndex((r) => r.family === family && r.priority > rule.priority);
    if (at < 0) this.rules.push(rule);
    else this.rules.splice(at, 0, rule);
  }

  async deleteRule(spec: RuleSpec): Promise<void> {
    const args = ipArgs.deleteRule(spec);
    const family = ruleFamily(spec);
    const i = this.rules.findIndex((r) => r.family === family && ruleMatches(r, spec));
    if (i < 0) ipFailure(args, 2, 'RTNETLINK answers: No such file or directory');
    this.rules.splice(i, 1);
  }

  async listNeighbours(options: { dev?: string; family?: Family } = {}): Promise<Neighbour[]> {
    if (options.dev && !this.links.has(options.dev)) noDevice(ipArgs.listNeighbours(options), options.dev);
    return this.neighbours
      .filter(
        (n) => (!options.dev || n.dev === options.dev) && (!options.family || n.family === options.family),
      )
      .map((n) => ({ ...n, state: [...n.state] }));
  }

  async replaceNeighbour(spec: NeighbourSpec): Promise<void> {
    const args = ipArgs.replaceNeighbour(spec);
    if (!this.links.has(spec.dev)) noDevice(args, spec.dev);
    const dst = normalizeIp(spec.dst);
    const entry: Neighbour = {
      family: familyOf(dst),
      dst,
      dev: spec.dev,
      lladdr: spec.lladdr.toLowerCase(),
      state: [(spec.nud ?? 'permanent').toUpperCase()],
    };
    const i = this.neighbours.findIndex((n) => n.dst === dst && n.dev === spec.dev);
    if (i >= 0) this.neighbours[i] = entry;
    else this.neighbours.push(entry);
  }

  async deleteNeighbour(spec: { dst: string; dev: string }): Promise<void> {
    const args = ipArgs.deleteNeighbour(spec);
    if (!this.links.has(spec.dev)) noDevice(args, spec.dev);
    const dst = normalizeIp(spec.dst);
    const i = this.neighbours.findIndex((n) => n.dst === dst && n.dev === spec.dev);
    if (i < 0) ipFailure(args, 2, 'RTNETLINK answers: No such file or directory');
    this.neighbours.splice(i, 1);
  }
}

/** The scope the kernel gives an address: link-local `link`, loopback `host`, else `global`. */
function addressScope(local: string): string {
  if (prefixContains('fe80::/10', local)) return 'link';
  if (local === '::1' || prefixContains('127.0.0.0/8', local)) return 'host';
  return 'global';
}

/** The kernel's match for `ip rule del` / duplicate check: every attribute the spec gives must match. */
function ruleMatches(r: Rule, spec: RuleSpec): boolean {
  if (spec.priority !== undefined && r.priority !== spec.priority) return false;
  if (spec.table !== undefined && r.table !== tableName(spec.table)) return false;
  if (spec.from && r.from !== canonicalPrefix(spec.from, 'all')) return false;
  if (spec.to && r.to !== canonicalPrefix(spec.to, 'all')) return false;
  if (spec.protocol !== undefined && (r.protocol ?? 'unspec') !== protocolName(spec.protocol)) return false;
  if (spec.fwmark !== undefined && r.fwmark !== spec.fwmark) return false;
  if (spec.iif && r.iif !== spec.iif) return false;
  if (spec.oif && r.oif !== spec.oif) return false;
  if (spec.suppressPrefixLength !== undefined && r.suppressPrefixLength !== spec.suppressPrefixLength)
    return false;
  return true;
}
