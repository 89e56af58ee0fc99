// Small IPv4 helpers (dotted quad <-> uint32, prefixes, MACs) shared by the codec, pool and server.

/** The unspecified address: a socket bound to it receives on every address; ciaddr/yiaddr "none". */
export const ANY_ADDRESS = '0.0.0.0';
/** The limited broadcast address (DHCP replies to clients without an address, DISCOVER). */
export const LIMITED_BROADCAST = '255.255.255.255';

const QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const MAC = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$/i;

export function isIPv4(s: unknown): s is string {
  return typeof s === 'string' && QUAD.test(s);
}

/** `192.0.2.1` → 0xc0000201. Throws TypeError for anything else. */
export function ipToInt(ip: string): number {
  if (!isIPv4(ip)) throw new TypeError(`invalid IPv4 address ${JSON.stringify(ip)}`);
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Netmask of a prefix length: 24 → `255.255.255.0`. */
export function prefixToNetmask(prefixLength: number): string {
  if (!Number.isInteger(prefixLength) || prefixLength < 0 || prefixLength > 32) {
    throw new TypeError(`invalid prefix length ${prefixLength}`);
  }
  return intToIp(prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0);
}

/** Prefix length of a contiguous netmask, or undefined (`255.0.255.0`). */
export function netmaskToPrefix(mask: string): number | undefined {
  const n = ipToInt(mask);
  for (let p = 0; p <= 32; p++) {
    if ((p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0) === n) return p;
  }
  return undefined;
}

export interface Ipv4Network {
  /** Network address as uint32. */
  base: number;
  prefixLength: number;
  /** Number of addresses (2^(32-prefix)). */
  size: number;
  /** `172.16.0.0/24`. */
  cidr: string;
}

/**
 * `172.16.0.0/24`, or pod-gateway's VXLAN_IP_NETWORK form `172.16.0` (first three octets: a /24).
 * Host bits must be zero.
 */
export function parseNetwork(spec: string): Ipv4Network {
  let addr: string;
  let prefix: number;
  if (/^\d+\.\d+\.\d+$/.test(spec)) {
    addr = `${spec}.0`;
    prefix = 24;
  } else {
    const m = /^([^/]+)\/(\d{1,2})$/.exec(spec);
    if (!m) throw new TypeError(`invalid network ${JSON.stringify(spec)}: expected a.b.c.d/len or a.b.c`);
    addr = m[1] as string;
    prefix = Number(m[2]);
  }
  if (!isIPv4(addr)) throw new TypeError(`invalid network ${JSON.stringify(spec)}`);
  if (prefix < 16 || prefix > 30) {
    throw new TypeError(`invalid network ${JSON.stringify(spec)}: prefix length must be 16..30`);
  }
  const size = 2 ** (32 - prefix);
  const base = ipToInt(addr);
  if (base % size !== 0) throw new TypeError(`invalid network ${JSON.stringify(spec)}: host bits set`);
  return { base, prefixLength: prefix, size, cidr: `${addr}/${prefix}` };
}

export function inNetwork(net: Ipv4Network, ip: string): boolean {
  if (!isIPv4(ip)) return false;
  const n = ipToInt(ip);
  return n >= net.base && n < net.base + net.size;
}

/** `AA-BB-cc:dd…` → `aa:bb:cc:dd:ee:ff`; throws TypeError for anything that is not a 6-byte MAC. */
export function normalizeMac(mac: string): string {
  if (!MAC.test(mac)) throw new TypeError(`invalid MAC address ${JSON.stringify(mac)}`);
  return mac.toLowerCase().replace(/-/g, ':');
}

export function isMac(mac: unknown): mac is string {
  return typeof mac === 'string' && MAC.test(mac);
}
