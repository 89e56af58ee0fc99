// DHCPv4 (RFC 2131/2132) messages: typed decode/encode on top of the `dhcp` package's codec.
//
// The package's parser (lib/protocol.js + lib/seqbuffer.js) is only ever given a buffer that this
// module has validated and rebuilt, because on raw input it:
//  - treats pad (option 0) as a TLV and skips two bytes, so a pad run desynchronises the walk;
//  - prints `console.error('Option N not known')` for every unknown option (a log flood on garbage);
//  - reads past the end of a truncated option (RangeError) or, for IP-typed options, reads exactly
//    4 bytes whatever the length byte says (wrong lengths shift every following option);
//  - accepts 230..239-byte packets and then reads beyond them (its minimum is 230, the header plus
//    magic cookie is 240);
//  - decodes option 61 (client identifier, binary: usually 0x01 + MAC) as 7-bit ASCII cut at the
//    first NUL, which loses bytes, so option 61 is decoded here and given to it only when encoding.
// Only the options listed in OPTION_SPECS are kept; everything else is skipped here.
// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./dhcp-package.d.ts" />
import { opts as packageOptionTable } from 'dhcp/lib/options.js';
import * as protocol from 'dhcp/lib/protocol.js';
import type { PackageOptions } from 'dhcp/lib/protocol.js';
import { errorMessage } from '@knet/runtime';
import { isIPv4, isMac, normalizeMac } from './ipv4';

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
/** The BROADCAST bit of `flags`: the client cannot receive unicast before it has its address. */
export const BROADCAST_FLAG = 0x8000;
export const MAGIC_COOKIE = 0x63825363;
/** BOOTP clients expect messages of at least 300 bytes (RFC 951 vend field of 64 bytes). */
export const MIN_MESSAGE_SIZE = 300;
const HEADER_SIZE = 240; // fixed fields (236) + magic cookie

export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type DhcpMessageType = (typeof DhcpMessageType)[keyof typeof DhcpMessageType];
export type DhcpMessageTypeName = keyof typeof DhcpMessageType;

const TYPE_NAMES = Object.fromEntries(Object.entries(DhcpMessageType).map(([k, v]) => [v, k])) as Record<
  number,
  DhcpMessageTypeName
>;

/** `DISCOVER`, …, or `TYPE<n>`. */
export function messageTypeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

/** Option codes this library reads and writes. */
export const DhcpOption = {
  SubnetMask: 1,
  Router: 3,
  DnsServers: 6,
  Hostname: 12,
  DomainName: 15,
  InterfaceMtu: 26,
  RequestedIp: 50,
  LeaseTime: 51,
  MessageType: 53,
  ServerId: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  ClientId: 61,
} as const;

/** The options of a message, typed. Absent means the option was not in the message. */
export interface DhcpOptions {
  /** 1 */
  subnetMask?: string;
  /** 3 */
  routers?: string[];
  /** 6 */
  dnsServers?: string[];
  /** 12 */
  hostname?: string;
  /** 15 */
  domainName?: string;
  /** 26: interface MTU. */
  mtu?: number;
  /** 50 */
  requestedIp?: string;
  /** 51 */
  leaseTimeSec?: number;
  /** 54 */
  serverId?: string;
  /** 55: option codes the client asks for (0 and 255 are tolerated and ignored by the server). */
  parameterRequestList?: number[];
  /** 56: error text (NAK). */
  message?: string;
  /** 57 */
  maxMessageSize?: number;
  /** 58: T1. */
  renewalTimeSec?: number;
  /** 59: T2. */
  rebindingTimeSec?: number;
  /** 61: client identifier, lowercase hex (usually `01` + the MAC). */
  clientId?: string;
}

export interface DhcpMessage {
  /** 1 = BOOTREQUEST (client → server), 2 = BOOTREPLY. */
  op: 1 | 2;
  xid: number;
  secs: number;
  flags: number;
  hops: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, `aa:bb:cc:dd:ee:ff`. */
  chaddr: string;
  messageType: DhcpMessageType;
  options: DhcpOptions;
}

/** What {@link encodeDhcp} needs: the rest defaults to 0 / `0.0.0.0` / no options. */
export type DhcpMessageInit = Pick<DhcpMessage, 'op' | 'xid' | 'chaddr' | 'messageType'> &
  Partial<Omit<DhcpMessage, 'op' | 'xid' | 'chaddr' | 'messageType'>>;

/** Input that is not a well-formed DHCP message. `message` is one line; `reason` has no prefix. */
export class DhcpDecodeError extends Error {
  override readonly name = 'DhcpDecodeError';
  constructor(readonly reason: string) {
    super(`malformed DHCP message: ${reason}`);
  }
}

type Kind = 'ip' | 'ips' | 'text' | 'u16' | 'u32' | 'u8' | 'u8s' | 'hex';

/** Our options: value kind, the length check, and the package's SeqBuffer type for it. */
const OPTION_SPECS: Record<number, { key: keyof DhcpOptions | 'messageType'; kind: Kind; pkg?: string }> = {
  1: { key: 'subnetMask', kind: 'ip', pkg: 'IP' },
  3: { key: 'routers', kind: 'ips', pkg: 'IPs' },
  6: { key: 'dnsServers', kind: 'ips', pkg: 'IPs' },
  12: { key: 'hostname', kind: 'text', pkg: 'ASCII' },
  15: { key: 'domainName', kind: 'text', pkg: 'ASCII' },
  26: { key: 'mtu', kind: 'u16', pkg: 'UInt16' },
  50: { key: 'requestedIp', kind: 'ip', pkg: 'IP' },
  51: { key: 'leaseTimeSec', kind: 'u32', pkg: 'UInt32' },
  53: { key: 'messageType', kind: 'u8', pkg: 'UInt8' },
  54: { key: 'serverId', kind: 'ip', pkg: 'IP' },
  55: { key: 'parameterRequestList', kind: 'u8s', pkg: 'UInt8s' },
  56: { key: 'message', kind: 'text', pkg: 'ASCII' },
  57: { key: 'maxMessageSize', kind: 'u16', pkg: 'UInt16' },
  58: { key: 'renewalTimeSec', kind: 'u32', pkg: 'UInt32' },
  59: { key: 'rebindingTimeSec', kind: 'u32', pkg: 'UInt32' },
  // Written through the package as ASCII (it writes with Buffer 'ascii' = latin1, byte-exact);
  // decoded here (see the header comment).
  61: { key: 'clientId', kind: 'hex', pkg: 'ASCII' },
};

// Fail loudly at load time if a future version of the package changes the types we rely on.
for (const [code, spec] of Object.entries(OPTION_SPECS)) {
  const actual = packageOptionTable[Number(code)]?.type;
  if (actual !== spec.pkg) {
    throw new Error(
      `dhcp package: option ${code} has type ${String(actual)}, @knet/dhcp expects ${spec.pkg}`,
    );
  }
}

function lengthOk(kind: Kind, len: number): boolean {
  switch (kind) {
    case 'ip':
    case 'u32':
      return len === 4;
    case 'ips':
      return len >= 4 && len % 4 === 0;
    case 'u16':
      return len === 2;
    case 'u8':
      return len === 1;
    case 'hex':
      return len >= 2; // RFC 2132 §9.14: minimum length 2
    default:
      return len >= 1;
  }
}

function fail(reason: string): never {
  throw new DhcpDecodeError(reason);
}

/**
 * Decodes one DHCP message. Throws only {@link DhcpDecodeError} (one line), never anything else,
 * whatever the input: short packets, wrong op/htype/hlen, bad magic cookie, truncated options,
 * wrong option lengths for the options listed in {@link DhcpOption}, missing or unknown message
 * type. Pads (option 0) anywhere in the option area and unknown options are skipped. For a
 * repeated option the first occurrence counts (RFC 3396 concatenation is not supported);
 * option overload (52) is not supported (sname/file are ignored).
 */
export function decodeDhcp(input: Uint8Array): DhcpMessage {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < HEADER_SIZE) fail(`too short: ${buf.length} bytes, need at least ${HEADER_SIZE}`);
  const op = buf[0] as number;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) fail(`op ${op} is neither BOOTREQUEST (1) nor BOOTREPLY (2)`);
  if (buf[1] !== 1) fail(`hardware type ${buf[1]} is not Ethernet (1)`);
  if (buf[2] !== 6) fail(`hardware address length ${buf[2]} is not 6`);
  const cookie = buf.readUInt32BE(236);
  if (cookie !== MAGIC_COOKIE) fail(`bad magic cookie 0x${cookie.toString(16).padStart(8, '0')}`);

  // Walk the TLV area ourselves: pads are one byte, the end option stops, lengths must fit.
  const found = new Map<number, Buffer>();
  for (let i = HEADER_SIZE; i < buf.length;) {
    const code = buf[i] as number;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= buf.length) fail(`option ${code} truncated: no length byte`);
    const len = buf[i + 1] as number;
    const start = i + 2;
    if (start + len > buf.length) {
      fail(`option ${code} truncated: length ${len}, ${buf.length - start} bytes left`);
    }
    const spec = OPTION_SPECS[code];
    if (spec && !found.has(code)) {
      if (!lengthOk(spec.kind, len)) fail(`option ${code} has invalid length ${len}`);
      found.set(code, buf.subarray(start, start + len));
    }
    i = start + len;
  }

  const typeByte = found.get(DhcpOption.MessageType);
  if (!typeByte) fail('no message type (option 53)');
  const messageType = typeByte[0] as number;
  if (messageType < 1 || messageType > 8) fail(`unknown message type ${messageType}`);

  // Rebuild a clean packet: header + validated options (not 61) + end, then let the package parse it.
  const parts: Buffer[] = [buf.subarray(0, HEADER_SIZE)];
  for (const [code, value] of found) {
    if (code === DhcpOption.ClientId) continue;
    parts.push(Buffer.from([code, value.length]), value);
  }
  parts.push(Buffer.from([255]));
  let parsed: protocol.PackagePacket;
  try {
    parsed = protocol.parse(Buffer.concat(parts));
  } catch (err) {
    fail(`unparseable: ${errorMessage(err).split('\n')[0]}`);
  }

  const options: DhcpOptions = {};
  const o = parsed.options;
  const set = (code: number, v: unknown) => {
    const spec = OPTION_SPECS[code];
    if (spec && spec.key !== 'messageType' && v !== undefined)
      (options as Record<string, unknown>)[spec.key] = v;
  };
  for (const code of found.keys()) {
    if (code === DhcpOption.MessageType) continue;
    if (code === DhcpOption.ClientId) {
      set(code, (found.get(code) as Buffer).toString('hex'));
      continue;
    }
    const v = o[code];
    // Text options: the package already cut at the first NUL; an all-NUL value becomes absent.
    if (typeof v === 'string' && v === '') continue;
    set(code, Array.isArray(v) ? [...v] : v);
  }

  return {
    op: op as 1 | 2,
    xid: parsed.xid,
    secs: parsed.secs,
    flags: parsed.flags,
    hops: parsed.hops,
    ciaddr: parsed.ciaddr,
    yiaddr: parsed.yiaddr,
    siaddr: parsed.siaddr,
    giaddr: parsed.giaddr,
    chaddr: normalizeMac(parsed.chaddr),
    messageType: messageType as DhcpMessageType,
    options,
  };
}

const PRINTABLE = /^[\x20-\x7e]+$/;

function checkIp(name: string, v: unknown): string {
  if (!isIPv4(v))
    throw new TypeError(`encodeDhcp: ${name} must be an IPv4 address, got ${JSON.stringify(v)}`);
  return v;
}

function checkUint(name: string, v: unknown, max: number, min = 0): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`encodeDhcp: ${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function checkText(name: string, v: unknown): string {
  if (typeof v !== 'string' || v.length > 255 || !PRINTABLE.test(v)) {
    throw new TypeError(`encodeDhcp: ${name} must be 1..255 printable ASCII characters`);
  }
  return v;
}

function checkIps(name: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > 63) {
    throw new TypeError(`encodeDhcp: ${name} must be a list of 1..63 IPv4 addresses`);
  }
  return v.map((x, i) => checkIp(`${name}[${i}]`, x));
}

/**
 * Encodes a message (through the package's `format`), padded with zeros to at least 300 bytes.
 * Throws TypeError for invalid field or option values (a programming error, not input).
 */
export function encodeDhcp(msg: DhcpMessageInit): Buffer {
  if (msg.op !== BOOTREQUEST && msg.op !== BOOTREPLY)
    throw new TypeError(`encodeDhcp: invalid op ${String(msg.op)}`);
  if (!isMac(msg.chaddr)) throw new TypeError(`encodeDhcp: invalid chaddr ${JSON.stringify(msg.chaddr)}`);
  checkUint('messageType', msg.messageType, 8, 1);
  const opts: PackageOptions = { 53: msg.messageType };
  const given = msg.options ?? {};
  if (given.subnetMask !== undefined) opts[1] = checkIp('subnetMask', given.subnetMask);
  if (given.routers !== undefined) opts[3] = checkIps('routers', given.routers);
  if (given.dnsServers !== undefined) opts[6] = checkIps('dnsServers', given.dnsServers);
  if (given.hostname !== undefined) opts[12] = checkText('hostname', given.hostname);
  if (given.domainName !== undefined) opts[15] = checkText('domainName', given.domainName);
  if (given.mtu !== undefined) opts[26] = checkUint('mtu', given.mtu, 65535, 68);
  if (given.requestedIp !== undefined) opts[50] = checkIp('requestedIp', given.requestedIp);
  if (given.leaseTimeSec !== undefined) opts[51] = checkUint('leaseTimeSec', given.leaseTimeSec, 0xffffffff);
  if (given.serverId !== undefined) opts[54] = checkIp('serverId', given.serverId);
  if (given.parameterRequestList !== undefined) {
    const prl = given.parameterRequestList;
    if (!Array.isArray(prl) || prl.length === 0 || prl.length > 255) {
      throw new TypeError('encodeDhcp: parameterRequestList must have 1..255 codes');
    }
    opts[55] = prl.map((c, i) => checkUint(`parameterRequestList[${i}]`, c, 255));
  }
  if (given.message !== undefined) opts[56] = checkText('message', given.message);
  if (given.maxMessageSize !== undefined)
    opts[57] = checkUint('maxMessageSize', given.maxMessageSize, 65535, 576);
  if (given.renewalTimeSec !== undefined)
    opts[58] = checkUint('renewalTimeSec', given.renewalTimeSec, 0xffffffff);
  if (given.rebindingTimeSec !== undefined) {
    opts[59] = checkUint('rebindingTimeSec', given.rebindingTimeSec, 0xffffffff);
  }
  if (given.clientId !== undefined) {
    const id = given.clientId;
    if (typeof id !== 'string' || !/^([0-9a-f]{2}){2,255}$/i.test(id)) {
      throw new TypeError('encodeDhcp: clientId must be 2..255 bytes of hex');
    }
    opts[61] = Buffer.from(id, 'hex').toString('latin1');
  }

  let sb: protocol.SeqBuffer;
  try {
    sb = protocol.format({
      op: msg.op,
      htype: 1,
      hlen: 6,
      hops: checkUint('hops', msg.hops ?? 0, 255),
      xid: checkUint('xid', msg.xid, 0xffffffff),
      secs: checkUint('secs', msg.secs ?? 0, 65535),
      flags: checkUint('flags', msg.flags ?? 0, 65535),
      ciaddr: checkIp('ciaddr', msg.ciaddr ?? '0.0.0.0'),
      yiaddr: checkIp('yiaddr', msg.yiaddr ?? '0.0.0.0'),
      siaddr: checkIp('siaddr', msg.siaddr ?? '0.0.0.0'),
      giaddr: checkIp('giaddr', msg.giaddr ?? '0.0.0.0'),
      chaddr: normalizeMac(msg.chaddr),
      sname: '',
      file: '',
      options: opts,
    });
  } catch (err) {
    if (err instanceof TypeError && err.message.startsWith('encodeDhcp:')) throw err;
    // The package writes into a fixed 1500-byte buffer.
    throw new TypeError(`encodeDhcp: cannot encode message: ${errorMessage(err).split('\n')[0]}`);
  }
  const out = Buffer.alloc(Math.max(MIN_MESSAGE_SIZE, sb._w));
  sb._data.copy(out, 0, 0, sb._w);
  return out;
}

/** The key a server stores a client's lease under: option 61 if present, else the MAC. */
export function clientKeyOf(msg: Pick<DhcpMessage, 'chaddr' | 'options'>): string {
  return msg.options.clientId !== undefined ? `id:${msg.options.clientId}` : `mac:${msg.chaddr}`;
}
