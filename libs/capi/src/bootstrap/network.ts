import { isIP } from 'node:net';
import { BootstrapError } from './errors';

/** An API server address as a Machine or Cluster carries it (`spec.controlPlaneEndpoint`). */
export interface Endpoint {
  host: string;
  port: number;
}

/** `host:port`, with IPv6 literals in brackets, as kubeadm's `controlPlaneEndpoint` wants it. */
export function hostPort(endpoint: Endpoint): string {
  return isIP(endpoint.host) === 6
    ? `[${endpoint.host}]:${endpoint.port}`
    : `${endpoint.host}:${endpoint.port}`;
}

/** The endpoint as an https URL (kubeconfig `server`). */
export function endpointUrl(endpoint: Endpoint): string {
  return `https://${hostPort(endpoint)}`;
}

/** Throws unless the endpoint is a DNS name or IP literal and a TCP port. */
export function checkEndpoint(endpoint: Endpoint, where: string): void {
  const dnsName =
    /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;
  if (!(isIP(endpoint.host) || dnsName.test(endpoint.host)))
    throw new BootstrapError(
      'invalid-input',
      `${where}: host ${JSON.stringify(endpoint.host)} is neither an IP address nor a DNS name; set the cluster's controlPlaneEndpoint`,
    );
  if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535)
    throw new BootstrapError('invalid-input', `${where}: port ${endpoint.port} is not a TCP port (1-65535)`);
}

/**
 * The API server's service IP: the first address after the network address of the (first)
 * service CIDR, as kubeadm computes it (`GetAPIServerVirtualIP`). Accepts a comma-separated
 * dual-stack list; the first entry decides, like kubeadm.
 */
export function apiServerServiceIp(serviceCidrs: string): string {
  const first = serviceCidrs.split(',')[0]?.trim() ?? '';
  const { bytes, prefix, family } = parseCidr(first, 'serviceCIDR');
  const bits = family === 4 ? 32 : 128;
  if (prefix > bits - 2)
    throw new BootstrapError(
      'invalid-input',
      `serviceCIDR ${first} has no room for the API server's service IP`,
    );
  // Clear the host bits, then add one.
  const network = Buffer.from(bytes);
  for (let i = 0; i < network.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    network[i] = (network[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  for (let i = network.length - 1; i >= 0; i--) {
    const v = (network[i] ?? 0) + 1;
    network[i] = v & 0xff;
    if (v <= 0xff) break;
  }
  return family === 4 ? [...network].join('.') : formatIpv6(network);
}

/** Throws unless every comma-separated entry is an IPv4 or IPv6 CIDR. */
export function checkCidrs(cidrs: string, what: string): void {
  const entries = cidrs.split(',').map((c) => c.trim());
  if (entries.length === 0 || entries.length > 2)
    throw new BootstrapError(
      'invalid-input',
      `${what} ${JSON.stringify(cidrs)}: give one CIDR or a dual-stack pair`,
    );
  for (const entry of entries) parseCidr(entry, what);
}

function parseCidr(cidr: string, what: string): { bytes: Buffer; prefix: number; family: 4 | 6 } {
  const [ip = '', prefixText = '', extra] = cidr.split('/');
  const family = isIP(ip);
  const prefix = Number(prefixText);
  const max = family === 4 ? 32 : 128;
  if (extra !== undefined || !family || !/^\d{1,3}$/.test(prefixText) || prefix > max)
    throw new BootstrapError(
      'invalid-input',
      `${what} ${JSON.stringify(cidr)} is not a CIDR like 10.96.0.0/12 or fd00::/108`,
    );
  return family === 4
    ? { bytes: Buffer.from(ip.split('.').map(Number)), prefix, family: 4 }
    : { bytes: ipv6Bytes(ip), prefix, family: 6 };
}

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail] = ip.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const expand = (gs: string[]): string[] =>
    gs.flatMap((g) => {
      if (!g.includes('.')) return [g];
      const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
      return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
    });
  const l = expand(left);
  const r = expand(right);
  const all = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function formatIpv6(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(':');
  const head = groups.slice(0, best.start).join(':');
  const tail = groups.slice(best.start + best.length).join(':');
  return `${head}::${tail}`;
}
