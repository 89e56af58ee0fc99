/** Minimal IPv4/IPv6 prefix arithmetic (the fakes need connected routes and gateway checks; the drivers compare prefixes). */

export interface Prefix {
  v6: boolean;
  value: bigint;
  length: number;
}

export function parseIp(text: string): { v6: boolean; value: bigint } | undefined {
  if (text.includes(':')) return parseV6(text);
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    value = (value << 8n) | BigInt(p);
  }
  return { v6: false, value };
}

function parseV6(text: string): { v6: boolean; value: bigint } | undefined {
  const halves = text.toLowerCase().split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string | undefined): string[] => (s ? s.split(':') : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let value = 0n;
  for (const g of all) {
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return { v6: true, value };
}

export function formatIp(v6: boolean, value: bigint): string {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt((7 - i) * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function parsePrefix(cidr: string): Prefix | undefined {
  const [addr, len] = cidr.split('/');
  const ip = parseIp(addr ?? '');
  if (!ip) return undefined;
  const bits = ip.v6 ? 128 : 32;
  const length = len === undefined ? bits : Number(len);
  if (!Number.isInteger(length) || length < 0 || length > bits) return undefined;
  return { v6: ip.v6, value: ip.value, length };
}

function mask(v6: boolean, length: number): bigint {
  const bits = v6 ? 128 : 32;
  return length === 0 ? 0n : ((1n << BigInt(length)) - 1n) << BigInt(bits - length);
}

/** `192.0.2.7/24` → `192.0.2.0/24`. */
export function networkOf(cidr: string): string {
  const p = parsePrefix(cidr);
  if (!p) return cidr;
  return `${formatIp(p.v6, p.value & mask(p.v6, p.length))}/${p.length}`;
}

export function prefixContains(cidr: string, address: string): boolean {
  const p = parsePrefix(cidr);
  const a = parseIp(address);
  if (!p || !a || p.v6 !== a.v6) return false;
  const m = mask(p.v6, p.length);
  return (p.value & m) === (a.value & m);
}

/** Normalises an address for comparisons (`2001:DB8:0::1` → `2001:db8::1`). */
export function normalizeIp(address: string): string {
  const a = parseIp(address);
  return a ? formatIp(a.v6, a.value) : address;
}

/**
 * A prefix the way `ip -j` prints it: host prefixes without /32 (/128), networks masked, IPv6
 * compressed, and /0 (or `default` / `all`) as `zero` — `default` for routes, `all` for rules.
 * Anything unparsable is returned as is.
 */
export function canonicalPrefix(prefix: string, zero: 'default' | 'all' = 'default'): string {
  if (prefix === 'default' || prefix === 'all') return zero;
  const p = parsePrefix(prefix);
  if (!p) return prefix;
  if (p.length === 0) return zero;
  if (p.length === (p.v6 ? 128 : 32)) return normalizeIp(prefix.split('/')[0] as string);
  return networkOf(prefix);
}
