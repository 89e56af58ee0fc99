import type { NatEntry } from '@knet/podgw';

/**
 * The names the gateway's DNS answers for its clients: every leased hostname, plus every nat.conf
 * client (static address, no lease), as a name → addresses map.
 */
export function clientHosts(
  leased: Readonly<Record<string, string>>,
  nat: readonly NatEntry[],
  address: (octet: number) => string,
): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const e of nat) hosts.set(e.hostname, [address(e.octet)]);
  for (const [name, ip] of Object.entries(leased)) {
    const list = hosts.get(name) ?? [];
    if (!list.includes(ip)) list.push(ip);
    hosts.set(name, list);
  }
  return hosts;
}
