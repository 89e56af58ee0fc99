// Split forwarding (dnsmasq's server=/domain/addr): names equal to or under a domain go to that
// domain's servers; the longest matching domain wins.
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
 * default the cluster DNS of the original resolv.conf: see `localDnsServers` in @knet/podgw).
 * Empty when there is no server to send them to.
 */
export function splitRulesFromSettings(
  settings: Pick<Settings, 'dnsLocalDomains' | 'dnsLocalServers'>,
  originalResolvConf: ResolvConf,
): SplitRule[] {
  const servers = localDnsServers(settings, originalResolvConf);
  if (servers.length === 0) return [];
  return settings.dnsLocalDomains.map((domain) => ({ domain, servers }));
}
