// Split forwarding (dnsmasq's server=/domain/addr): names equal to or under a domain go to that
// domain's servers; the longest matching domain wins.
import { isIP } from 'node:net';
import { localDnsServers, type ResolvConf, type Settings } from '@knet/podgw';
import { parseUpstream, type Upstream } from './types';

export interface SplitRule {
  /** "cluster.local", "local" (case and leading/trailing dots do not matter). */
  domain: string;
  /** `addr` or `addr#port`, IPv4 or IPv6. */
  servers: readonly string[];
}

/** Lower-case, no leading or trailing dot. */
export function normalizeDomain(domain: string): string {
  return domain
    .trim()
    .toLowerCase()
    .replace(/^\.+|\.+$/g, '');
}

export class SplitTable {
  private readonly byDomain = new Map<string, Upstream[]>();

  /** Rules without servers or with an empty domain are ignored; rules for one domain merge. */
  constructor(rules: readonly SplitRule[] = [], defaultPort = 53) {
    for (const r of rules) {
      const d = normalizeDomain(r.domain);
      if (d === '' || r.servers.length === 0) continue;
      const list = this.byDomain.get(d) ?? [];
      for (const s of r.servers) {
        const u = parseUpstream(s, defaultPort);
        if (!list.some((x) => x.canonical === u.canonical && x.port === u.port)) list.push(u);
      }
      this.byDomain.set(d, list);
    }
  }

  get size(): number {
    return this.byDomain.size;
  }

  /** The servers of the longest rule domain that `name` (lower-case, no trailing dot) is in. */
  match(name: string): readonly Upstream[] | undefined {
    if (this.byDomain.size === 0) return undefined;
    for (let suffix = name; ;) {
      const hit = this.byDomain.get(suffix);
      if (hit) return hit;
      const dot = suffix.indexOf('.');
      if (dot < 0) return undefined;
      suffix = suffix.slice(dot + 1);
    }
  }

  domains(): string[] {
    return [...this.byDomain.keys()];
  }
}

/**
 * pod-gateway's rules: each DNS_LOCAL_CIDRS domain goes to the DNS_LOCAL_SERVER servers (by
 * default the cluster DNS of the original resolv.conf: see `localDnsServers` in @knet/podgw), and
 * so do the reverse zones of the cluster's ranges (pod-gateway sent those to the VPN's DNS).
 * Empty when there is no server to send them to, or no domain (no split at all).
 */
export function splitRulesFromSettings(
  settings: Pick<
    Settings,
    'dnsLocalDomains' | 'dnsLocalServers' | 'vpnLocalCidrs' | 'notRoutedToGatewayCidrs'
  >,
  originalResolvConf: ResolvConf,
): SplitRule[] {
  const servers = localDnsServers(settings, originalResolvConf);
  if (servers.length === 0 || settings.dnsLocalDomains.length === 0) return [];
  // PTR for the cluster's ranges (VPN_LOCAL_CIDRS, NOT_ROUTED_TO_GATEWAY_CIDRS) too: the VPN's DNS
  // cannot answer them, and asking it would tell the VPN provider the cluster's addresses.
  const cidrs = [...settings.vpnLocalCidrs, ...settings.notRoutedToGatewayCidrs];
  const reverse = [...new Set(cidrs.flatMap((c) => reverseZones(c)))];
  return [...settings.dnsLocalDomains, ...reverse].map((domain) => ({ domain, servers }));
}

/** Reverse zones of more than this many are not split (a prefix like /1 is not a cluster range). */
const MAX_REVERSE_ZONES = 256;

/**
 * The reverse-lookup zones that cover `cidr` exactly: `10.0.0.0/8` → `10.in-addr.arpa`,
 * `172.16.0.0/12` → the 16 zones `16.172.in-addr.arpa` … `31.172.in-addr.arpa`,
 * `198.51.100.0/28` → `0.100.51.198.in-addr.arpa` … `15.…`, `fd00::/8` → `d.f.ip6.arpa` …
 * (labels are whole octets for IPv4, nibbles for IPv6). Empty for a bad CIDR, one shorter than
 * /8 (IPv4) or /16 (IPv6) — not a cluster range — or one that needs more than 256 zones.
 */
export function reverseZones(cidr: string): string[] {
  const [addr = '', lenText = ''] = cidr.split('/');
  const v6 = addr.includes(':');
  const bits = v6 ? 128 : 32;
  const length = lenText === '' ? bits : Number(lenText);
  const digits = v6 ? ipv6Nibbles(addr) : ipv4Octets(addr);
  if (!digits || !Number.isInteger(length) || length < 0 || length > bits) return [];
  const step = v6 ? 4 : 8;
  const labels = Math.ceil(length / step); // whole labels of the zone
  const spare = labels * step - length; // bits of the last label the prefix leaves free
  if (2 ** spare > MAX_REVERSE_ZONES || length < (v6 ? 16 : 8)) return [];
  const fixed = digits.slice(0, labels);
  const last = labels > 0 ? (fixed[labels - 1] as number) & ~(2 ** spare - 1) : 0;
  const zones: string[] = [];
  for (let i = 0; i < 2 ** spare; i++) {
    const zone = [...fixed.slice(0, labels - 1), last + i];
    const text = zone.map((d) => (v6 ? d.toString(16) : String(d))).reverse();
    zones.push(`${text.join('.')}.${v6 ? 'ip6' : 'in-addr'}.arpa`);
  }
  return zones;
}

function ipv4Octets(addr: string): number[] | undefined {
  const parts = addr.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.map(Number);
}

/** The 32 nibbles of an IPv6 address. */
function ipv6Nibbles(addr: string): number[] | undefined {
  if (isIP(addr) !== 6 || addr.includes('.')) return undefined;
  const [head = '', tail] = addr.split('::');
  const groups = (t: string) => (t === '' ? [] : t.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (all.length !== 8) return undefined;
  return all.flatMap((g) => [...g.padStart(4, '0')].map((c) => parseInt(c, 16)));
}
