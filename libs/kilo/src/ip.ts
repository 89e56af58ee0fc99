import { formatIp, normalizeIp, parseIp, parsePrefix, prefixContains, type Prefix } from '@knet/host-net';

/**
 * IP helpers with Kilo's semantics (pkg/mesh/ip.go, topology.go). Addresses and prefixes are text;
 * everything here is pure.
 */

export { normalizeIp, parseIp, parsePrefix, prefixContains };

function maskBits(v6: boolean, length: number): bigint {
  const bits = v6 ? 128 : 32;
  return length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(bits - length);
}

/** The address part of a CIDR (`192.0.2.1/24` → `192.0.2.1`), normalised. */
export function ipOf(cidr: string): string {
  return normalizeIp(cidr.split('/')[0] ?? cidr);
}

/** The prefix length of a CIDR (`/24` → 24); a bare address is a host prefix. */
export function prefixLength(cidr: string): number {
  const p = parsePrefix(cidr);
  if (!p) throw new TypeError(`not an IP prefix: ${JSON.stringify(cidr)}`);
  return p.length;
}

export function isV6(address: string): boolean {
  return address.includes(':');
}

/** Kilo's `oneAddressCIDR`: `192.0.2.1` → `192.0.2.1/32`, `2001:db8::1` → `2001:db8::1/128`. */
export function oneAddressCidr(address: string): string {
  const ip = ipOf(address);
  return `${ip}/${isV6(ip) ? 128 : 32}`;
}

/** The network of a CIDR, masked (`10.2.1.7/24` → `10.2.1.0/24`). */
export function networkCidr(cidr: string): string {
  const p = parsePrefix(cidr);
  if (!p) throw new TypeError(`not an IP prefix: ${JSON.stringify(cidr)}`);
  return `${formatIp(p.v6, p.value & maskBits(p.v6, p.length))}/${p.length}`;
}

/** The first address of a CIDR's network (`10.2.1.0/24` → `10.2.1.0`): Kilo's flannel gateway. */
export function networkAddress(cidr: string): string {
  return ipOf(networkCidr(cidr));
}

/** Go's `net.IPNet.Contains(ip)`. */
export function cidrContains(cidr: string, address: string): boolean {
  return prefixContains(cidr, ipOf(address));
}

/** Kilo's `intersect(n1, n2)`: either network contains the other's (unmasked) IP. */
export function intersect(a: string, b: string): boolean {
  return cidrContains(a, ipOf(b)) || cidrContains(b, ipOf(a));
}

const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];
/** As Kilo codes it (pkg/mesh/ip.go): only fd00::/16 is private for IPv6. */
const PRIVATE_V6 = ['fd00::/16'];

/**
 * Kilo's `isPublic`: not RFC 1918 (and for IPv6 not fd00::/16, as coded). 100.64.0.0/10 and the
 * documentation ranges count as public, exactly as in Kilo.
 */
export function isPublic(address: string | undefined): boolean {
  if (!address) return false;
  const ip = ipOf(address);
  const ranges = isV6(ip) ? PRIVATE_V6 : PRIVATE_V4;
  return !ranges.some((r) => prefixContains(r, ip));
}

/** The n-th address of a prefix's network (0 = the network address); undefined past its end. */
export function nthAddress(cidr: string, n: number): string | undefined {
  const p: Prefix | undefined = parsePrefix(cidr);
  if (!p) throw new TypeError(`not an IP prefix: ${JSON.stringify(cidr)}`);
  const bits = p.v6 ? 128 : 32;
  const size = 1n << BigInt(bits - p.length);
  if (n < 0 || BigInt(n) >= size) return undefined;
  return formatIp(p.v6, (p.value & maskBits(p.v6, p.length)) + BigInt(n));
}

/** Index of an address inside a prefix's network, or undefined when outside. */
export function addressIndex(cidr: string, address: string): number | undefined {
  const p = parsePrefix(cidr);
  const a = parseIp(ipOf(address));
  if (!p || !a || p.v6 !== a.v6 || !prefixContains(cidr, ipOf(address))) return undefined;
  return Number(a.value - (p.value & maskBits(p.v6, p.length)));
}

/** A prefix with another address: `withAddress('10.4.0.0/16', '10.4.0.3')` → `10.4.0.3/16`. */
export function withAddress(cidr: string, address: string): string {
  return `${ipOf(address)}/${prefixLength(cidr)}`;
}

function goParseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    // Go (since 1.17) refuses leading zeros: "010.0.0.1" is not an address.
    if (!/^(0|[1-9]\d{0,2})$/.test(p) || Number(p) > 255) return undefined;
    value = (value << 8n) | BigInt(p);
  }
  return value;
}

/**
 * Go's `net.ParseIP` followed by Kilo's `cutIP`/`To4`, as canonical text: IPv4 without leading
 * zeros, IPv6 (zones refused) including an embedded IPv4 tail, and IPv4-mapped IPv6
 * (`::ffff:192.0.2.1`) printed as IPv4, as Go's `net.IP.String` does. Undefined when Go would
 * return nil.
 */
export function goParseIP(text: string): string | undefined {
  if (!text.includes(':')) {
    const v4 = goParseV4(text);
    return v4 === undefined ? undefined : formatIp(false, v4);
  }
  let v6Text = text;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = goParseV4(tail);
    if (v4 === undefined) return undefined;
    v6Text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const ip = parseIp(v6Text);
  if (!ip?.v6) return undefined;
  if (ip.value >> 32n === 0xffffn) return formatIp(false, ip.value & 0xffffffffn);
  return formatIp(true, ip.value);
}

/**
 * Go's `net.ParseCIDR` as Kilo's `normalizeIP` (pkg/k8s/backend.go) uses it: the address keeps its
 * host bits (`10.1.0.1/24` stays `10.1.0.1/24`), IPv4 is cut to 4 bytes, the length must be
 * decimal and within the family. Undefined when Go would fail.
 */
export function goParseCIDR(text: string): string | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const ip = goParseIP(text.slice(0, slash));
  const lengthText = text.slice(slash + 1);
  if (ip === undefined || !/^\d{1,3}$/.test(lengthText)) return undefined;
  const length = Number(lengthText);
  // Go checks the length against the parsed family: an IPv4-mapped IPv6 address keeps 128 bits.
  const bits = text.slice(0, slash).includes(':') ? 128 : 32;
  if (length > bits) return undefined;
  if (bits === 128 && !isV6(ip)) {
    // `::ffff:a.b.c.d/n`: Go keeps the 16-byte mask; Kilo's normalizeIP then pairs it with the
    // 4-byte address, which no caller relies on. Treat it as IPv4 when the mask covers the prefix.
    return length >= 96 ? `${ip}/${length - 96}` : undefined;
  }
  return `${ip}/${length}`;
}

/** Kilo's `isLocal` (pkg/mesh/ip.go): loopback, link-local unicast or link-local multicast. */
export function isLocalAddress(address: string): boolean {
  const ip = ipOf(address);
  if (!isV6(ip)) return ['127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/24'].some((r) => prefixContains(r, ip));
  const value = parseIp(ip)?.value ?? 0n;
  // Go's IsLinkLocalMulticast for IPv6: ff02::/16 with any flags nibble (ff12::, ff32::, …).
  const linkLocalMulticast = value >> 120n === 0xffn && ((value >> 112n) & 0x0fn) === 0x02n;
  return ip === '::1' || prefixContains('fe80::/10', ip) || linkLocalMulticast;
}
