// A DHCP reply as the client's VXLAN device would receive a broadcast of the gateway's: VXLAN header,
// Ethernet to ff:ff:ff:ff:ff:ff, IPv4 to 255.255.255.255, UDP 67 → 68. Sent as one ordinary UDP
// datagram to the client's VTEP (the pod IP its DISCOVER came from), it reaches that client alone,
// at once: the kernel's own broadcast would wait for an all-zeros flood entry to exist first (a
// `bridge fdb append` and its confirmation, the largest part of a lease's time on the server).
import { ipToInt } from './ipv4';

export interface VxlanBroadcastFrame {
  /** VXLAN_ID. */
  vni: number;
  /** The gateway's vxlan0 MAC (the inner frame's source). */
  srcMac: string;
  /** The server's overlay address (the inner packet's source). */
  srcIp: string;
  /** The DHCP message. */
  payload: Buffer;
  srcPort?: number;
  dstPort?: number;
}

const VXLAN_HEADER = 8;
const ETHERNET_HEADER = 14;
const IPV4_HEADER = 20;
const UDP_HEADER = 8;

/** The one's-complement sum of 16-bit words (RFC 1071), folded, not yet complemented. */
function sum16(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += buf.readUInt16BE(i);
  if ((end - start) % 2 === 1) sum += (buf[end - 1] as number) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** VXLAN + Ethernet + IPv4 + UDP headers around `payload`, checksums filled in. */
export function vxlanBroadcastFrame(f: VxlanBroadcastFrame): Buffer {
  if (!Number.isInteger(f.vni) || f.vni < 0 || f.vni > 0xffffff) throw new RangeError(`VNI ${f.vni}`);
  const mac = f.srcMac.split(':').map((h) => parseInt(h, 16));
  if (mac.length !== 6 || mac.some((b) => !(b >= 0 && b <= 255))) throw new RangeError(`MAC ${f.srcMac}`);
  const udpLength = UDP_HEADER + f.payload.length;
  const ipLength = IPV4_HEADER + udpLength;
  const out = Buffer.alloc(VXLAN_HEADER + ETHERNET_HEADER + ipLength);
  // VXLAN (RFC 7348): flags with I set, VNI in bytes 4-6.
  out[0] = 0x08;
  out.writeUIntBE(f.vni, 4, 3);
  // Ethernet
  let o = VXLAN_HEADER;
  out.fill(0xff, o, o + 6);
  Buffer.from(mac).copy(out, o + 6);
  out.writeUInt16BE(0x0800, o + 12);
  // IPv4
  o += ETHERNET_HEADER;
  const ip = o;
  out[ip] = 0x45;
  out.writeUInt16BE(ipLength, ip + 2);
  out[ip + 8] = 64; // TTL
  out[ip + 9] = 17; // UDP
  out.writeUInt32BE(ipToInt(f.srcIp), ip + 12);
  out.writeUInt32BE(0xffffffff, ip + 16);
  out.writeUInt16BE(~sum16(out, ip, ip + IPV4_HEADER) & 0xffff, ip + 10);
  // UDP, with the checksum over the pseudo-header (source, destination, protocol, length).
  o += IPV4_HEADER;
  out.writeUInt16BE(f.srcPort ?? 67, o);
  out.writeUInt16BE(f.dstPort ?? 68, o + 2);
  out.writeUInt16BE(udpLength, o + 4);
  f.payload.copy(out, o + UDP_HEADER);
  const pseudo = sum16(out, ip + 12, ip + 20, 17 + udpLength);
  const udpSum = ~sum16(out, o, o + udpLength, pseudo) & 0xffff;
  out.writeUInt16BE(udpSum === 0 ? 0xffff : udpSum, o + 6);
  return out;
}
