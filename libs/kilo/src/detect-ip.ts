import {
  cidrContains,
  goParseCIDR,
  goParseIP,
  isLocalAddress,
  isPublic,
  isV6,
  oneAddressCidr,
  prefixLength,
  ipOf,
} from './ip';
import { KILO_BRIDGE, KILO_INTERFACE, TUNL_INTERFACE } from './types';

/** One host interface as the agent read it (`ip -j addr`). */
export interface HostInterface {
  name: string;
  /**
   * Link flags (`LOOPBACK`, `UP`, …). Informational: Kilo's getIP looks only at addresses, so a
   * public address on `lo` is a candidate, and 127.0.0.1 is skipped as loopback by address.
   */
  flags?: readonly string[];
  /** Addresses with the interface mask (`192.0.2.11/24`). */
  addresses: readonly string[];
}

export interface DetectIPInput {
  /** `--hostname`; an IP here is used as is, as Kilo does. */
  hostname: string;
  /** What the hostname resolved to (the caller's DNS lookup; empty when it does not resolve). */
  hostnameAddresses: readonly string[];
  interfaces: readonly HostInterface[];
  /** Name of the interface of the default route; undefined when there is none. */
  defaultRouteInterface?: string;
  /** `--internal-cidr` (repeatable in Kilo): only private IPs inside these count. */
  internalCidr?: string | readonly string[];
  /** Interfaces whose addresses are never chosen; default kilo0, tunl0, kube-bridge. */
  ignoreInterfaces?: readonly string[];
}

export interface DetectedIPs {
  /** The internal IP with its interface mask; undefined = run without one (Noop encapsulator). */
  privateIP?: string;
  /** The IP for the endpoint with its mask; the private IP when no public one exists. */
  publicIP?: string;
}

/** Kilo's `sortIPs`: IPv4 first, then by the CIDR text (Go's `IPNet.String()` order). */
function sortIPs(cidrs: string[]): string[] {
  return cidrs.sort((a, b) => {
    const a4 = !isV6(a);
    const b4 = !isV6(b);
    if (a4 !== b4) return a4 ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

function canonical(addresses: readonly string[]): string[] {
  return addresses.map((a) => goParseCIDR(a)).filter((a): a is string => a !== undefined);
}

/** Kilo's `assignedToInterface`: links by name, addresses sorted; the mask of the first match. */
function assignedMask(ip: string, interfaces: readonly HostInterface[]): number | undefined {
  const links = [...interfaces].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const link of links) {
    for (const cidr of canonical(link.addresses).sort()) {
      if (ipOf(cidr) === ip) return prefixLength(cidr);
    }
  }
  return undefined;
}

function split(cidrs: readonly string[]): { priv: string[]; pub: string[] } {
  const priv: string[] = [];
  const pub: string[] = [];
  for (const cidr of cidrs) {
    if (isLocalAddress(cidr)) continue;
    (isPublic(cidr) ? pub : priv).push(cidr);
  }
  return { priv: sortIPs(priv), pub: sortIPs(pub) };
}

/**
 * Kilo's `getIP` (pkg/mesh/discoverips.go), pure. Candidates, each group sorted IPv4 first:
 * 1. the addresses the hostname resolves to, if assigned to a local interface (with its mask);
 * 2. the addresses of the default-route interface;
 * 3. the addresses of every interface.
 * Loopback and link-local addresses are skipped, as are the addresses of `kilo0`, `tunl0` and
 * `kube-bridge` (Kilo ignores by address, so the same IP elsewhere is skipped too). The private IP
 * is the first RFC 1918 (or fd00::/16) candidate inside `--internal-cidr` when given; the public
 * IP is the first public candidate, else the private IP.
 *
 * Deviation: Kilo refuses to start without a default route or without any address; here the
 * default-route step is skipped and the result is empty.
 */
export function detectIPs(input: DetectIPInput): DetectedIPs {
  const ignoredNames = input.ignoreInterfaces ?? [KILO_INTERFACE, TUNL_INTERFACE, KILO_BRIDGE];
  const ignored = new Set<string>();
  for (const iface of input.interfaces) {
    if (!ignoredNames.includes(iface.name)) continue;
    for (const cidr of canonical(iface.addresses)) {
      ignored.add(cidr);
      ignored.add(oneAddressCidr(cidr));
    }
  }

  const hostIPs = goParseIP(input.hostname) !== undefined ? [input.hostname] : input.hostnameAddresses;
  const hostCidrs: string[] = [];
  for (const address of hostIPs) {
    const ip = goParseIP(address);
    if (ip === undefined) continue;
    const mask = assignedMask(ip, input.interfaces);
    if (mask !== undefined) hostCidrs.push(`${ip}/${mask}`);
  }
  const host = split(hostCidrs);
  const defaultIface = input.interfaces.find((i) => i.name === input.defaultRouteInterface);
  const byDefault = split(canonical(defaultIface?.addresses ?? []));
  const all = split(input.interfaces.flatMap((i) => canonical(i.addresses)));

  const internal =
    input.internalCidr === undefined
      ? []
      : typeof input.internalCidr === 'string'
        ? [input.internalCidr]
        : input.internalCidr;
  const priv = [...host.priv, ...byDefault.priv, ...all.priv].filter(
    (c) => !ignored.has(c) && (internal.length === 0 || internal.some((n) => cidrContains(n, c))),
  );
  const pub = [...host.pub, ...byDefault.pub, ...all.pub].filter((c) => !ignored.has(c));
  const privateIP = priv[0];
  const publicIP = pub[0] ?? privateIP;
  return {
    ...(privateIP !== undefined ? { privateIP } : {}),
    ...(publicIP !== undefined ? { publicIP } : {}),
  };
}
