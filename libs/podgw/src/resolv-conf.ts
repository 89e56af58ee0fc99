import { isIP } from 'node:net';

/** What the pod-gateway apps read from a resolv.conf. */
export interface ResolvConf {
  /** `nameserver` addresses in file order, IPv4 and IPv6 (a `%zone` suffix is kept). */
  nameservers: string[];
  /** `search` (or the older `domain`) list, lower-cased, without trailing dots. */
  search: string[];
  /** `options` entries in file order (`ndots:5` → name ndots, value "5"; a later one of a name replaces it). */
  options: { name: string; value?: string }[];
}

/**
 * Parses resolv.conf text. Comments start with `#` or `;`; keywords are case-sensitive like glibc;
 * a `nameserver` that is not an IP address is skipped; the last `search`/`domain` line wins.
 */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args[0] !== undefined) {
      const addr = args[0];
      const bare = addr.replace(/%.*$/, '');
      if (isIP(bare) !== 0 && !conf.nameservers.includes(addr)) conf.nameservers.push(addr);
    } else if (keyword === 'search' || keyword === 'domain') {
      conf.search = args.map((d) => d.toLowerCase().replace(/\.$/, '')).filter((d) => d !== '');
    } else if (keyword === 'options') {
      for (const arg of args) {
        const [name = '', value] = arg.split(/:(.*)/s);
        if (!name) continue;
        conf.options = conf.options.filter((o) => o.name !== name);
        conf.options.push(value === undefined ? { name } : { name, value });
      }
    }
  }
  return conf;
}

/** The IPv4 `nameserver` addresses (pod-gateway's DNS_LOCAL_SERVER default, IPv4 only since #61). */
export function ipv4Nameservers(conf: ResolvConf): string[] {
  return conf.nameservers.filter((a) => isIP(a) === 4);
}
