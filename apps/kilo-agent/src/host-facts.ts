import { lookup } from 'node:dns/promises';
import type { HostNet } from '@knet/host-net';
import { KILO_BRIDGE, TUNL_INTERFACE, detectIPs, ipOf } from '@knet/kilo';

/** What the agent reads off its host before planning: its IPs, their interface, the MTU. */
export interface HostFacts {
  /** Internal IP (CIDR with the interface mask), if any. */
  internalIP?: string;
  /** Public IP (CIDR), falling back to the internal one (Kilo's getIP). */
  publicIP?: string;
  /** Interface holding the internal IP. */
  privateInterface?: string;
  /** MTU of the default-route interface, if there is one. */
  defaultRouteMtu?: number;
  /** Every local address → its interface (to find the interface of a forced internal IP). */
  addressDevices: Record<string, string>;
}

/** Kilo's fallback WireGuard MTU, and its overhead below the underlay's MTU. */
export const FALLBACK_MTU = 1420;
export const WIREGUARD_OVERHEAD = 80;

/**
 * Reads addresses, links and the default route through host-net, resolves the host name, and
 * lets @knet/kilo's pure `detectIPs` choose (Kilo's order and filters).
 */
export async function readHostFacts(
  net: HostNet,
  o: { hostname: string; iface: string; internalCidrs: readonly string[] },
): Promise<HostFacts> {
  const [links, addresses, routes] = await Promise.all([
    net.ip.listLinks(),
    net.ip.listAddresses(),
    net.ip.listRoutes({ table: 'main', family: 'inet' }),
  ]);
  let hostnameAddresses: string[] = [];
  try {
    hostnameAddresses = (await lookup(o.hostname, { all: true })).map((a) => a.address);
  } catch {
    // An unresolvable host name is common (Node names are not always DNS names).
  }
  const ignored = new Set([o.iface, TUNL_INTERFACE, KILO_BRIDGE]);
  const interfaces = links
    .filter((l) => !ignored.has(l.name))
    .map((l) => ({
      name: l.name,
      flags: l.flags,
      addresses: addresses.filter((a) => a.dev === l.name).map((a) => a.cidr),
    }));
  const defaultRoute = routes.find((r) => r.dst === 'default');
  const detected = detectIPs({
    hostname: o.hostname,
    hostnameAddresses,
    interfaces,
    ...(defaultRoute?.dev ? { defaultRouteInterface: defaultRoute.dev } : {}),
    ...(o.internalCidrs.length > 0 ? { internalCidrs: o.internalCidrs } : {}),
  });
  const privateInterface = detected.privateIP
    ? addresses.find((a) => a.local === ipOf(detected.privateIP as string))?.dev
    : undefined;
  const mtu = links.find((l) => l.name === defaultRoute?.dev)?.mtu;
  return {
    ...(detected.privateIP ? { internalIP: detected.privateIP } : {}),
    ...(detected.publicIP ? { publicIP: detected.publicIP } : {}),
    ...(privateInterface ? { privateInterface } : {}),
    ...(mtu ? { defaultRouteMtu: mtu } : {}),
    addressDevices: Object.fromEntries(addresses.map((a) => [a.local, a.dev])),
  };
}

/** `--mtu auto`: the default-route interface's MTU − 80, else 1420 (Kilo's detectMTU). */
export function autoMtu(facts: HostFacts): number {
  return facts.defaultRouteMtu ? facts.defaultRouteMtu - WIREGUARD_OVERHEAD : FALLBACK_MTU;
}
