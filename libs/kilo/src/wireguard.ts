import { wireGuardPublicKey } from '@knet/crypto';
import type { WgConfig, WgInterfaceState, WgPeerConfig } from '@knet/host-net';
import { goParseCIDR, goParseIP, isV6, networkCidr } from './ip';
import type { Conf, ConfPeer, Endpoint, UdpAddr } from './types';

/**
 * Kilo's WireGuard text format and endpoint handling (pkg/wireguard/conf.go), pure.
 */

/** Why a config could not be parsed or mapped; callers branch on `kind`, never on the text. */
export type WireGuardConfErrorKind = 'syntax' | 'missing-private-key' | 'unresolved-endpoint';

export class WireGuardConfError extends Error {
  override readonly name = 'WireGuardConfError';
  constructor(
    readonly kind: WireGuardConfErrorKind,
    message: string,
  ) {
    super(message);
  }
}

const ZERO_KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/**
 * wgctrl's `wgtypes.ParseKey`: standard base64 of exactly 32 bytes. Returns the canonical text
 * (Kilo re-encodes keys with `Key.String()`), or undefined when Go would fail.
 */
export function parseWgKey(text: string): string | undefined {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return undefined;
  return Buffer.from(text, 'base64').toString('base64');
}

/** True for the all-zero key, which Kilo treats as "no key" (`wgtypes.Key{}`). */
export function isZeroKey(key: string | undefined): boolean {
  return key === undefined || key === '' || key === ZERO_KEY;
}

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = new RegExp(`^${DNS1123_LABEL}(\\.${DNS1123_LABEL})*$`);

/** Kubernetes' `validation.IsDNS1123Subdomain`, which Kilo uses for DNS endpoints. */
export function isDns1123Subdomain(name: string): boolean {
  return name.length > 0 && name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

/** Go's `net.SplitHostPort` (`host:port`, `[host]:port`); undefined where Go returns an error. */
function splitHostPort(text: string): { host: string; port: string } | undefined {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return undefined;
  const port = text.slice(colon + 1);
  const hostPart = text.slice(0, colon);
  if (hostPart.startsWith('[')) {
    const end = hostPart.indexOf(']');
    if (end !== hostPart.length - 1) return undefined;
    const host = hostPart.slice(1, end);
    return host.includes('[') || host.includes(']') ? undefined : { host, port };
  }
  if (hostPart.includes(':') || hostPart.includes('[') || hostPart.includes(']')) return undefined;
  return { host: hostPart, port };
}

/**
 * Kilo's `wireguard.ParseEndpoint`: `10.0.0.1:51820`, `[ff10::10]:51820` or `example.com:51820`.
 * The port must be 1–65535; a host that is no IP must be a DNS-1123 subdomain. Anything else
 * (no port, `-10.0.0.2:1`, empty) gives undefined, as Kilo's nil.
 */
export function parseEndpoint(text: string): Endpoint | undefined {
  const split = splitHostPort(text);
  if (!split || !/^\d+$/.test(split.port)) return undefined;
  const port = Number(split.port);
  if (port < 1 || port > 65535) return undefined;
  const ip = goParseIP(split.host);
  if (ip !== undefined) return { ip, port };
  return isDns1123Subdomain(split.host) ? { dns: split.host, port } : undefined;
}

/** Kilo's `NewEndpoint(ip, port)`: the IP cut to 4 bytes when it is IPv4 (`cutIP`). */
export function newEndpoint(ip: string | undefined, port: number): Endpoint {
  const parsed = ip === undefined ? undefined : goParseIP(ip);
  return parsed === undefined ? { port } : { ip: parsed, port };
}

/** Kilo's `NewEndpointFromUDPAddr`; undefined for no address (Kilo's endpoint then is never Ready). */
export function endpointFromUdpAddr(addr: UdpAddr | undefined): Endpoint | undefined {
  return addr ? newEndpoint(addr.ip === '' ? undefined : addr.ip, addr.port) : undefined;
}

/** Go's `net.JoinHostPort` for an IP: brackets around IPv6. */
function joinHostPort(host: string, port: number): string {
  return isV6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * Kilo's `Endpoint.StringOpt(dnsFirst)` (`String()` is `dnsFirst = true`): the DNS form
 * `name:port` unless there is an IP and `dnsFirst` is false or there is no name; `ip:port`,
 * `[v6]:port`; a port without host prints `:port` as Go's `UDPAddr.String`; undefined prints `""`.
 */
export function formatEndpoint(e: Endpoint | undefined, dnsFirst = true): string {
  if (!e) return '';
  const hasDns = e.dns !== undefined && e.dns !== '';
  if (e.ip !== undefined && (!dnsFirst || !hasDns)) return joinHostPort(e.ip, e.port);
  return hasDns ? `${e.dns ?? ''}:${e.port}` : `:${e.port}`;
}

/** Kilo's `Endpoint.Equal(b, dnsFirst)`: the two `StringOpt(dnsFirst)` texts are the same. */
export function endpointsEqual(a: Endpoint | undefined, b: Endpoint | undefined, dnsFirst: boolean): boolean {
  return formatEndpoint(a, dnsFirst) === formatEndpoint(b, dnsFirst);
}

function canonicalCidr(cidr: string): string {
  return goParseCIDR(cidr) ?? cidr;
}

/**
 * Kilo's `Conf.Bytes()`, byte for byte: `[Interface]` (PrivateKey, ListenPort) only when there is
 * a private key; a blank line before every `[Peer]` but a first one without interface; per peer
 * AllowedIPs (`, `-joined, omitted when empty), Endpoint (DNS preferred, omitted when none),
 * PersistentKeepalive (always, 0 when unset), PresharedKey and PublicKey (omitted when unset or
 * all-zero). Peers and CIDRs keep the given order: Kilo sorts nothing here.
 *
 * Where Kilo would crash or print junk we do not: a private key without a port omits ListenPort
 * (Kilo dereferences nil), and an endpoint with neither IP nor name is omitted (Kilo would print
 * `Endpoint = :port`).
 */
export function renderConf(conf: Conf): string {
  const out: string[] = [];
  const hasInterface = conf.privateKey !== undefined;
  if (hasInterface) {
    out.push('[Interface]\n');
    if (!isZeroKey(conf.privateKey)) out.push(`PrivateKey = ${conf.privateKey}\n`);
    if (conf.listenPort !== undefined) out.push(`ListenPort = ${conf.listenPort}\n`);
  }
  conf.peers.forEach((p, i) => {
    if (i !== 0 || hasInterface) out.push('\n');
    out.push('[Peer]\n');
    if (p.allowedIPs.length > 0) out.push(`AllowedIPs = ${p.allowedIPs.map(canonicalCidr).join(', ')}\n`);
    if (p.endpoint && (p.endpoint.ip !== undefined || (p.endpoint.dns ?? '') !== '')) {
      out.push(`Endpoint = ${formatEndpoint(p.endpoint, true)}\n`);
    }
    out.push(`PersistentKeepalive = ${p.persistentKeepalive ?? 0}\n`);
    if (!isZeroKey(p.presharedKey)) out.push(`PresharedKey = ${p.presharedKey}\n`);
    if (!isZeroKey(p.publicKey)) out.push(`PublicKey = ${p.publicKey}\n`);
  });
  return out.join('');
}

interface MutablePeer {
  publicKey?: string;
  allowedIPs: string[];
  endpoint?: Endpoint;
  persistentKeepalive?: number;
  presharedKey?: string;
  line: number;
}

function syntax(line: number, message: string): WireGuardConfError {
  return new WireGuardConfError('syntax', `WireGuard config line ${line}: ${message}`);
}

function parseKeyValue(value: string, what: string, line: number): string {
  const key = parseWgKey(value);
  // The value may be a secret: never echo it.
  if (key === undefined)
    throw syntax(line, `${what} is not a base64 WireGuard key of 32 bytes (as from 'wg genkey')`);
  return key;
}

function parsePort(value: string, what: string, line: number): number {
  const n = /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!(n <= 65535)) throw syntax(line, `${what} ${JSON.stringify(value)} is not a number 0–65535`);
  return n;
}

/**
 * Parses the text `renderConf` (Kilo's `Conf.Bytes`) writes, and `wg showconf`-style files with
 * the same keys: sections and keys are case-insensitive and whitespace is ignored, as in `wg`;
 * `#` starts a comment; AllowedIPs may repeat. Throws a one-line `WireGuardConfError` (kind
 * `syntax`) naming the line for anything else, including keys Kilo's Conf has no field for.
 */
export function parseConf(text: string): Conf {
  let section: 'none' | 'interface' | 'peer' = 'none';
  let sawInterface = false;
  let privateKey: string | undefined;
  let listenPort: number | undefined;
  const peers: MutablePeer[] = [];
  text.split('\n').forEach((raw, index) => {
    const n = index + 1;
    const line = raw.replace(/#.*$/, '').replace(/\s+/g, '');
    if (line === '') return;
    const header = /^\[(\w+)\]$/.exec(line);
    if (header) {
      const name = (header[1] ?? '').toLowerCase();
      if (name === 'interface') {
        if (sawInterface) throw syntax(n, 'a second [Interface] section');
        sawInterface = true;
        section = 'interface';
      } else if (name === 'peer') {
        section = 'peer';
        peers.push({ allowedIPs: [], line: n });
      } else {
        throw syntax(n, `unknown section [${header[1] ?? ''}]; want [Interface] or [Peer]`);
      }
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw syntax(n, 'want "Key = Value" or a [Section]');
    const key = line.slice(0, eq).toLowerCase();
    const value = line.slice(eq + 1);
    if (section === 'none') throw syntax(n, `${line.slice(0, eq)} outside a section`);
    if (section === 'interface') {
      if (key === 'privatekey') privateKey = parseKeyValue(value, 'PrivateKey', n);
      else if (key === 'listenport') listenPort = parsePort(value, 'ListenPort', n);
      else throw syntax(n, `unknown key ${line.slice(0, eq)} in [Interface]; want PrivateKey or ListenPort`);
      return;
    }
    const peer = peers[peers.length - 1];
    if (!peer) throw syntax(n, 'key outside a [Peer] section');
    switch (key) {
      case 'publickey':
        peer.publicKey = parseKeyValue(value, 'PublicKey', n);
        break;
      case 'presharedkey':
        peer.presharedKey = parseKeyValue(value, 'PresharedKey', n);
        break;
      case 'allowedips':
        for (const cidr of value.split(',').filter((c) => c !== '')) {
          const parsed = goParseCIDR(cidr);
          if (parsed === undefined) throw syntax(n, `AllowedIPs entry ${JSON.stringify(cidr)} is not a CIDR`);
          peer.allowedIPs.push(parsed);
        }
        break;
      case 'endpoint': {
        const endpoint = parseEndpoint(value);
        if (!endpoint)
          throw syntax(n, `Endpoint ${JSON.stringify(value)} is not host:port, [v6]:port or name:port`);
        peer.endpoint = endpoint;
        break;
      }
      case 'persistentkeepalive':
        peer.persistentKeepalive =
          value.toLowerCase() === 'off' ? 0 : parsePort(value, 'PersistentKeepalive', n);
        break;
      default:
        throw syntax(
          n,
          `unknown key ${line.slice(0, eq)} in [Peer]; want AllowedIPs, Endpoint, PersistentKeepalive, PresharedKey or PublicKey`,
        );
    }
  });
  return {
    ...(privateKey !== undefined ? { privateKey } : {}),
    ...(listenPort !== undefined ? { listenPort } : {}),
    peers: peers.map((p): ConfPeer => {
      if (p.publicKey === undefined) throw syntax(p.line, '[Peer] without a PublicKey');
      return {
        publicKey: p.publicKey,
        allowedIPs: p.allowedIPs,
        ...(p.endpoint ? { endpoint: p.endpoint } : {}),
        ...(p.persistentKeepalive !== undefined ? { persistentKeepalive: p.persistentKeepalive } : {}),
        ...(p.presharedKey !== undefined ? { presharedKey: p.presharedKey } : {}),
      };
    }),
  };
}

/** Options of `confDiffers` and `toWgConfig`. */
export interface ResolveOptions {
  /** DNS name → IP address, for endpoints that have a name and no IP yet (Kilo resolves first). */
  resolve?: Readonly<Record<string, string>>;
}

/**
 * The endpoint as `wg` shows it (Kilo's `StringOpt(false)`: the resolved IP first), or undefined
 * when the peer has none or only an unresolved name.
 */
function resolvedEndpoint(e: Endpoint | undefined, resolve: ResolveOptions['resolve']): string | undefined {
  if (!e) return undefined;
  if (e.ip !== undefined) return joinHostPort(e.ip, e.port);
  const ip = e.dns === undefined ? undefined : resolve?.[e.dns];
  const parsed = ip === undefined ? undefined : goParseIP(ip);
  return parsed === undefined ? undefined : joinHostPort(parsed, e.port);
}

function byKey<T extends { publicKey: string }>(a: T, b: T): number {
  return a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0;
}

function sortedNetworks(cidrs: readonly string[]): string[] {
  return cidrs
    .map((c) => {
      const parsed = goParseCIDR(c) ?? c;
      try {
        return networkCidr(parsed);
      } catch {
        return parsed;
      }
    })
    .sort();
}

/**
 * Kilo's `Conf.Equal(device)` as a reason: undefined when the device already runs `conf`, else one
 * line saying what differs. Compared as Kilo does: listen port, private key (through the device's
 * public key), number of peers, then per peer sorted by public key: allowed IPs (sorted), endpoint
 * (`ip:port`, a name through `opts.resolve`), persistent keepalive, preshared key, public key.
 *
 * Deviations, each deliberate:
 * - Kilo returns at the first peer whose endpoints are both nil and never looks at the peers after
 *   it; every peer is compared here.
 * - Allowed IPs are compared as networks: the kernel stores `10.0.0.0/24` for `10.0.0.1/24`, which
 *   Kilo would see as a difference on every apply.
 * - `wg show dump` gives only whether a preshared key is set, so presence is compared, not value.
 */
export function confDiffers(
  conf: Conf,
  live: WgInterfaceState,
  opts: ResolveOptions = {},
): string | undefined {
  if (conf.listenPort === undefined || conf.listenPort !== live.listenPort) {
    return `listen port: device ${live.listenPort}, config ${conf.listenPort ?? 'unset'}`;
  }
  if (conf.privateKey === undefined) return 'private key: config has none';
  if (!live.hasPrivateKey) return 'private key: device has none';
  let publicKey: string;
  try {
    publicKey = wireGuardPublicKey(conf.privateKey);
  } catch {
    return 'private key: config key is not a WireGuard key';
  }
  if (publicKey !== live.publicKey) return 'private key: device has another key';
  if (conf.peers.length !== live.peers.length) {
    return `number of peers: device ${live.peers.length}, config ${conf.peers.length}`;
  }
  const want = [...conf.peers].sort(byKey);
  const have = [...live.peers].sort(byKey);
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const h = have[i];
    if (!w || !h) continue;
    if (w.publicKey !== h.publicKey) return `peer ${w.publicKey}: not on the device (found ${h.publicKey})`;
    const wantIPs = sortedNetworks(w.allowedIPs);
    const haveIPs = sortedNetworks(h.allowedIps);
    if (wantIPs.join(',') !== haveIPs.join(',')) {
      return `peer ${w.publicKey} allowed IPs: device ${haveIPs.join(',') || 'none'}, config ${wantIPs.join(',') || 'none'}`;
    }
    const wantEndpoint = w.endpoint
      ? (resolvedEndpoint(w.endpoint, opts.resolve) ?? formatEndpoint(w.endpoint, false))
      : undefined;
    const liveParsed = h.endpoint === null ? undefined : parseEndpoint(h.endpoint);
    const haveEndpoint =
      h.endpoint === null ? undefined : liveParsed ? formatEndpoint(liveParsed, false) : h.endpoint;
    if (wantEndpoint !== haveEndpoint) {
      return `peer ${w.publicKey} endpoint: device ${haveEndpoint ?? 'none'}, config ${wantEndpoint ?? 'none'}`;
    }
    const wantKeepalive = w.persistentKeepalive ?? 0;
    const haveKeepalive = h.persistentKeepalive ?? 0;
    if (wantKeepalive !== haveKeepalive) {
      return `peer ${w.publicKey} persistent keepalive: device ${haveKeepalive}, config ${wantKeepalive}`;
    }
    if (!isZeroKey(w.presharedKey) !== h.hasPresharedKey) {
      return `peer ${w.publicKey} preshared key: device ${h.hasPresharedKey ? 'set' : 'none'}, config ${isZeroKey(w.presharedKey) ? 'none' : 'set'}`;
    }
  }
  return undefined;
}

/**
 * Kilo's `Conf.WGConfig()` as host-net's `WgConfig` for `wg syncconf` (which, like Kilo's
 * `ReplacePeers`/`ReplaceAllowedIPs`, replaces every peer and allowed IP). Endpoints become
 * `ip:port` / `[v6]:port`; a DNS endpoint without IP is looked up in `opts.resolve`.
 *
 * Throws `WireGuardConfError` `missing-private-key` when the config has no private key, and
 * `unresolved-endpoint` when a name is not in `opts.resolve` — as Kilo's apply aborts when one
 * endpoint fails to resolve.
 */
export function toWgConfig(conf: Conf, opts: ResolveOptions = {}): WgConfig {
  if (conf.privateKey === undefined) {
    throw new WireGuardConfError(
      'missing-private-key',
      'WireGuard config has no private key: only a leader config can be applied',
    );
  }
  const peers = conf.peers.map((p): WgPeerConfig => {
    let endpoint: string | undefined;
    if (p.endpoint) {
      endpoint = resolvedEndpoint(p.endpoint, opts.resolve);
      if (endpoint === undefined) {
        throw new WireGuardConfError(
          'unresolved-endpoint',
          `peer ${p.publicKey}: endpoint ${formatEndpoint(p.endpoint)} is not resolved; resolve its name first`,
        );
      }
    }
    return {
      publicKey: p.publicKey,
      allowedIps: p.allowedIPs.map(canonicalCidr),
      ...(endpoint !== undefined ? { endpoint } : {}),
      ...(p.persistentKeepalive !== undefined ? { persistentKeepalive: p.persistentKeepalive } : {}),
      ...(!isZeroKey(p.presharedKey) && p.presharedKey !== undefined ? { presharedKey: p.presharedKey } : {}),
    };
  });
  return {
    privateKey: conf.privateKey,
    ...(conf.listenPort !== undefined ? { listenPort: conf.listenPort } : {}),
    peers,
  };
}
