import { isIP } from 'node:net';

/** An upstream nameserver. */
export interface Upstream {
  /** Address to send to (an IPv6 `%zone` is kept). */
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** Canonical form of the address, compared with the source of replies. */
  readonly canonical: string;
}

/** Canonical text of an IP address (IPv6 compressed and lower-cased, zone dropped). */
export function canonicalIp(address: string): string {
  const bare = address.replace(/%.*$/, '');
  if (isIP(bare) !== 6) return bare;
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
}

/**
 * Parses `addr` or dnsmasq's `addr#port` (IPv4 or IPv6, optionally `%zone`); `port` defaults to
 * `defaultPort`. Throws a RangeError on anything else.
 */
export function parseUpstream(spec: string, defaultPort = 53): Upstream {
  const hash = spec.lastIndexOf('#');
  const address = (hash >= 0 ? spec.slice(0, hash) : spec).trim();
  const port = hash >= 0 ? Number(spec.slice(hash + 1)) : defaultPort;
  const family = isIP(address.replace(/%.*$/, ''));
  if (family === 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`not a nameserver address: ${JSON.stringify(spec)}`);
  }
  return { address, port, family: family as 4 | 6, canonical: canonicalIp(address) };
}

/** "1.2.3.4#53" / "fd00::1#53", for logs. */
export function upstreamName(u: Upstream): string {
  return `${u.address}#${u.port}`;
}
