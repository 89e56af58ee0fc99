// Split forwarding (dnsmasq's server=/domain/addr): names equal to or under a domain go to that
// domain's servers; the longest matching domain wins.
import { ipv4Nameservers, type ResolvConf } from './resolv';
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
 * pod-gateway's rules: each domain of DNS_LOCAL_CIDRS (space- or comma-separated, default "local")
 * goes to DNS_LOCAL_SERVER (space- or comma-separated, default: the IPv4 nameservers of the
 * gateway's original resolv.conf). Empty when there is no server to send them to.
 */
export function splitRulesFromSettings(
  dnsLocalCidrs: string | undefined,
  dnsLocalServer: string | undefined,
  originalResolvConf: ResolvConf,
): SplitRule[] {
  const words = (s: string | undefined) => (s ?? '').split(/[\s,]+/).filter((w) => w !== '');
  const domains = dnsLocalCidrs === undefined ? ['local'] : words(dnsLocalCidrs);
  const configured = words(dnsLocalServer);
  const servers = configured.length > 0 ? configured : ipv4Nameservers(originalResolvConf);
  if (servers.length === 0) return [];
  return domains.map((domain) => ({ domain, servers }));
}
