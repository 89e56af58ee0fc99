import type {
  Family,
  LinkChanges,
  NeighbourSpec,
  RouteSpec,
  RuleSpec,
  VethOptions,
  VxlanOptions,
} from './ip-types';

/**
 * Pure argv builders for `ip` (without the leading `ip`). Shared by the real wrapper and the fake, so
 * that a fake's errors name the same command line the real one would run.
 */

const NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Throws unless `name` is a valid interface name (1 to 15 of [A-Za-z0-9_.-], not `.` or `..`). */
export function assertIfName(name: string): void {
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new TypeError(`invalid interface name ${JSON.stringify(name)}`);
  }
}

/** `inet6` when the address (or prefix) contains a colon, else `inet`. */
export function familyOf(address: string): Family {
  return address.includes(':') ? 'inet6' : 'inet';
}

export function familyFlag(family: Family): string {
  return family === 'inet6' ? '-6' : '-4';
}

export function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

export const ipArgs = {
  listLinks: (): string[] => ['-j', '-d', 'link', 'show'],
  getLink: (name: string): string[] => ['-j', '-d', 'link', 'show', 'dev', name],
  addVeth(name: string, peer: string, o: VethOptions = {}): string[] {
    const head = linkAdd(name, 'veth', o.mtu);
    assertIfName(peer);
    return [...head, 'peer', 'name', peer, ...(o.peerNamespace ? ['netns', o.peerNamespace] : [])];
  },
  addBridge(name: string, o: { mtu?: number } = {}): string[] {
    return linkAdd(name, 'bridge', o.mtu);
  },
  addVxlan(name: string, o: VxlanOptions): string[] {
    const head = linkAdd(name, 'vxlan', o.mtu);
    if (!Number.isInteger(o.id) || o.id < 0 || o.id > 0xffffff) {
      throw new TypeError(`invalid VXLAN id ${o.id}: must be 0..16777215`);
    }
    return [
      ...head,
      'id',
      String(o.id),
      'dstport',
      String(o.dstPort),
      ...(o.local ? ['local', o.local] : []),
      ...(o.dev ? ['dev', o.dev] : []),
      ...(o.learning === undefined ? [] : [o.learning ? 'learning' : 'nolearning']),
      ...(o.ttl !== undefined ? ['ttl', String(o.ttl)] : []),
    ];
  },
  addWireGuard(name: string): string[] {
    return linkAdd(name, 'wireguard');
  },
  setLink(name: string, c: LinkChanges): string[] {
    const args = ['link', 'set', 'dev', name];
    if (c.mtu !== undefined) args.push('mtu', String(c.mtu));
    if (c.mac !== undefined) args.push('address', c.mac);
    if (c.master !== undefined) args.push(...(c.master === null ? ['nomaster'] : ['master', c.master]));
    if (c.up !== undefined) args.push(c.up ? 'up' : 'down');
    if (args.length === 4) throw new TypeError(`setLink(${name}): no changes given`);
    return args;
  },
  deleteLink: (name: string): string[] => ['link', 'del', 'dev', name],

  listAddresses: (o: { dev?: string; family?: Family } = {}): string[] => showArgs('addr', o),
  addAddress(dev: string, cidr: string, o: { nodad?: boolean } = {}): string[] {
    return [
      familyFlag(familyOf(cidr)),
      'addr',
      'add',
      withPrefix(cidr),
      'dev',
      dev,
      ...(o.nodad ? ['nodad'] : []),
    ];
  },
  deleteAddress: (dev: string, cidr: string): string[] => [
    familyFlag(familyOf(cidr)),
    'addr',
    'del',
    withPrefix(cidr),
    'dev',
    dev,
  ],
  flushAddresses: (dev: string, o: { family?: Family } = {}): string[] => [
    ...(o.family ? [familyFlag(o.family)] : []),
    'addr',
    'flush',
    'dev',
    dev,
  ],

  listRoutes(o: { table?: string | number; family?: Family } = {}): string[] {
    return ['-j', familyFlag(o.family ?? 'inet'), 'route', 'show', 'table', String(o.table ?? 'main')];
  },
  routeTo: (dst: string): string[] => ['-j', familyFlag(familyOf(dst)), 'route', 'get', dst],
  replaceRoute: (r: RouteSpec): string[] => routeArgs('replace', r),
  deleteRoute: (r: RouteSpec): string[] => routeArgs('del', r),

  listRules: (o: { family?: Family } = {}): string[] => [
    '-j',
    familyFlag(o.family ?? 'inet'),
    'rule',
    'show',
  ],
  addRule: (r: RuleSpec): string[] => ruleArgs('add', r),
  deleteRule: (r: RuleSpec): string[] => ruleArgs('del', r),

  listNeighbours: (o: { dev?: string; family?: Family } = {}): string[] => showArgs('neigh', o),
  replaceNeighbour: (n: NeighbourSpec): string[] => [
    familyFlag(familyOf(n.dst)),
    'neigh',
    'replace',
    n.dst,
    'lladdr',
    n.lladdr,
    'dev',
    n.dev,
    'nud',
    n.nud ?? 'permanent',
  ],
  deleteNeighbour: (n: { dst: string; dev: string }): string[] => [
    familyFlag(familyOf(n.dst)),
    'neigh',
    'del',
    n.dst,
    'dev',
    n.dev,
  ],
};

/** Family of a route spec: explicit, else from dst, else from via, else inet. */
export function routeFamily(r: RouteSpec): Family {
  if (r.family) return r.family;
  if (r.dst !== 'default') return familyOf(r.dst);
  return r.via ? familyOf(r.via) : 'inet';
}

export function ruleFamily(r: RuleSpec): Family {
  if (r.family) return r.family;
  const addr = r.from ?? r.to;
  return addr && addr !== 'all' ? familyOf(addr) : 'inet';
}

function routeArgs(verb: 'replace' | 'del', r: RouteSpec): string[] {
  const args = [familyFlag(routeFamily(r)), 'route', verb];
  if (r.type && r.type !== 'unicast') args.push(r.type);
  args.push(r.dst);
  if (r.via) args.push('via', r.via);
  if (r.dev) args.push('dev', r.dev);
  if (r.src) args.push('src', r.src);
  if (r.protocol !== undefined && r.protocol !== '') args.push('proto', String(r.protocol));
  if (r.scope) args.push('scope', r.scope);
  if (r.metric !== undefined) args.push('metric', String(r.metric));
  if (r.table !== undefined) args.push('table', String(r.table));
  if (r.onlink) args.push('onlink');
  if (r.mtu !== undefined) args.push('mtu', String(r.mtu));
  return args;
}

function ruleArgs(verb: 'add' | 'del', r: RuleSpec): string[] {
  const args = [familyFlag(ruleFamily(r)), 'rule', verb];
  if (r.priority !== undefined) args.push('priority', String(r.priority));
  if (r.from) args.push('from', r.from);
  if (r.to) args.push('to', r.to);
  if (r.fwmark !== undefined) {
    args.push('fwmark', r.fwmask !== undefined ? `${hex(r.fwmark)}/${hex(r.fwmask)}` : hex(r.fwmark));
  }
  if (r.iif) args.push('iif', r.iif);
  if (r.oif) args.push('oif', r.oif);
  if (r.table !== undefined) args.push('table', String(r.table));
  if (r.suppressPrefixLength !== undefined)
    args.push('suppress_prefixlength', String(r.suppressPrefixLength));
  if (r.protocol !== undefined) args.push('protocol', String(r.protocol));
  return args;
}

/** `link add NAME [mtu N] type KIND`, the start of every command that creates a link. */
function linkAdd(name: string, kind: string, mtu?: number): string[] {
  assertIfName(name);
  return ['link', 'add', name, ...(mtu !== undefined ? ['mtu', String(mtu)] : []), 'type', kind];
}

function withPrefix(cidr: string): string {
  if (cidr.includes('/')) return cidr;
  return `${cidr}/${familyOf(cidr) === 'inet6' ? 128 : 32}`;
}

/** `ip -j [-4|-6] OBJECT show [dev DEV]`. */
function showArgs(object: 'addr' | 'neigh', o: { dev?: string; family?: Family }): string[] {
  return [
    '-j',
    ...(o.family ? [familyFlag(o.family)] : []),
    object,
    'show',
    ...(o.dev ? ['dev', o.dev] : []),
  ];
}
