import { decodeWireGuardKey, isWireGuardKey } from '@knet/crypto';
import { normalizeIp } from './addr-math';

/**
 * Pure parts of the `wg` wrapper: parsing `wg show ... dump`, rendering a `wg syncconf` config and
 * `wg set` arguments. Key material is validated but never put into an error message.
 */

export interface WgPeerConfig {
  publicKey: string;
  presharedKey?: string;
  /** `host:port`, `[v6]:port`. */
  endpoint?: string;
  allowedIps?: readonly string[];
  /** Seconds; 0 or undefined = off. */
  persistentKeepalive?: number;
}

/** A complete interface configuration (as for `wg syncconf`). */
export interface WgConfig {
  privateKey: string;
  listenPort?: number;
  fwmark?: number;
  peers: readonly WgPeerConfig[];
}

export interface WgSetPeer extends Partial<WgPeerConfig> {
  publicKey: string;
  /** Remove this peer. */
  remove?: boolean;
}

/** Incremental changes (as for `wg set`). */
export interface WgSetOptions {
  privateKey?: string;
  listenPort?: number;
  /** A mark, or `off`. */
  fwmark?: number | 'off';
  peers?: readonly WgSetPeer[];
}

export interface WgPeerState {
  publicKey: string;
  hasPresharedKey: boolean;
  endpoint: string | null;
  allowedIps: string[];
  /** null when there was never a handshake (dump prints 0). */
  latestHandshake: Date | null;
  transferRx: number;
  transferTx: number;
  /** Seconds, or null when off. */
  persistentKeepalive: number | null;
}

/** Parsed `wg show IFACE dump`. The private key is deliberately not kept. */
export interface WgInterfaceState {
  name: string;
  publicKey: string | null;
  hasPrivateKey: boolean;
  listenPort: number;
  fwmark: number | null;
  peers: WgPeerState[];
}

export class WgDumpParseError extends Error {
  override readonly name = 'WgDumpParseError';
}

/** Parses `wg show IFACE dump` (4-field interface line, 8-field peer lines). */
export function parseWgDump(text: string, name: string): WgInterfaceState {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const first = lines[0];
  if (first === undefined) throw new WgDumpParseError(`wg show ${name} dump: empty output`);
  const iface = parseInterfaceFields(first.split('\t'), name, 1);
  lines.slice(1).forEach((line, i) => iface.peers.push(parsePeerFields(line.split('\t'), i + 2)));
  return iface;
}

/** Parses `wg show all dump` (interface name in the first column). */
export function parseWgDumpAll(text: string): WgInterfaceState[] {
  const out: WgInterfaceState[] = [];
  text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .forEach((line, i) => {
      const [name = '', ...fields] = line.split('\t');
      if (fields.length === 4) {
        out.push(parseInterfaceFields(fields, name, i + 1));
        return;
      }
      const iface = out.at(-1);
      if (!iface || iface.name !== name) {
        throw new WgDumpParseError(`wg show all dump line ${i + 1}: peer of ${name} before its interface`);
      }
      iface.peers.push(parsePeerFields(fields, i + 1));
    });
  return out;
}

function parseInterfaceFields(f: string[], name: string, line: number): WgInterfaceState {
  if (f.length !== 4)
    throw new WgDumpParseError(`wg dump line ${line}: ${f.length} fields, want 4 for an interface`);
  const [priv, pub, port, fwmark] = f as [string, string, string, string];
  return {
    name,
    publicKey: pub === '(none)' ? null : pub,
    hasPrivateKey: priv !== '(none)',
    listenPort: toInt(port, 'listen-port', line),
    fwmark: fwmark === 'off' ? null : toInt(fwmark, 'fwmark', line),
    peers: [],
  };
}

function parsePeerFields(f: string[], line: number): WgPeerState {
  if (f.length !== 8)
    throw new WgDumpParseError(`wg dump line ${line}: ${f.length} fields, want 8 for a peer`);
  const [pub, psk, endpoint, allowed, handshake, rx, tx, keepalive] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!isWireGuardKey(pub)) throw new WgDumpParseError(`wg dump line ${line}: invalid peer public key`);
  const hs = toInt(handshake, 'latest-handshake', line);
  return {
    publicKey: pub,
    hasPresharedKey: psk !== '(none)',
    endpoint: endpoint === '(none)' ? null : endpoint,
    allowedIps: allowed === '(none)' ? [] : allowed.split(','),
    latestHandshake: hs === 0 ? null : new Date(hs * 1000),
    transferRx: toInt(rx, 'transfer-rx', line),
    transferTx: toInt(tx, 'transfer-tx', line),
    persistentKeepalive: keepalive === 'off' ? null : toInt(keepalive, 'persistent-keepalive', line),
  };
}

function toInt(text: string, what: string, line: number): number {
  const n = /^0x[0-9a-f]+$/i.test(text) ? parseInt(text, 16) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n))
    throw new WgDumpParseError(`wg dump line ${line}: invalid ${what} ${JSON.stringify(text)}`);
  return n;
}

/** Renders a config for `wg setconf`/`wg syncconf` (no wg-quick keys such as Address). Contains secrets. */
export function renderWgConfig(config: WgConfig): string {
  decodeWireGuardKey(config.privateKey, 'private key');
  const lines = ['[Interface]', `PrivateKey = ${config.privateKey}`];
  if (config.listenPort !== undefined) lines.push(`ListenPort = ${checkPort(config.listenPort)}`);
  if (config.fwmark !== undefined) lines.push(`FwMark = 0x${config.fwmark.toString(16)}`);
  for (const peer of config.peers) {
    decodeWireGuardKey(peer.publicKey, 'peer public key');
    lines.push('', '[Peer]', `PublicKey = ${peer.publicKey}`);
    if (peer.presharedKey !== undefined) {
      decodeWireGuardKey(peer.presharedKey, 'preshared key');
      lines.push(`PresharedKey = ${peer.presharedKey}`);
    }
    if (peer.allowedIps && peer.allowedIps.length > 0) {
      lines.push(`AllowedIPs = ${peer.allowedIps.map(checkAllowedIp).join(', ')}`);
    }
    if (peer.endpoint !== undefined) lines.push(`Endpoint = ${checkEndpoint(peer.endpoint)}`);
    if (peer.persistentKeepalive) lines.push(`PersistentKeepalive = ${peer.persistentKeepalive}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * `wg set` arguments. Secrets are not placed on the command line: `secretPath(i)` names where the
 * i-th secret (in the order of the returned `secrets`) will be readable, e.g. /dev/stdin or a file.
 */
export function wgSetArgs(
  iface: string,
  options: WgSetOptions,
  secretPath: (index: number) => string,
): { args: string[]; secrets: string[] } {
  const args = ['set', iface];
  const secrets: string[] = [];
  const secret = (value: string, what: string): string => {
    decodeWireGuardKey(value, what);
    secrets.push(value);
    return secretPath(secrets.length - 1);
  };
  if (options.privateKey !== undefined) args.push('private-key', secret(options.privateKey, 'private key'));
  if (options.listenPort !== undefined) args.push('listen-port', String(checkPort(options.listenPort)));
  if (options.fwmark !== undefined) {
    args.push('fwmark', options.fwmark === 'off' ? 'off' : `0x${options.fwmark.toString(16)}`);
  }
  for (const peer of options.peers ?? []) {
    decodeWireGuardKey(peer.publicKey, 'peer public key');
    args.push('peer', peer.publicKey);
    if (peer.remove) {
      args.push('remove');
      continue;
    }
    if (peer.presharedKey !== undefined)
      args.push('preshared-key', secret(peer.presharedKey, 'preshared key'));
    if (peer.endpoint !== undefined) args.push('endpoint', checkEndpoint(peer.endpoint));
    if (peer.persistentKeepalive !== undefined) {
      args.push('persistent-keepalive', peer.persistentKeepalive ? String(peer.persistentKeepalive) : 'off');
    }
    if (peer.allowedIps !== undefined)
      args.push('allowed-ips', peer.allowedIps.map(checkAllowedIp).join(','));
  }
  return { args, secrets };
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new TypeError(`invalid WireGuard port ${port}`);
  return port;
}

function checkEndpoint(endpoint: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(endpoint)) {
    throw new TypeError(
      `invalid WireGuard endpoint ${JSON.stringify(endpoint)}: want host:port or [v6]:port`,
    );
  }
  return endpoint;
}

function checkAllowedIp(cidr: string): string {
  if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(cidr)) {
    throw new TypeError(`invalid allowed IP ${JSON.stringify(cidr)}: want a prefix like 198.51.100.0/24`);
  }
  return cidr;
}

/** `[2001:DB8::0:2]:51820` → `[2001:db8::2]:51820`; `192.0.2.2:51820` unchanged; names as given. */
export function normalizeEndpoint(endpoint: string): string {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(endpoint) ?? /^([\d.]+):(\d+)$/.exec(endpoint);
  if (!m) return endpoint;
  const ip = normalizeIp(m[1] as string);
  return ip.includes(':') ? `[${ip}]:${m[2]}` : `${ip}:${m[2]}`;
}
